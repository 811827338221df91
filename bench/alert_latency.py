#!/usr/bin/env python3
"""Alert latency and alert storm benchmark: MQTT (QoS 1) -> `cbrain run` -> webhook receiver.

One run, with real Mosquitto and influxd on loopback and `cbrain run` as a subprocess configured
from the example site (examples/site.yaml, every recipient's webhook pointed at a receiver
process of this benchmark):

1. latency  - a probe process publishes, every --probe-interval s, a reading of the registered
              water_level device `wl-gate-east` (linfen-yicun, b03 -> grid g2), alternately
              level_cm 12.0 (fires blue `water.level` -> worker-g2) and -20.0 (clears it; the site
              file sets the rule's clear_for to 0s for this device, so each high reading is a new
              episode). Latency = time the receiver got the `fired` (or `resolved`) notification for
              worker-g2 - time.time() just before the probe's publish(). Notifications are paired
              with probes by the alert's `started_at`, which is the probe reading's `ts`.
              Measured with no background load (--idle-seconds), then under each --loads rate of
              quiet ebike_charger readings from --devices unregistered devices, published at an
              exactly paced rate (pre-encoded, paced against the start time) by a separate process,
              --seconds per load; after each load, probing continues until the service has taken
              every published message from the broker (bounded by --drain-timeout).
              A bare paho subscriber on the probe topic gives the broker's own publish -> receive
              latency at the same moments (the floor).
2. storm    - --storm-devices unregistered water_level devices (wl-storm-N, linfen-yicun: unplaced,
              so routed to committee-yicun) each publish one reading at level_cm 12 (blue), paced
              over --storm-seconds; measured: notifications delivered per second, time until all are
              delivered (or how many after --storm-wait s), the service's RSS before / peak / after,
              and cb_notifications_pending over time. Probes keep running: their latency shows what a
              storm does to an unrelated alert.
3. summary  - table on stdout, all figures and samples as JSON in --out.

Run: .venv/bin/python bench/alert_latency.py [--loads 1000,5000,10000] [--seconds 30]
     [--storm-devices 10000] [--storm-seconds 60] [--out bench/results/alerts.json] [--profile 10]
     (or, from the repository, .venv/bin/python -m bench.alert_latency with the same options)

This module is the scenarios and their options; the harness they run on (servers, child
processes, sampler, figures, report) is the package bench/harness/.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

if __name__ == "__main__" and not __package__:
    # Run as a file: run as the bench package's module instead, the repository its import root, as
    # `python -m bench.alert_latency` from the repository does (this process becomes that one).
    _repo = str(Path(__file__).resolve().parent.parent)
    _path = os.pathsep.join(p for p in (_repo, os.environ.get("PYTHONPATH")) if p)
    os.execve(sys.executable, [sys.executable, "-m", "bench.alert_latency", *sys.argv[1:]],
              {**os.environ, "PYTHONPATH": _path})

from bench.harness.figures import expand, pctl, rfc3339_ms, stats_ms
from bench.harness.processes import background_main, storm_main
from bench.harness.report import print_summary
from bench.harness.rig import REPO, RULE_OVERRIDES, Rig, alert_defaults
from bench.harness.sampler import Sampler
from bench.harness.topics import PROBE_DEVICE, PROBE_RECIPIENT, PROBE_RULE, STORM_PREFIX
from bench.ingest_throughput import analyse_profile, cores_between, finish, log, start_profile


class Run(Rig):
    """The scenarios: no load, each background load, the storm; and what they measured."""

    # ---- phases ----

    def idle(self) -> None:
        a = self.args
        time.sleep(max(0.0, self.probe["start_at"] - time.time()))
        if a.idle_seconds <= 0:
            return
        log(f"idle: probing with no background load for {a.idle_seconds:g} s")
        s0 = self.snapshot()
        end = time.time() + a.idle_seconds
        while time.time() < end:
            self.check_alive()
            time.sleep(min(0.5, max(0.0, end - time.time())))
        s1 = self.snapshot()
        self.phases.append({"name": "idle", "kind": "load", "rate": 0, "t0": s0["t"], "t1": s1["t"],
                            "part": self.part["name"], "cpu": (s0, s1)})

    def load(self, rate: float, idx0: int) -> int:
        """One background load: publish for --seconds, then wait for the service to catch up."""
        import psutil

        a, ctx = self.args, self.ctx
        count = round(rate * a.seconds)
        lead = 2.0 + count / 400_000  # time to pre-encode before the planned start
        start_at = time.time() + lead
        sent = ctx.Value("q", 0, lock=False)
        self.bg_values.append(sent)
        ready, stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
        proc = ctx.Process(target=background_main, name=f"bench-bg-{int(rate)}", daemon=True,
                           args=(self.broker.host, self.broker.port, rate, a.seconds, start_at, idx0, a.devices,
                                 a.inflight, sent, ready, stop, results))
        log(f"load {rate:,.0f}/s: {count:,} readings from {a.devices} devices over {a.seconds:g} s "
            f"(start in {lead:.1f} s)")
        proc.start()
        self.cleanup.append(lambda: self._stop_proc(proc, stop))
        if not ready.wait(60):
            raise RuntimeError("background publisher not ready")
        pub = {"publisher": psutil.Process(proc.pid)}
        time.sleep(max(0.0, start_at - time.time()))
        s0 = self.snapshot(pub)
        prof = None
        prof_path = self.tmp / f"pyspy-load-{int(rate)}.raw"
        end = start_at + a.seconds
        next_line = time.time() + 5
        while time.time() < end:
            self.check_alive()
            if a.profile and prof is None and time.time() >= start_at + max(0.0, (a.seconds - a.profile) / 2):
                prof = start_profile(self.svc.pid, a.profile, prof_path, False)
            if time.time() >= next_line:
                next_line += 5
                self._progress(f"load {rate:,.0f}/s", start_at)
            time.sleep(min(0.25, max(0.0, end - time.time())))
        s1 = self.snapshot(pub)
        report = self._collect_one(results, proc, a.seconds + 60)
        stop.set()
        proc.join(5)
        if "error" in report:
            raise RuntimeError("background publisher failed:\n" + report["error"])
        # drain: until the service has taken from the broker everything published so far
        t_end = time.time()
        drained_at = None
        deadline = t_end + a.drain_timeout
        while time.time() < deadline:
            self.check_alive()
            s = self.sampler.sample()
            if s.get("received", -1) >= s["published"]:
                drained_at = s["t"]
                break
            if time.time() >= next_line:
                next_line += 5
                self._progress(f"drain after {rate:,.0f}/s", start_at)
            time.sleep(0.25)
        s2 = self.snapshot()
        if prof is not None:
            try:
                prof.wait(a.profile + 30)
            except subprocess.TimeoutExpired:
                prof.kill()
                prof.wait()
            self.profiles[f"load {int(rate)}/s"] = analyse_profile(prof_path)
        after = self.sampler.latest()
        log(f"load {rate:,.0f}/s: published {report['sent']:,} (achieved {report.get('achieved_rate') or 0:,.0f}/s, "
            f"max lag {report['max_lag_s'] * 1000:.0f} ms); "
            + (f"service caught up {drained_at - t_end:.1f} s after the load ended" if drained_at else
               f"service NOT caught up after {a.drain_timeout:g} s (backlog "
               f"{after.get('published', 0) - after.get('received', 0):,})"))
        self.phases.append({"name": f"load {rate:g}/s", "kind": "load", "rate": rate, "t0": start_at, "t1": t_end,
                            "t_drained": drained_at, "drain_deadline": deadline, "publisher": report,
                            "part": self.part["name"], "cpu": (s0, s1), "cpu_drain": (s1, s2)})
        time.sleep(2.0)  # let the last notifications arrive before the next phase
        return idx0 + int(report["sent"])

    def storm(self) -> None:
        import psutil

        a, ctx = self.args, self.ctx
        time.sleep(max(0.0, self.probe["start_at"] + 2.0 - time.time()))
        self.records.read_new()
        rss_before = round(self.part["sproc"].memory_info().rss / 2**20, 2)
        ready, stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
        start_at = time.time() + 2.0
        proc = ctx.Process(target=storm_main, name="bench-storm", daemon=True,
                           args=(self.broker.host, self.broker.port, a.storm_devices, a.storm_seconds,
                                 a.storm_level_cm, start_at, self.storm_sent, ready, stop, results))
        alerting = a.storm_level_cm >= 10.0  # water.level blue from 10 cm
        log(f"storm: {a.storm_devices:,} water_level devices, one reading each (level_cm {a.storm_level_cm:g}"
            f"{'' if alerting else ': no alert, a quiet comparison'}) over {a.storm_seconds:g} s "
            f"({a.storm_devices / a.storm_seconds:,.0f}/s); RSS before {rss_before:.1f} MB")
        proc.start()
        self.cleanup.append(lambda: self._stop_proc(proc, stop))
        if not ready.wait(60):
            raise RuntimeError("storm publisher not ready")
        pub = {"publisher": psutil.Process(proc.pid)}
        time.sleep(max(0.0, start_at - time.time()))
        s0 = self.snapshot(pub)
        prof = None
        prof_path = self.tmp / "pyspy-storm.raw"
        seen: set[str] = set()
        covered: set[str] = set()
        messages = 0
        t_all = None
        pub_end = start_at + a.storm_seconds
        deadline = pub_end + a.storm_wait
        next_line = time.time() + 5
        s1 = None
        while time.time() < deadline:
            self.check_alive()
            new = self.records.read_new()
            for n in expand(new, seen)[0]:
                if str(n.get("device", "")).startswith(STORM_PREFIX) and n.get("event") == "fired":
                    covered.add(str(n["device"]))
            messages += sum(1 for r in new if str(r.get("device", "")).startswith(STORM_PREFIX))
            now = time.time()
            if s1 is None and now >= pub_end:
                s1 = self.snapshot(pub)
            if a.profile and prof is None and now >= start_at + max(0.0, (a.storm_seconds - a.profile) / 2):
                prof = start_profile(self.svc.pid, a.profile, prof_path, False)
            if alerting and len(covered) >= a.storm_devices:
                t_all = now
                break
            if not alerting and self.storm_sent.value >= a.storm_devices:
                last = self.sampler.sample()
                if last.get("received", -1) >= last["published"]:
                    t_all = now  # the service has taken every reading
                    break
            if now >= next_line:
                next_line += 5
                last = self.sampler.latest()
                log(f"  storm t={now - start_at:5.1f}s published={self.storm_sent.value:>6,} alerts told="
                    f"{len(covered):>6,} in {messages:,} messages, pending={last.get('pending', '?')} "
                    f"rss={last.get('rss_mb', 0):.0f}MB")
            time.sleep(0.25)
        if s1 is None:
            s1 = self.snapshot(pub)
        s2 = self.snapshot()
        report = self._collect_one(results, proc, 60)
        stop.set()
        proc.join(5)
        if "error" in report:
            raise RuntimeError("storm publisher failed:\n" + report["error"])
        if prof is not None:
            try:
                prof.wait(a.profile + 30)
            except subprocess.TimeoutExpired:
                prof.kill()
                prof.wait()
            self.profiles["storm"] = analyse_profile(prof_path)
        # RSS after: once delivery is done, a few seconds of quiet
        settle_end = time.time() + a.storm_settle
        while time.time() < settle_end:
            self.check_alive()
            time.sleep(0.25)
        rss_after = round(self.part["sproc"].memory_info().rss / 2**20, 2)
        self.records.read_new()
        log(f"storm: {len(covered):,} of {a.storm_devices:,} storm alerts told in {messages:,} messages"
            + (f", done {t_all - start_at:.1f} s after the first publish" if t_all else
               f" after waiting {a.storm_wait:g} s past the last publish")
            + f"; RSS after {rss_after:.1f} MB")
        self.phases.append({"name": "storm", "kind": "storm", "alerting": alerting, "t0": start_at,
                            "t_pub_end": pub_end, "t1": t_all or time.time(), "t_all": t_all, "publisher": report,
                            "rss_before": rss_before, "rss_after": rss_after, "part": self.part["name"],
                            "cpu": (s0, s1), "cpu_after_pub": (s1, s2)})

    # ---- analysis ----

    def analyse(self) -> dict[str, Any]:
        a = self.args
        notes, dups = expand(self.records.all)
        probes = self.probes
        by_ts = {p["ts"]: k for k, p in probes.items() if p["high"]}
        high_pub = sorted((p["t_pub"], k) for k, p in probes.items() if p["high"])
        high_times = [t for t, _ in high_pub]

        fired: dict[int, dict[str, Any]] = {}
        resolved: dict[int, dict[str, Any]] = {}
        fallback = 0
        other: Counter[str] = Counter()
        storm: list[dict[str, Any]] = []
        for r in notes:
            dev = str(r.get("device") or "")
            if dev == PROBE_DEVICE and r.get("rule") == PROBE_RULE and r.get("recipient") == PROBE_RECIPIENT \
                    and r.get("event") in ("fired", "resolved"):
                k = by_ts.get(rfc3339_ms(r.get("started_at")) or -1)
                if k is None:  # the most recent high probe before it
                    i = bisect.bisect_right(high_times, r["t"]) - 1
                    if i < 0:
                        other[f"{r.get('recipient')} {r.get('event')} {r.get('rule')} (no probe)"] += 1
                        continue
                    k = high_pub[i][1]
                    fallback += 1
                if r["event"] == "fired":
                    fired[k] = r
                else:
                    resolved[k + 1] = r
            elif dev.startswith(STORM_PREFIX):
                storm.append(r)
            else:
                other[f"{r.get('recipient')} {r.get('event')} {r.get('rule')} {r.get('level')} {dev}"] += 1

        def lat(k: int, r: dict[str, Any]) -> float:
            return float(r["t"]) - float(probes[k]["t_pub"])

        floor = dict(self.floor_recs)
        phase_out = []
        for w in self._windows():
            ks = [k for k, p in probes.items() if w["t0"] <= p["t_pub"] < w["t1"]]
            highs = [k for k in ks if probes[k]["high"]]
            lows = [k for k in ks if not probes[k]["high"]]
            f_lat = [lat(k, fired[k]) for k in highs if k in fired]
            r_lat = [lat(k, resolved[k]) for k in lows if k in resolved]
            # where the time goes: publish -> alert made (updated_at, the commit's clock, ms) -> received
            before = [(rfc3339_ms(fired[k].get("updated_at")) or 0) / 1000 - probes[k]["t_pub"]
                      for k in highs if k in fired]
            after = [fired[k]["t"] - (rfc3339_ms(fired[k].get("updated_at")) or 0) / 1000
                     for k in highs if k in fired]
            fl = [floor[k] - probes[k]["t_pub"] for k in ks if k in floor]
            trend = []
            step = a.trend_bucket
            t = w["t0"]
            while t < w["t1"] and step > 0:
                b = [lat(k, fired[k]) for k in highs if k in fired and t <= probes[k]["t_pub"] < t + step] + \
                    [lat(k, resolved[k]) for k in lows if k in resolved and t <= probes[k]["t_pub"] < t + step]
                if b:
                    trend.append({"from_s": round(t - w["t0"], 1), "n": len(b),
                                  "p50_ms": round((pctl(b, 50) or 0) * 1000, 1), "max_ms": round(max(b) * 1000, 1)})
                t += step
            entry = {"name": w["name"], "kind": w["kind"], "part": w["phase"]["part"], "rate": w.get("rate"),
                     "seconds": round(w["t1"] - w["t0"], 2), "probes": len(ks),
                     "fired_ms": stats_ms(f_lat), "resolved_ms": stats_ms(r_lat),
                     # each probe's, in publishing order: runs can be pooled (a run's p99 is its
                     # slowest probe or two)
                     "fired_each_ms": [round(x * 1000, 1) for x in f_lat],
                     "all_ms": stats_ms(f_lat + r_lat),
                     "fired_grouped": sum(1 for k in highs if k in fired and fired[k].get("grouped")),
                     "fired_missing": [k for k in highs if k not in fired],
                     "resolved_missing": [k for k in lows if k not in resolved],
                     "publish_to_alert_made_ms": stats_ms(before),
                     "alert_made_to_received_ms": stats_ms(after),
                     "broker_floor_ms": stats_ms(fl), "floor_missing": sum(1 for k in ks if k not in floor),
                     "trend": trend}
            entry.update(self._service_side(w))
            phase_out.append(entry)

        result: dict[str, Any] = {
            "probes": len(probes), "probe_interval_s": a.probe_interval,
            "storm_probe_interval_s": a.storm_probe_interval,
            "messages_received": len(self.records.all), "notifications": len(notes), "duplicate_deliveries": dups,
            "matched_by_fallback": fallback, "other_notifications": dict(other.most_common()),
            "phases": phase_out,
        }
        st = next((p for p in self.phases if p["kind"] == "storm"), None)
        if st is not None:
            result["storm"] = self._storm(st, storm)
        result["profiles"] = self.profiles
        return result

    def _windows(self) -> list[dict[str, Any]]:
        out = []
        for p in self.phases:
            if p["kind"] == "load":
                out.append({"name": p["name"], "kind": "load", "rate": p["rate"], "t0": p["t0"], "t1": p["t1"],
                            "phase": p})
                if p["rate"]:
                    t_d = p["t_drained"] or p["drain_deadline"]
                    out.append({"name": f"  drain after {p['rate']:g}/s", "kind": "drain", "rate": p["rate"],
                                "t0": p["t1"], "t1": max(t_d, p["t1"] + 0.01), "phase": p})
            else:
                out.append({"name": "during storm", "kind": "storm", "t0": p["t0"], "t1": p["t1"], "phase": p})
        return out

    def _service_side(self, w: dict[str, Any]) -> dict[str, Any]:
        """Rates, backlog, CPU of the window from the samples and CPU snapshots."""
        p = w["phase"]
        sampler: Sampler = self.parts[p["part"]]["sampler"]
        ss = [s for s in sampler.between(w["t0"], w["t1"]) if "received" in s]
        out: dict[str, Any] = {}
        if len(ss) >= 2:
            dt = ss[-1]["t"] - ss[0]["t"]
            out["service_received_per_s"] = round((ss[-1]["received"] - ss[0]["received"]) / dt, 1) if dt > 0 else None
            backlog = [s["published"] - s["received"] for s in ss]
            out["backlog_max"] = max(backlog)
            out["backlog_end"] = backlog[-1]
            out["pending_max"] = max(s["pending"] for s in ss)
            out["metrics_ms_max"] = max(s["metrics_ms"] for s in ss)
            commits = ss[-1]["commits"] - ss[0]["commits"]
            if dt > 0 and commits > 0:
                out["commits_per_s"] = round(commits / dt, 1)
                out["messages_per_commit"] = round((ss[-1]["received"] - ss[0]["received"]) / commits, 1)
        if w["kind"] == "load":
            s0, s1 = p["cpu"]
            out["cpu_cores"] = cores_between(s0["cpu"], s1["cpu"], s1["t"] - s0["t"])
            out["service_thread_cores"] = self._threads(p["part"], s0, s1)
            if p.get("publisher"):
                pub = p["publisher"]
                out["publisher"] = {k: pub.get(k) for k in ("planned", "sent", "acked", "achieved_rate", "max_lag_s",
                                                            "late_start_s", "window_waits", "pregen_s")}
            if p.get("rate"):
                out["caught_up_s_after_load"] = round(p["t_drained"] - p["t1"], 2) if p["t_drained"] else None
        elif w["kind"] == "drain" and p.get("cpu_drain"):
            s0, s1 = p["cpu_drain"]
            out["cpu_cores"] = cores_between(s0["cpu"], s1["cpu"], s1["t"] - s0["t"])
        return out

    def _threads(self, part: str, s0: dict[str, Any], s1: dict[str, Any]) -> dict[str, float]:
        dt = s1["t"] - s0["t"]
        if dt <= 0:
            return {}
        names = self.parts[part].get("thread_names") or {}
        out = {f"{tid} {names.get(tid, '?')}": round((s1["threads"][tid] - s0["threads"][tid]) / dt, 2)
               for tid in s1["threads"] if tid in s0["threads"]}
        return dict(sorted(out.items(), key=lambda kv: -kv[1])[:6])

    def _storm(self, st: dict[str, Any], notes: list[dict[str, Any]]) -> dict[str, Any]:
        a = self.args
        t0 = st["t0"]
        pub = st["publisher"]
        t_pub = pub.get("t_pub") or []
        fired = [r for r in notes if r.get("event") == "fired"]
        by_dev: dict[int, dict[str, Any]] = {}
        for r in fired:
            try:
                by_dev[int(str(r["device"])[len(STORM_PREFIX):])] = r
            except ValueError:
                continue
        lat = [by_dev[i]["t"] - t_pub[i] for i in by_dev if i < len(t_pub)]
        arrivals = sorted(r["t"] for r in fired)
        msgs: dict[str, float] = {}
        for r in fired:
            msgs.setdefault(str(r.get("message")), r["t"])
        msg_bytes = [int(r.get("bytes") or 0) for r in self.records.all
                     if str(r.get("device", "")).startswith(STORM_PREFIX)]
        sizes = Counter(str(r.get("message")) for r in fired)
        grouped = [r for r in fired if r.get("grouped")]
        per_s: Counter[int] = Counter(int(t - t0) for t in arrivals)
        msg_per_s: Counter[int] = Counter(int(t - t0) for t in msgs.values())
        span = range(0, int(arrivals[-1] - t0) + 1) if arrivals else range(0)
        series = [per_s.get(i, 0) for i in span]
        sampler: Sampler = self.parts[st["part"]]["sampler"]
        ss = [s for s in sampler.between(t0 - 1.5, st["t1"] + a.storm_settle + 1) if "received" in s]
        rss = [s["rss_mb"] for s in ss if s.get("rss_mb") is not None]
        s0, s1 = st["cpu"]
        s1b, s2 = st["cpu_after_pub"]
        recipients = Counter(str(r.get("recipient")) for r in notes)
        events = Counter(str(r.get("event")) for r in notes)
        t_last_pub = t_pub[-1] if t_pub else st["t_pub_end"]
        final = self.parts[st["part"]].get("final_metrics") or ""
        grouped_metric = next((float(ln.rsplit(" ", 1)[1]) for ln in final.splitlines()
                               if ln.startswith("cb_notifications_grouped_total")), None)

        def rate_in(t_a: float, t_b: float) -> float | None:
            n = sum(1 for t in arrivals if t_a <= t < t_b)
            return round(n / (t_b - t_a), 1) if t_b - t_a > 1.0 and n else None

        return {
            "devices": a.storm_devices, "publish_seconds": a.storm_seconds, "level_cm": a.storm_level_cm,
            "alerting": st["alerting"], "published": pub.get("sent"), "acked_by_broker": pub.get("acked"),
            "publish_rate": round(pub.get("rate") or 0, 1),
            "service_alert_settings": self.parts[st["part"]].get("alerts_settings") or "default",
            "notifications": len(notes), "fired_notifications": len(fired), "distinct_devices": len(by_dev),
            "messages": len(msgs), "fired_in_groups": len(grouped),
            "group_size_max": max(sizes.values()) if sizes else 0,
            "message_bytes_max": max(msg_bytes, default=0),
            "group_size_mean": round(len(fired) / len(msgs), 1) if msgs else None,
            "grouped_metric": grouped_metric,
            "recipients": dict(recipients), "events": dict(events),
            "all_delivered": st["t_all"] is not None,
            "seconds_first_publish_to_all_delivered": round(st["t_all"] - t0, 2) if st["t_all"] else None,
            "seconds_last_publish_to_all_delivered": round(st["t_all"] - t_last_pub, 2) if st["t_all"] else None,
            "delivered_per_s_max": max(series) if series else 0,
            "delivered_per_s_mean": round(len(arrivals) / (arrivals[-1] - arrivals[0]), 1)
            if len(arrivals) > 1 and arrivals[-1] > arrivals[0] else None,
            "delivered_per_s_while_publishing": rate_in(t0, t_last_pub),
            "delivered_per_s_after_publishing": rate_in(t_last_pub, arrivals[-1]) if arrivals else None,
            "delivered_per_s": series,
            "messages_per_s": [msg_per_s.get(i, 0) for i in span],
            "latency_publish_to_received_ms": stats_ms(lat),
            "latency_single_ms": stats_ms([by_dev[i]["t"] - t_pub[i] for i in by_dev
                                           if i < len(t_pub) and not by_dev[i].get("grouped")]),
            "latency_grouped_ms": stats_ms([by_dev[i]["t"] - t_pub[i] for i in by_dev
                                            if i < len(t_pub) and by_dev[i].get("grouped")]),
            "rss_mb": {"before": st["rss_before"], "peak": max(rss) if rss else None, "after": st["rss_after"]},
            "pending_max": max((s["pending"] for s in ss), default=None),
            "pending_series": [(round(s["t"] - t0, 1), s["pending"]) for s in ss],
            "rss_series": [(round(s["t"] - t0, 1), s["rss_mb"]) for s in ss],
            "delivered_metric_series": [(round(s["t"] - t0, 1), s["delivered"]) for s in ss],
            "open_alerts_end": ss[-1].get("open_alerts") if ss else None,
            "cpu_cores_while_publishing": cores_between(s0["cpu"], s1["cpu"], s1["t"] - s0["t"]),
            "cpu_cores_after_publishing": cores_between(s1b["cpu"], s2["cpu"], s2["t"] - s1b["t"]),
            "service_thread_cores_while_publishing": self._threads(st["part"], s0, s1),
            "service_thread_cores_after_publishing": self._threads(st["part"], s1b, s2),
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loads", default="1000,5000,10000", help="background readings per second, comma-separated")
    ap.add_argument("--seconds", type=float, default=30.0, help="seconds of each background load")
    ap.add_argument("--idle-seconds", type=float, default=10.0, help="seconds of probing with no background load")
    ap.add_argument("--devices", type=int, default=1000, help="background devices")
    ap.add_argument("--probe-interval", type=float, default=0.5)
    ap.add_argument("--latency-storm-threshold", type=int, default=0,
                    help="alerts.storm_threshold of the latency part's service (0: no grouping, as a probe fires "
                         "more often than the default threshold allows; -1: the service's default)")
    ap.add_argument("--storm-threshold", type=int, default=-1,
                    help="alerts.storm_threshold of the storm part's service (-1: the service's default)")
    ap.add_argument("--storm-probe-interval", type=float, default=6.25,
                    help="probe interval during the storm: one new probe alert per 12.5 s stays within the "
                         "default grouping threshold (5 a minute), so the probe itself is not grouped")
    ap.add_argument("--drain-timeout", type=float, default=120.0,
                    help="after a load, wait at most this long for the service to take the backlog")
    ap.add_argument("--inflight", type=int, default=20000, help="unacknowledged QoS 1 messages per publisher")
    ap.add_argument("--storm-devices", type=int, default=10000, help="0 skips the storm")
    ap.add_argument("--storm-seconds", type=float, default=60.0)
    ap.add_argument("--storm-level-cm", type=float, default=12.0,
                    help="level of the storm readings: 12 fires blue; below 10 none fires (a quiet comparison)")
    ap.add_argument("--storm-wait", type=float, default=120.0,
                    help="after the last storm reading, wait at most this long for every notification")
    ap.add_argument("--storm-settle", type=float, default=10.0, help="seconds of quiet before 'RSS after'")
    ap.add_argument("--trend-bucket", type=float, default=5.0, help="seconds per bucket of the latency trend")
    ap.add_argument("--no-floor", action="store_true", help="no bare paho subscriber (broker floor)")
    ap.add_argument("--profile", type=float, default=0.0,
                    help="seconds of py-spy record (--nonblocking) in the middle of each load and of the storm")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "alerts.json"))
    ap.add_argument("--keep-tmp", action="store_true")
    args = ap.parse_args(argv)
    args.loads = [float(x) for x in str(args.loads).split(",") if x.strip()]
    if any(x <= 0 for x in args.loads) or args.seconds <= 0 or min(args.probe_interval,
                                                                    args.storm_probe_interval) < 0.05:
        ap.error("loads and --seconds must be > 0, probe intervals >= 0.05 s")
    if args.profile:
        args.profile = min(args.profile, max(1.0, args.seconds - 2))

    def _terminated(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _terminated)
    tmp = Path(tempfile.mkdtemp(prefix="cb-bench-alerts-"))
    log(f"workdir {tmp}")
    cleanup: list[Any] = []
    ok = False
    load_before = [round(x, 2) for x in os.getloadavg()]
    try:
        run = Run(args, tmp, cleanup)
        run.start_common()
        if args.loads or args.idle_seconds > 0:
            lt = args.latency_storm_threshold
            run.start_service("latency", {"storm_threshold": lt} if lt >= 0 else None)
            planned = args.idle_seconds + len(args.loads) * (args.seconds + args.drain_timeout + 15) + 30
            run.start_probe(args.probe_interval, planned)
            run.idle()
            idx = 0
            for rate in args.loads:
                idx = run.load(rate, idx)
            run.stop_probe()
            run.stop_service()
        if args.storm_devices > 0:
            stt = args.storm_threshold
            run.start_service("storm", {"storm_threshold": stt} if stt >= 0 else None)
            run.start_probe(args.storm_probe_interval, args.storm_seconds + args.storm_wait + args.storm_settle + 30)
            run.storm()
            run.stop_probe()
            run.stop_service()
        run.stop_floor()
        result = run.analyse()
        parts = {name: {k: v for k, v in p.items() if k not in ("svc", "sproc", "sampler")}
                 for name, p in run.parts.items()}
        res = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"nproc": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform()},
            "loadavg_before": load_before, "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "args": vars(args), "rule_overrides": RULE_OVERRIDES, "alert_defaults": alert_defaults(),
            "result": result,
            "parts": parts,
            "problems": run.problems,
            "probes": sorted(run.probes.values(), key=lambda p: p["k"]),
            "samples": {name: p["sampler"].samples for name, p in run.parts.items()},
            "phases_raw": [{k: v for k, v in p.items() if k not in ("cpu", "cpu_drain", "cpu_after_pub")}
                           | {"publisher": {k: v for k, v in (p.get("publisher") or {}).items() if k != "t_pub"}}
                           for p in run.phases],
        }
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1, default=str))
        print_summary(res)
        log(f"wrote {out}")
        ok = not run.problems
        return 0 if ok else 1
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    except Exception as exc:
        log(f"FAILED: {type(exc).__name__}: {exc}")
        traceback.print_exc()
        return 1
    finally:
        finish(cleanup, tmp, keep=args.keep_tmp or not ok)


if __name__ == "__main__":
    sys.exit(main())
