"""What a wake-up costs on this machine: the CPU time of the same piece of Python work done back to
back, and done once after each sleep of the event loop, at a few wake-up rates.

    .venv/bin/python bench/wake_cost.py [--seconds 3]

The service's own figures depend on it. At a light load each reading arrives on its own, and the
event loop sleeps between them; under load the socket is read on a timer (ingest/mqtt_packets.py)
and commits come at most every flush interval. On the 2-core virtual machines this project is
measured on, work done right after a sleep took 2-10 times its CPU time back to back (caches and
branch predictors cold, the core's clock down while it idled), so the CPU per reading of
`cbrain run` at 400 readings/s is many times its in-process figure (bench/ingest_cpu.py). The
work is the same kind the service does: dict look-ups and small integer arithmetic in the
interpreter. Each line runs --seconds on uvloop.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import uvloop

# (wake-ups per second, loop iterations of work per wake-up)
CASES = ((1000, 100), (500, 100), (500, 400), (500, 1600), (125, 400), (125, 1600), (125, 6400), (30, 6400))


def work(n: int) -> dict[int, int]:
    d: dict[int, int] = {}
    for i in range(n):
        d[i % 50] = d.get(i % 50, 0) + i
    return d


def back_to_back_s(n: int, repeat: int = 3000) -> float:
    """CPU seconds of work(n) done back to back (the best of three passes)."""
    best = float("inf")
    for _ in range(3):
        started = time.thread_time()
        for _ in range(repeat):
            work(n)
        best = min(best, (time.thread_time() - started) / repeat)
    return best


async def after_sleeps_s(rate: int, n: int, seconds: float) -> tuple[float, float]:
    """CPU seconds of one sleep-and-work turn at this rate, and the turns achieved per second."""
    period = 1 / rate
    turns = 0
    cpu, wall = time.thread_time(), time.monotonic()
    while time.monotonic() - wall < seconds:
        await asyncio.sleep(period)
        work(n)
        turns += 1
    return (time.thread_time() - cpu) / turns, turns / (time.monotonic() - wall)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="per case")
    args = ap.parse_args()
    if not 0 < args.seconds <= 60:
        ap.error("--seconds: between 0 and 60")
    per_iteration = back_to_back_s(400) / 400
    print(f"work: {per_iteration * 1e9:.0f} ns of CPU per loop iteration back to back "
          f"(Python {sys.version.split()[0]})")
    print("| wake-ups/s (achieved) | work back to back | one wake-up and the work | times | busy |")
    print("|---|---|---|---|---|")
    for rate, n in CASES:
        alone = back_to_back_s(n, max(50, 1_000_000 // n)) if n > 400 else per_iteration * n
        turn, achieved = uvloop.run(after_sleeps_s(rate, n, args.seconds))
        print(f"| {rate} ({achieved:.0f}) | {alone * 1e6:.0f} µs | {turn * 1e6:.0f} µs | "
              f"×{turn / alone:.2f} | {turn * achieved * 100:.0f} % of a core |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
