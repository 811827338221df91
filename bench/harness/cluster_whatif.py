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
import sys
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
    for k, (label, timings, expires) in enumerate(VARIANTS, start=1):
        rig.start_cluster(f"nats-w{k}")
        name = f"w{k}"
        config = rig.site(name, nats=rig.nats.urls, mqtt_port=rig.mqtt_ports[0], timings=timings)
        argv = [sys.executable, "-m", "bench.harness.cluster_profile", "--config", str(config),
                "--out", str(tmp / name / "profile")]
        if expires is not None:
            argv += ["--pull-expires", str(expires)]
        rig.add_service(Service(name, config, argv=argv))
        rest = rig.idle(args.idle_seconds)
        step = rig.step(label, rate, args.step_seconds)
        out["variants"][label] = {"rest": rest, "step": step, "problems": rig.services[0].problems()}
        rig.stop_cluster()
    print_what_if(out)
    return out


def print_what_if(out: dict[str, Any]) -> None:
    print(f"\n== what-ifs: one instance at {out['rate']:,.0f} readings/s")
    print("| variant | stored / acked | backlog at end, drain | lag p50 / p99 ms | service cores, µs/reading | "
          "NATS cores, µs/reading | NATS cores at rest | redeliveries | checkpoints/s | machine / other | |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label, v in out["variants"].items():
        s, rest = v["step"], v["rest"]
        c = s["cores"]
        cl = s.get("cluster") or {}
        nats_rest = sum(x for k, x in rest.items() if k.startswith("nats"))
        verdict = "held" if s["held"] else ("PUB-BOUND" if s["pub_bound"] else "not held")
        print(f"| {label} | {s['stored_total']:,} / {s['acked_total']:,} | {s['backlog_at_end']:,}, "
              f"{s['drain_s']:.1f} s | {s['lag_p50_ms']:,.0f} / {s['lag_p99_ms']:,.0f} | {s['service_cores']:.2f}, "
              f"{s['service_us_per_reading']:,.0f} | {s['broker_cores']:.2f}, {s['broker_us_per_reading']:,.0f} | "
              f"{nats_rest:.2f} | {cl.get('redeliveries', '-'):,} | {cl.get('checkpoints_per_s', '-')} | "
              f"{c.get('machine', 0):.2f} / {c.get('other', 0):.2f} | {verdict} |")
