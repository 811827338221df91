#!/usr/bin/env python3
"""The cluster (CONTRACT §12) against the single process, in one sitting.

(a) one `cbrain run` on Mosquitto (the existing path) and then one instance of the cluster on a 3-node
    NATS cluster, the same site and the same publisher, at each of --rates for --step-seconds;
(b) one instance against two instances on the cluster at the highest rate that one instance held.

Every step reports: what the publisher sent (and whether it kept its pace), everything acknowledged
stored in InfluxDB (counted; the drain after publishing bounded by --drain-seconds), the lag (the age
of each community's newest stored reading, sampled every 0.5 s: p50/p99 over communities and samples),
and the CPU of every process over the step and its drain: the service process(es) with their children,
the NATS servers or Mosquitto, influxd, the publisher, this script, and what other work on the machine
took (`other`) and the hypervisor stole (`steal`).

The site: tests/cluster_kit.cluster_site (the example site plus clones of its first community), with
--communities-per-partition clones in each of --partitions partitions; the readings are quiet
ebike_charger readings of --devices unregistered ports spread round-robin over those communities,
published at QoS 1 over --connections MQTT 3.1.1 connections (bench/harness/mqtt_load.py), spread over
the NATS nodes. The cluster's timings are its defaults (failover_s 10, ack_wait_s 6, checkpoint_s 1).
A step is held when the system kept up: everything acknowledged is stored, what was left to store when
publishing ended was stored within --max-drain-s (5 s), and the publisher sent at least 97 % of the asked
rate. A step that left readings behind gets --recover-seconds before the next; if they are still not all
stored then, that system's ladder ends. The publisher's PUBACK latency (send -> acknowledgement) is
reported too: for NATS, the time until the cluster stored the reading on a majority of nodes. For the
cluster, each step also counts the partitions' consumers' redeliveries and the checkpoints made.

Everything runs on 127.0.0.1 in a temporary directory, deleted after the run unless --keep-tmp; every
process is stopped at the end, also on Ctrl-C. All figures go to --out (bench/results/cluster.json).

Run: .venv/bin/python bench/cluster_throughput.py [--rates 1000,2000,4000] [--step-seconds 20]
     .venv/bin/python bench/cluster_throughput.py --profile   # where the time goes (bench/harness/cluster_profile.py)
     .venv/bin/python bench/cluster_throughput.py --what-if   # other settings (bench/harness/cluster_whatif.py)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness.cluster_rig import Rig  # noqa: E402
from bench.ingest_throughput import finish, log  # noqa: E402

CAVEAT = ("Three NATS servers, the instance(s), Mosquitto or not, influxd, the publisher and this script share "
          "this machine's {cores} cores: the figures show that the work splits and what it costs per reading, "
          "not what a cluster of real machines holds.")


def run(args: argparse.Namespace, tmp: Path, cleanup: list[Any]) -> dict[str, Any]:
    from tests import servers

    rig = Rig(tmp, args, servers, cleanup)
    out: dict[str, Any] = {"args": vars(args), "communities": len(rig.communities), "steps": [], "idle": {}}
    log(f"site: {len(rig.communities)} communities ({args.communities_per_partition} in each of "
        f"{args.partitions} partitions), {args.devices} ebike_charger ports, {args.connections} MQTT connections")
    steps: list[dict[str, Any]] = out["steps"]
    rates = [float(r) for r in args.rates.split(",") if r.strip()]

    def ladder(label: str) -> list[dict[str, Any]]:
        """The rates one after the other; a step that left readings behind gets --recover-seconds to store
        them, and ends the ladder if that is not enough (a backlog would spoil the next step)."""
        done: list[dict[str, Any]] = []
        for rate in rates:
            step = rig.step(label, rate, args.step_seconds)
            done.append(step)
            if step["missing"] and not rig.recover(args.recover_seconds):
                step["ended_ladder"] = True
                log(f"{label}: readings still missing after {args.recover_seconds:g} s more: the ladder ends here")
                break
        return done

    if "single" in args.systems:
        rig.start_single()
        out["idle"]["single"] = rig.idle(args.idle_seconds)
        steps += ladder("single")
        out["problems_single"] = rig.services[0].problems()
        rig.stop_single()

    if "cluster" in args.systems:
        rig.start_cluster()
        rig.add_instance("i1")
        out["first_hold_s"] = rig.services[-1].balanced_s
        out["idle"]["cluster-1"] = rig.idle(args.idle_seconds)
        one = ladder("cluster-1")
        steps += one
        top = max((s["rate"] for s in one if s["held"]), default=None)
        if top is None:
            top = min(rates)
            log(f"one instance held none of the rates: comparing two instances at the lowest, {top:,.0f}/s")
        out["top_held_by_one"] = top
        if args.two_instances:
            rig.add_instance("i2")
            out["rebalance_s"] = rig.services[-1].balanced_s
            out["idle"]["cluster-2"] = rig.idle(args.idle_seconds)
            steps.append(rig.step("cluster-2", top, args.step_seconds))
            if args.repeat_one:  # the same rate on one instance again, right after, for the noise
                rig.services[-1].stop()
                rig.services.pop()
                rig.watched.pop("service:i2", None)
                rig.wait_balanced()
                steps.append(rig.step("cluster-1 again", top, args.step_seconds))
        out["problems_cluster"] = {s.name: s.problems() for s in rig.services}
        out["handovers"] = {s.name: s.handovers() for s in rig.services}
        out["unbalanced"] = rig.unbalanced
        rig.stop_cluster()
    return out


# ---- the table -----------------------------------------------------------------------------------


def fmt_n(v: Any, spec: str = ",.0f") -> str:
    return "-" if v is None else format(v, spec)


def print_table(out: dict[str, Any]) -> None:
    cores_n = os.cpu_count() or 0
    print()
    print("| system | offered/s | sent/s | stored / acked | backlog at end, drain | lag p50 / p99 ms | "
          "PUBACK p50 / p99 ms | service cores, µs/reading | broker cores, µs/reading (each) | influxd cores | "
          "publisher cores | machine / other / steal | |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    names = {"single": "single process, Mosquitto", "cluster-1": "cluster, 1 instance",
             "cluster-2": "cluster, 2 instances", "cluster-1 again": "cluster, 1 instance (again)"}
    for s in out["steps"]:
        c = s["cores"]
        brokers = [k for k in c if k.startswith("nats") or k == "mosquitto"]
        each = "/".join(f"{c[k]:.2f}" for k in brokers) if len(brokers) > 1 else ""
        svcs = [k for k in c if k.startswith("service:")]
        svc_each = " (" + "/".join(f"{c[k]:.2f}" for k in svcs) + ")" if len(svcs) > 1 else ""
        verdict = "held" if s["held"] else ("PUB-BOUND" if s["pub_bound"] else "not held")
        behind = s["publisher_max_lag_s"]
        pub = s.get("puback_ms") or {}
        sent = f"{fmt_n(s['achieved_rate'])}" + (f" (≤ {behind:.1f} s behind)" if behind >= 0.5 else "")
        print(f"| {names.get(s['system'], s['system'])} | {fmt_n(s['rate'])} | {sent} | "
              f"{s['stored_total']:,} / {s['acked_total']:,} | {s['backlog_at_end']:,}, {s['drain_s']:.1f} s | "
              f"{fmt_n(s['lag_p50_ms'])} / {fmt_n(s['lag_p99_ms'])} | "
              f"{fmt_n(pub.get('p50'))} / {fmt_n(pub.get('p99'))} | "
              f"{s['service_cores']:.2f}{svc_each}, {s['service_us_per_reading']:,.0f} | "
              f"{s['broker_cores']:.2f}{f' ({each})' if each else ''}, {s['broker_us_per_reading']:,.0f} | "
              f"{c.get('influxd', 0):.2f} | {c.get('publisher', 0):.2f} | "
              f"{c.get('machine', 0):.2f} / {c.get('other', 0):.2f} / {c.get('steal', 0):.2f} | {verdict} |")
    print()
    print("What a reading adds: (cores in the step - cores at rest) / readings, in µs; the rest's cores are the "
          "system's own when nothing is published (below).")
    print("| system | offered/s | service µs/reading above rest | broker(s) µs/reading above rest | "
          "redeliveries | checkpoints/s |")
    print("|---|---|---|---|---|---|")
    for s in out["steps"]:
        rest = out.get("idle", {}).get(s["system"].removesuffix(" again"), {})
        c = s["cores"]
        svc_rest = sum(v for k, v in rest.items() if k.startswith("service:") and k in c)
        brk_rest = sum(v for k, v in rest.items() if k.startswith("nats") or k == "mosquitto")
        per = s["window_s"] * 1e6 / max(1, s["sent"])
        cl = s.get("cluster") or {}
        print(f"| {names.get(s['system'], s['system'])} | {fmt_n(s['rate'])} | "
              f"{(s['service_cores'] - svc_rest) * per:,.0f} | {(s['broker_cores'] - brk_rest) * per:,.0f} | "
              f"{fmt_n(cl.get('redeliveries'))} | {fmt_n(cl.get('checkpoints_per_s'), '.1f')} |")
    print()
    for name, idle in out.get("idle", {}).items():
        print(f"idle ({args_idle(out)} s, nothing published), {name}: "
              + ", ".join(f"{k} {v:.2f}" for k, v in idle.items()) + " cores")
    if "first_hold_s" in out:
        print(f"cluster: every partition held once {out['first_hold_s']} s after the first instance started; "
              f"two instances balanced {out.get('rebalance_s', '-')} s after the second started")
    for name, hs in (out.get("handovers") or {}).items():
        took = [h["took_s"] for h in hs if h.get("took_s") is not None]
        if took:
            print(f"{name}: {len(hs)} partitions taken (the last 20), each started in "
                  f"{min(took):.2f}-{max(took):.2f} s, from " + ", ".join(sorted({str(h.get('from')) for h in hs})))
    for u in out.get("unbalanced") or []:
        print(f"NOT BALANCED in time: running {u['held']}, wanted {u['wanted']}, "
              f"records (holder, epoch) {u['records']}")
    if "top_held_by_one" in out:
        print(f"highest rate one instance held: {out['top_held_by_one']:,.0f}/s")
    for key in ("problems_single", "problems_cluster"):
        if out.get(key):
            print(f"{key.removeprefix('problems_')} log warnings/errors: {json.dumps(out[key], ensure_ascii=False)}")
    print()
    print("Caveat: " + CAVEAT.format(cores=cores_n))
    gap_ms = out["communities"] * 1000 / min((s["rate"] for s in out["steps"]), default=1)
    print("lag = wall clock at the query - the newest stored reading's ts, per community every 0.5 s (from 2 s "
          "into the step); it includes up to one interval between a community's readings "
          f"({out['communities']} communities: {gap_ms:.0f} ms at the lowest rate).")


def args_idle(out: dict[str, Any]) -> Any:
    return out["args"]["idle_seconds"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="1000,2000,4000", help="offered readings/s, one step each")
    ap.add_argument("--step-seconds", type=float, default=20.0)
    ap.add_argument("--drain-seconds", type=float, default=30.0, help="bound on the wait after publishing")
    ap.add_argument("--idle-seconds", type=float, default=5.0, help="CPU of each system at rest, before its steps")
    ap.add_argument("--systems", default="single,cluster", help="single, cluster or both")
    ap.add_argument("--no-two-instances", dest="two_instances", action="store_false",
                    help="skip (b): the second instance")
    ap.add_argument("--repeat-one", action="store_true",
                    help="after (b), stop the second instance and repeat the step on one instance")
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--communities-per-partition", type=int, default=3)
    ap.add_argument("--devices", type=int, default=960, help="ebike_charger ports over the communities")
    ap.add_argument("--connections", type=int, default=6, help="MQTT connections of the publisher")
    ap.add_argument("--inflight", type=int, default=2000, help="unacknowledged QoS 1 messages per connection")
    ap.add_argument("--max-drain-s", type=float, default=5.0,
                    help="a held step stored what was left when publishing ended within this")
    ap.add_argument("--recover-seconds", type=float, default=60.0,
                    help="after a step that left readings behind, wait this much more before the next step")
    ap.add_argument("--profile", action="store_true",
                    help="instead: one instance in-process under cProfile at the top rate (cluster_profile.py)")
    ap.add_argument("--what-if", action="store_true",
                    help="instead: one instance at the top rate with defaults, short pulls, checkpoints every 5 s")
    ap.add_argument("--what-if-variants", default="1,2,3",
                    help="with --what-if: which variants in which order (1 defaults, 2 short pulls, 3 checkpoints "
                         "every 5 s; e.g. 1,3,1,3)")
    ap.add_argument("--profile-rate", type=float, default=0.0,
                    help="with --profile or --what-if: the rate (default: the top of --rates)")
    ap.add_argument("--costs-rates", default="1000,4000",
                    help="with --profile: the rates of the NATS servers' costs without the service")
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "cluster.json"))
    args = ap.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    if not rates or args.step_seconds <= 0 or args.step_seconds > 300 or max(rates) > 50_000:
        ap.error("--rates: 1..50,000/s; --step-seconds: up to 300")
    if args.devices < max(rates) / 1000:
        ap.error("--devices must be at least the rate / 1000 (each device's ts must be distinct)")

    tmp = Path(tempfile.mkdtemp(prefix="cb-cluster-bench-"))
    cleanup: list[Any] = []

    def _terminated(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _terminated)
    ok = False
    out: dict[str, Any] = {}
    started = time.time()
    try:
        if args.profile:
            from bench.harness.cluster_profile import run_profile

            out = run_profile(args, tmp, cleanup)
        elif args.what_if:
            from bench.harness.cluster_whatif import run_what_if

            out = run_what_if(args, tmp, cleanup)
        else:
            out = run(args, tmp, cleanup)
        ok = True
        if out.get("unbalanced"):
            args.keep_tmp = True  # (the instances' logs tell why)
    except KeyboardInterrupt:
        log("interrupted")
    except Exception as exc:
        log(f"ERROR {type(exc).__name__}: {exc}")
        traceback.print_exc()
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        finish(cleanup, tmp, keep=args.keep_tmp or not ok)
    out["started"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started))
    out["took_s"] = round(time.time() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1, default=str), encoding="utf-8")
    if ok and not (args.profile or args.what_if):
        print_table(out)
    log(f"took {out['took_s']} s; figures in {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
