"""What grouping seq gaps costs: GapWatch.gap per gap, and closing a burst, on a manual clock.

    .venv/bin/python bench/loss_grouping.py                       # 10,000 devices, 200,000 gaps
    .venv/bin/python bench/loss_grouping.py --devices 100000 --gaps 1000000

Readings without a gap never reach GapWatch (the pipeline calls it only for gaps and late readings),
so this is the whole cost the grouping adds to ingest: the figure to compare is per gap.
"""

from __future__ import annotations

import argparse
import time

from ingest.losses import GapWatch
from kernel.clock import ManualClock


def main() -> None:
    """Print the cost per gap, per late reading, and of closing the bursts."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--communities", type=int, default=20)
    ap.add_argument("--gaps", type=int, default=200_000)
    args = ap.parse_args()
    clock = ManualClock()
    w = GapWatch(window_s=20, min_devices=3, report_s=3600, device_gaps=3, device_window_s=3600)
    devices = [(f"c{i % args.communities}", f"sd-{i}") for i in range(args.devices)]
    started = time.perf_counter()
    for n in range(args.gaps):
        community, device = devices[n % args.devices]
        w.gap(community, "smoke_detector", device, "b01", "g1", 3, clock.now_ns())
    per_gap = (time.perf_counter() - started) / args.gaps
    started = time.perf_counter()
    for n in range(args.gaps):
        community, device = devices[n % args.devices]
        w.late(community, device)
    per_late = (time.perf_counter() - started) / args.gaps
    clock.advance(21)
    started = time.perf_counter()
    fired = w.on_tick(clock.now_ns())
    close = time.perf_counter() - started
    print(f"{args.gaps:,} gaps over {args.devices:,} devices in {args.communities} communities")
    print(f"  gap():       {per_gap * 1e6:.2f} µs per gap")
    print(f"  late():      {per_late * 1e6:.2f} µs per late reading")
    print(f"  close burst: {close * 1e3:.2f} ms for {args.communities} communities ({len(fired)} alerts)")


if __name__ == "__main__":
    main()
