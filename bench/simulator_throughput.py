#!/usr/bin/env python3
"""Simulator throughput: how exactly and how cheaply `device_sim.fleet.Fleet` holds a rate, on one core.

One run starts a fresh Mosquitto (the `tests/servers.py` configuration) on loopback and measures, each
phase in its own child process (so CPU and RSS are the simulator's alone):

a. target   - `--rate` readings/s (default 20,000) from `--devices` devices (10,000) over
              `--connections` gateway connections (4) for `--duration` s (20): achieved rate, rate error
              against the target, readings acknowledged by the broker, the simulator's CPU (process CPU
              seconds / wall seconds while publishing; one thread, so at most 1.0) and CPU per reading.
b. big      - `--big-devices` devices (100,000) at one reading every `--big-interval` s (60, so 1,667/s)
              for `--big-duration` s (60): achieved rate, lateness (how far behind schedule the
              simulator ever was: it must stay small, i.e. not falling behind), start-up time (building
              the devices, connecting, 100,000 retained `online` statuses) and RSS.

Nothing subscribes: the broker's PUBACK is the proof of delivery a QoS 1 publisher gets. The broker's CPU
while publishing is shown for reference (it shares the machine).

Run: .venv/bin/python bench/simulator_throughput.py [--rate 20000] [--duration 20] [--only a|b]
     [--out bench/results/simulator.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MB, from /proc."""
    now = peak = 0.0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                now = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return now, peak


def phase_main(url: str, devices: int, rate: float | None, interval: float | None, connections: int,
               duration: float, results: Any) -> None:
    """Child process: one Fleet run; reports its figures (or the error) on the results queue."""
    try:
        from device_sim.fleet import Fleet, Stats, generate_devices

        t_build = time.monotonic()
        specs = generate_devices(devices, [f"c{i:03d}" for i in range(1, 101)])
        if interval is not None:
            rate = devices / interval
        fleet = Fleet(url, "cb", specs, rate=rate, connections=connections, client_id_prefix="bench-sim")
        built_s = time.monotonic() - t_build
        samples: list[dict[str, Any]] = []

        def progress(st: Stats) -> None:
            samples.append({"t": st.elapsed, "cpu": time.process_time(), "readings": st.readings,
                            "acked": st.acked, "late_now": st.late_now, "late_max": st.late_max,
                            "rss_mb": rss_mb()[0]})

        t_run = time.monotonic()
        cpu_run = time.process_time()
        st = asyncio.run(fleet.run(duration=duration, progress=progress))
        wall_run = time.monotonic() - t_run
        cpu_total = time.process_time() - cpu_run
        first, last = samples[0], samples[-1]
        steady_cpu = (last["cpu"] - first["cpu"]) / (last["t"] - first["t"]) if last["t"] > first["t"] else None
        steady_readings = last["readings"] - first["readings"]
        now_mb, peak_mb = rss_mb()
        results.put({
            "ok": True, "stats": st.as_dict(), "links": len(fleet.core.links), "build_s": round(built_s, 2),
            "startup_s": round(wall_run - st.elapsed - 0.0, 2),  # connect + announce + final drain/disconnect
            "wall_s": round(wall_run, 2), "cpu_s": round(cpu_total, 2),
            "cpu_per_wall_publishing": None if steady_cpu is None else round(steady_cpu, 3),
            "cpu_us_per_reading": round(1e6 * (last["cpu"] - first["cpu"]) / steady_readings, 1)
            if steady_readings else None,
            "rss_mb": round(now_mb, 1), "rss_peak_mb": round(peak_mb, 1),
            "samples": samples,
        })
    except BaseException:
        results.put({"ok": False, "error": traceback.format_exc()})


def run_phase(name: str, ctx: Any, broker: Any, args: argparse.Namespace, **kw: Any) -> dict[str, Any]:
    import psutil

    results = ctx.Queue()
    proc = ctx.Process(target=phase_main, name=f"bench-sim-{name}", daemon=True,
                       kwargs={"url": broker.url, "results": results, **kw})
    mq = psutil.Process(broker.pid)
    mq_cpu0, t0 = sum(mq.cpu_times()[:2]), time.monotonic()
    proc.start()
    timeout = kw["duration"] + 300
    try:
        res: dict[str, Any] = results.get(timeout=timeout)
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if not res["ok"]:
        raise RuntimeError(f"phase {name} failed:\n{res['error']}")
    res["broker_cpu_per_wall"] = round((sum(mq.cpu_times()[:2]) - mq_cpu0) / (time.monotonic() - t0), 2)
    st = res["stats"]
    res["rate_error_pct"] = round(100.0 * (st["rate"] - st["target_rate"]) / st["target_rate"], 3)
    return res


