"""The alert benchmark's summary table on stdout."""

from __future__ import annotations

from typing import Any

from bench.harness.figures import every, fmt_stats
from bench.harness.topics import PROBE_RECIPIENT


def print_summary(res: dict[str, Any]) -> None:
    r = res["result"]
    print()
    print("=" * 118)
    print(f"alert latency: reading published (QoS 1) -> webhook received by {PROBE_RECIPIENT}, ms "
          f"p50/p90/p99/max (n); probe every {r['probe_interval_s']:g} s (storm part: "
          f"{r['storm_probe_interval_s']:g} s), high/low in turn")
    print(f"machine: {res['machine']['nproc']} cores, Python {res['machine']['python']}; "
          f"load average before {res['loadavg_before']}, after {res['loadavg_after']}")
    for name, part in res["parts"].items():
        print(f"{name} part: service alerts settings {part['alerts_settings'] or 'as the site file (defaults)'}"
              f" (defaults {res['alert_defaults']})")
    print("-" * 118)
    hdr = (f"{'window':<22} {'bg/s (sent)':>13} {'svc recv/s':>10} {'backlog max/end':>16}  "
           f"{'fired':<26} {'resolved':<26} {'broker floor':<22}")
    print(hdr)
    for p in r["phases"]:
        if p["kind"] == "drain" and not p["probes"]:
            continue  # caught up at once: nothing was probed while draining
        pub = p.get("publisher") or {}
        bg = (f"{p['rate']:,.0f} ({pub.get('achieved_rate') or 0:,.0f})" if p["kind"] == "load" and p["rate"]
              else ("0" if p["kind"] == "load" else ""))
        recv = f"{p['service_received_per_s']:,.0f}" if p.get("service_received_per_s") is not None else "-"
        bl = f"{p.get('backlog_max', 0):,}/{p.get('backlog_end', 0):,}" if "backlog_max" in p else "-"
        fl = p["broker_floor_ms"]
        floor = f"{fl['p50']:.1f}/{fl['p99']:.1f}/{fl['max']:.1f}" if fl.get("n") else "-"
        fired = fmt_stats(p["fired_ms"]) + (f" {p['fired_grouped']} grouped" if p.get("fired_grouped") else "")
        print(f"{p['name']:<22} {bg:>13} {recv:>10} {bl:>16}  {fired:<26} "
              f"{fmt_stats(p['resolved_ms']):<26} {floor:<22}")
    print("-" * 118)
    print("broker floor = bare paho subscriber on the probe topic, p50/p99/max ms. "
          "backlog = published - cb_messages_received_total.")
    for p in r["phases"]:
        if p["kind"] == "drain" and not p["probes"]:
            continue
        extra = []
        if p.get("fired_missing") or p.get("resolved_missing"):
            extra.append(f"missing fired {len(p['fired_missing'])}, resolved {len(p['resolved_missing'])}")
        if p.get("caught_up_s_after_load") is not None:
            extra.append(f"caught up {p['caught_up_s_after_load']:.1f} s after the load ended")
        elif p["kind"] == "load" and p.get("rate"):
            extra.append("NOT caught up within --drain-timeout")
        pm, am = p["publish_to_alert_made_ms"], p["alert_made_to_received_ms"]
        if pm.get("n"):
            extra.append(f"publish->alert made p50 {pm['p50']:.0f} ms, alert made->received p50 {am['p50']:.0f} ms")
        if p.get("commits_per_s"):
            extra.append(f"{p['commits_per_s']:g} commits/s of {p['messages_per_commit']:g} messages")
        cc = p.get("cpu_cores") or {}
        if cc:
            extra.append("cores " + ", ".join(f"{k} {v:.2f}" for k, v in cc.items()
                                              if k in ("service", "mosquitto", "publisher", "receiver", "steal",
                                                       "other", "machine")))
        pub = p.get("publisher") or {}
        if pub.get("max_lag_s") is not None:
            extra.append(f"publisher max lag {pub['max_lag_s'] * 1000:.0f} ms")
        if p.get("trend") and (p["kind"] in ("drain", "storm") or p.get("rate", 0) >= 5000):
            tr = p["trend"]
            pts = tr if len(tr) <= 6 else [tr[0], tr[len(tr) // 4], tr[len(tr) // 2], tr[3 * len(tr) // 4], tr[-1]]
            extra.append("trend (s: p50/max ms) " + ", ".join(f"{x['from_s']:g}: {x['p50_ms']:.0f}/{x['max_ms']:.0f}"
                                                             for x in pts))
        if extra:
            print(f"{p['name'].strip():<22} " + "; ".join(extra))
    st = r.get("storm")
    if st:
        print("-" * 118)
        print(f"alert storm: {st['devices']:,} unregistered water_level devices, one reading each "
              f"(level_cm {st['level_cm']:g}{'' if st['alerting'] else ', no alert: quiet comparison'}) over "
              f"{st['publish_seconds']:g} s ({st['publish_rate']:,.0f}/s) -> {', '.join(st['recipients']) or '-'}")
        rows = [
            ("published / acked by broker", f"{st['published']:,} / {st['acked_by_broker']:,}"),
            ("notifications received", f"{st['notifications']:,} ({st['fired_notifications']:,} fired, "
                                       f"{st['distinct_devices']:,} devices) in {st['messages']:,} HTTP messages: "
                                       f"{st['fired_in_groups']:,} inside grouped messages (largest group "
                                       f"{st['group_size_max']:,}, largest message {st['message_bytes_max']:,} bytes), "
                                       f"{st['fired_notifications'] - st['fired_in_groups']:,} one per message"),
            ("all delivered" if st["alerting"] else "service took every reading",
             (f"yes, {st['seconds_first_publish_to_all_delivered']:.1f} s after the first publish "
              f"({st['seconds_last_publish_to_all_delivered']:.1f} s after the last)")
             if st["all_delivered"] else "NO (bounded wait ran out)"),
            ("alerts told per second", f"max {st['delivered_per_s_max']:,}, mean {st['delivered_per_s_mean'] or 0:,.0f}"
                                     f"; {st['delivered_per_s_while_publishing'] or 0:,.0f}/s while readings arrived"
                                     + (f", {st['delivered_per_s_after_publishing']:,.0f}/s after"
                                        if st["delivered_per_s_after_publishing"] else "")),
            ("publish -> received ms", f"all {fmt_stats(st['latency_publish_to_received_ms'])}; one per message "
                                       f"{fmt_stats(st['latency_single_ms'])}; grouped "
                                       f"{fmt_stats(st['latency_grouped_ms'])}"),
            ("cb_notifications_pending", f"max {st['pending_max']}; every 5 s: "
                                         + " ".join(str(v) for _t, v in every(st["pending_series"], 5.0))),
            ("RSS MB every 5 s", " ".join(f"{v:.0f}" for _t, v in every(st["rss_series"], 5.0))),
            ("service RSS MB", f"before {st['rss_mb']['before']:.1f}, peak {st['rss_mb']['peak'] or 0:.1f}, "
                               f"after {st['rss_mb']['after']:.1f}"),
            ("cores while publishing", ", ".join(f"{k} {v:.2f}" for k, v in st["cpu_cores_while_publishing"].items()
                                                 if k in ("service", "mosquitto", "receiver", "publisher", "steal",
                                                          "other"))),
            ("service threads (publishing)", ", ".join(f"{k} {v:.2f}" for k, v in
                                                       list(st["service_thread_cores_while_publishing"].items())[:4])),
        ]
        w = max(len(k) for k, _ in rows)
        for k, v in rows:
            print(f"  {k:<{w}}  {v}")
    if r["other_notifications"]:
        print("-" * 118)
        print("other notifications: " + ", ".join(f"{k} x{v}" for k, v in r["other_notifications"].items()))
    if r["duplicate_deliveries"] or r["matched_by_fallback"]:
        print(f"duplicate deliveries {r['duplicate_deliveries']}, probes matched by time instead of started_at "
              f"{r['matched_by_fallback']}")
    for name, prof in (r.get("profiles") or {}).items():
        print(f"\npy-spy profile of the service during {name} ({prof.get('samples', 0)} samples):")
        for title, key in (("thread / asyncio step", "stages_pct"), ("self time", "self_pct")):
            print(f"  {title}:")
            for fn, pct in prof.get(key, [])[:10]:
                print(f"    {pct:5.1f}%  {fn}")
    for name, part in res["parts"].items():
        ms = part.get("metrics_scrapes") or {}
        if ms.get("failed"):
            print(f"\n{name} part: /metrics scrapes that failed: {ms['failed']} of {ms['total']} "
                  f"(status: {ms['statuses']})")
        if part.get("log_problems"):
            print(f"\n{name} part: service log warnings/errors (count):")
            for ln, n in part["log_problems"].items():
                print(f"  {n:>5}  {ln[:220]}")
    for pr in res.get("problems", []):
        print(f"\nPROBLEM: {pr}")
    print("=" * 118)
