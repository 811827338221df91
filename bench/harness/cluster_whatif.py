"""What-ifs of the cluster benchmark (bench/cluster_throughput.py --what-if): one instance on a fresh 3-node
NATS cluster at one rate, once per variant, nothing in app/ or ingest/ changed:

    defaults                      the cluster's timings and the code as they are
    pulls expire after 0.05 s     ingest.nats_source.PULL_EXPIRES_S set to 0.05 in the instance's process
                                  (bench/harness/cluster_profile.py --pull-expires): nats-py's fetch() of
                                  up to 1,000 messages waits until that many came or the time is up
    checkpoints every 5 s         cluster timings checkpoint_s 5, ack_wait_s 30, failover_s 60 in the site
                                  file (settings, not code)

The instance runs through bench/harness/cluster_profile.py (no cProfile window is opened), so the three
variants run the same way; each reports what the benchmark's steps report.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

VARIANTS: tuple[tuple[str, dict[str, float], float | None], ...] = (
    ("defaults", {}, None),
    ("pulls expire after 0.05 s", {}, 0.05),
    ("checkpoints every 5 s (ack_wait 30 s, failover 60 s)",
     {"checkpoint_s": 5.0, "ack_wait_s": 30.0, "failover_s": 60.0}, None),
)


def run_what_if(args: argparse.Namespace, tmp: Path, cleanup: list[Any]) -> dict[str, Any]:
    from bench.harness.cluster_rig import Rig, Service
    from tests import servers

    rate = args.profile_rate or max(float(r) for r in args.rates.split(",") if r.strip())
    rig = Rig(tmp, args, servers, cleanup)
    out: dict[str, Any] = {"rate": rate, "variants": {}}
    order = [int(v) for v in args.what_if_variants.split(",") if v.strip()]
    for k, v in enumerate(order, start=1):
        label, timings, expires = VARIANTS[v - 1]
        if order[:k].count(v) > 1:
            label = f"{label} #{order[:k].count(v)}"
        rig.start_cluster(f"nats-w{k}")
        name = f"w{k}"
        config = rig.site(name, nats=rig.nats.urls, mqtt_port=rig.mqtt_ports[0], timings=timings)
        prof_dir = tmp / name / "profile"
        argv = [sys.executable, "-m", "bench.harness.cluster_profile", "--config", str(config),
                "--out", str(prof_dir), "--no-cprofile"]
        if expires is not None:
            argv += ["--pull-expires", str(expires)]
        svc = rig.add_service(Service(name, config, argv=argv))
        rest = rig.idle(args.idle_seconds)
        assert svc.proc is not None
        svc.proc.send_signal(signal.SIGUSR1)  # (the timing counters from here)
        step = rig.step(label, rate, args.step_seconds)
        svc.proc.send_signal(signal.SIGUSR2)
        counters = _window(prof_dir / "window-1.json")
        out["variants"][label] = {"rest": rest, "step": step, "problems": svc.problems(), "counters": counters}
        rig.stop_cluster()
    print_what_if(out)
    return out


def _window(path: Path) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def print_what_if(out: dict[str, Any]) -> None:
    from bench.harness.cluster_profile import print_ages

    print(f"\n== what-ifs: one instance at {out['rate']:,.0f} readings/s")
    print("| variant | stored / acked | backlog at end, drain | lag p50 / p99 ms | PUBACK p50 / p99 ms | "
          "service cores, µs/reading | "
          "NATS cores, µs/reading | NATS cores at rest | redeliveries | checkpoints/s | machine / other | |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, v in out["variants"].items():
        s, rest = v["step"], v["rest"]
        c = s["cores"]
        cl = s.get("cluster") or {}
        nats_rest = sum(x for k, x in rest.items() if k.startswith("nats"))
        verdict = "held" if s["held"] else ("PUB-BOUND" if s["pub_bound"] else "not held")
        pub = s.get("puback_ms") or {}
        print(f"| {label} | {s['stored_total']:,} / {s['acked_total']:,} | {s['backlog_at_end']:,}, "
              f"{s['drain_s']:.1f} s | {s['lag_p50_ms']:,.0f} / {s['lag_p99_ms']:,.0f} | "
              f"{pub.get('p50', '-')} / {pub.get('p99', '-')} | {s['service_cores']:.2f}, "
              f"{s['service_us_per_reading']:,.0f} | {s['broker_cores']:.2f}, {s['broker_us_per_reading']:,.0f} | "
              f"{nats_rest:.2f} | {cl.get('redeliveries', '-'):,} | {cl.get('checkpoints_per_s', '-')} | "
              f"{c.get('machine', 0):.2f} / {c.get('other', 0):.2f} | {verdict} |")
    for label, v in out["variants"].items():
        counters = v.get("counters") or {}
        ck = (counters.get("counters") or {}).get("checkpoint (whole)")
        print(f"{label}:" + (f" checkpoints took {1000 * ck['wall_s'] / ck['calls']:,.0f} ms each on average "
                             f"({int(ck['calls'])} completed in the step)" if ck else ""))
        print_ages(counters.get("ages") or {})