def print_phase(title: str, res: dict[str, Any]) -> list[tuple[str, str]]:
    st = res["stats"]
    return [
        (title, f"{st['devices']:,} devices over {res['links']} connections, target {st['target_rate']:,.1f} "
                f"readings/s for {st['elapsed']:.1f} s"),
        ("  achieved rate", f"{st['rate']:,.1f} readings/s (rate error {res['rate_error_pct']:+.3f} %)"),
        ("  readings / acked / errors", f"{st['readings']:,} / {st['acked']:,} / {st['errors']:,}"),
        ("  lateness", f"max {st['late_max'] * 1000:.1f} ms, at the end {st['late_now'] * 1000:.1f} ms"),
        ("  simulator CPU", f"{res['cpu_per_wall_publishing']} CPU s per wall s while publishing, "
                            f"{res['cpu_us_per_reading']} µs per reading"),
        ("  start-up", f"{res['build_s']} s to build the devices, {res['startup_s']} s to connect, announce "
                       "and finish"),
        ("  simulator RSS", f"{res['rss_mb']} MB at the end, peak {res['rss_peak_mb']} MB"),
        ("  broker CPU", f"{res['broker_cpu_per_wall']} CPU s per wall s (whole phase)"),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=20_000.0, help="phase a: target readings per second")
    ap.add_argument("--devices", type=int, default=10_000, help="phase a: devices")
    ap.add_argument("--connections", type=int, default=4, help="gateway connections (both phases)")
    ap.add_argument("--duration", type=float, default=20.0, help="phase a: seconds")
    ap.add_argument("--big-devices", type=int, default=100_000, help="phase b: devices")
    ap.add_argument("--big-interval", type=float, default=60.0, help="phase b: seconds between a device's readings")
    ap.add_argument("--big-duration", type=float, default=60.0, help="phase b: seconds")
    ap.add_argument("--only", choices=["a", "b"], default=None, help="run one phase")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "simulator.json"))
    ap.add_argument("--keep-tmp", action="store_true", help="keep the broker's directory")
    args = ap.parse_args(argv)

    from tests.servers import Mosquitto

    tmp = Path(tempfile.mkdtemp(prefix="cb-bench-sim-"))
    broker = Mosquitto(tmp / "mosquitto")
    ctx = mp.get_context("spawn")
    out: dict[str, Any] = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                           "machine": {"nproc": os.cpu_count(), "python": platform.python_version(),
                                       "platform": platform.platform()}, "args": vars(args)}
    rows: list[tuple[str, str]] = []
    ok = False
    try:
        broker.start()
        log(f"broker {broker.url} in {tmp}")
        if args.only in (None, "a"):
            log(f"phase a: {args.rate:,.0f} readings/s from {args.devices:,} devices over {args.connections} "
                f"connections for {args.duration:g} s")
            out["a"] = run_phase("a", ctx, broker, args, devices=args.devices, rate=args.rate, interval=None,
                                 connections=args.connections, duration=args.duration)
            rows += print_phase("a: target rate", out["a"])
        if args.only in (None, "b"):
            log(f"phase b: {args.big_devices:,} devices, one reading every {args.big_interval:g} s, for "
                f"{args.big_duration:g} s")
            out["b"] = run_phase("b", ctx, broker, args, devices=args.big_devices, rate=None,
                                 interval=args.big_interval, connections=args.connections,
                                 duration=args.big_duration)
            rows += print_phase("b: many devices", out["b"])
        ok = True
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        broker.stop()
        if args.keep_tmp or not ok:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    width = max(len(k) for k, _ in rows)
    print("\n" + "=" * 100)
    print(f"{'machine':<{width}}  {out['machine']['nproc']} cores, Python {out['machine']['python']}")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print("=" * 100)
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
