#!/usr/bin/env python3
"""What InfluxDB itself spends per point, by the size of the writes it is sent (and gzip).

A fresh influxd (tests/servers.py, loopback, a temporary directory) takes --points points of the
readings bench/ingest_throughput.py publishes (ebike_charger, 1,000 devices, the service's tags and
fields, ns timestamps), as `/write?precision=ns` requests of each size in --sizes, one after the
other; then, after --settle s for its background work, the influxd process's CPU time (psutil) over
the whole pass is divided by the points. Sizes are repeated in the order given, so a size listed
twice shows how much the figure moves.

    .venv/bin/python bench/influx_batches.py
    .venv/bin/python bench/influx_batches.py --sizes 500,1000,2500,5000,5000gz --points 300000

A size ending in `gz` is sent gzip-compressed (level 1, `Content-Encoding: gzip`). The writer
process gathers its writes by these figures (ingest/store_process.py, `ingest.store_write_points`).
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402

from tests.servers import InfluxD  # noqa: E402

T0_NS = 1_780_000_000_000_000_000


def lines(start: int, n: int, devices: int) -> list[bytes]:
    """n points as the service writes them: one series per device, 1 ms apart."""
    return [(f"ebike_charger,building=unknown,community=bench,device_id=dev-{i % devices:04d},grid=unknown "
             f"current_a=2.1,voltage_v=220.0,temperature_c=30.5,charging=true {T0_NS + i * 1_000_000}").encode()
            for i in range(start, start + n)]


def main() -> int:
    """Run every size; print µs of influxd CPU per point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="500,2000,5000,5000gz,500,5000")
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--settle", type=float, default=1.5, help="seconds after a pass before its CPU is read")
    a = ap.parse_args()
    sizes = [(int(s.removesuffix("gz")), s.endswith("gz")) for s in a.sizes.split(",") if s]
    if not sizes or any(n < 1 for n, _ in sizes) or a.points < 1:
        print("influx_batches: --sizes and --points must be positive", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as d:
        influxd = InfluxD(Path(d))
        influxd.start()
        try:
            assert influxd.pid is not None
            proc = psutil.Process(influxd.pid)
            with httpx.Client(base_url=influxd.url, timeout=60) as client:
                client.post("/query", data={"q": "CREATE DATABASE bench"}).raise_for_status()
                start = 0
                for size, gz in sizes:
                    body_lines = lines(start, a.points, a.devices)
                    start += a.points
                    time.sleep(a.settle)
                    before = proc.cpu_times()
                    began = time.perf_counter()
                    for k in range(0, a.points, size):
                        body = b"\n".join(body_lines[k:k + size])
                        headers = {"Content-Encoding": "gzip"} if gz else {}
                        r = client.post("/write", params={"db": "bench", "precision": "ns"},
                                        content=gzip.compress(body, 1) if gz else body, headers=headers)
                        if r.status_code != 204:
                            print(f"influx_batches: influxd answered {r.status_code}: {r.text[:200]}", file=sys.stderr)
                            return 1
                    wall = time.perf_counter() - began
                    time.sleep(a.settle)
                    after = proc.cpu_times()
                    cpu = (after.user - before.user) + (after.system - before.system)
                    how = " gzip" if gz else "     "
                    print(f"writes of {size:6,d} points{how}: influxd {cpu / a.points * 1e6:5.1f} µs CPU per point, "
                          f"{a.points / wall:9,.0f} points/s sent", flush=True)
        finally:
            influxd.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
