"""Rule evaluation throughput: readings per second through the engine with every built-in rule
active over many devices, in-process on one core.

    .venv/bin/python bench/rules_throughput.py [--devices 10000] [--readings 500000] [--batch 1000]

Devices are spread over the four types (a site of 250 communities x 4 buildings, all registered,
so building correlation is live). Readings are plausible and quiet, with a small share crossing
thresholds so transitions happen; they are generated before the clock starts. Each batch goes
through Engine.on_batch and take_dirty (the state rows the service commits), with on_tick run
between batches as the service's deadline task would. The figure is readings / CPU second.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernel.ids import DeviceType
from kernel.reading import Reading
from kernel.settings import Settings
from kernel.site import Site
from rules.engine import Engine
from rules.spec import default_rules_text, parse_rules

# The four original types in a fixed order, so the workload stays the same as the catalog grows.
TYPES = [DeviceType(t) for t in ("smoke_detector", "ebike_charger", "water_level", "fire_lane")]


def make_site(devices: int) -> tuple[Site, list[tuple[str, DeviceType, str, str, str]]]:
    per_community = 40
    communities, entries, placed = [], [], []
    for c in range((devices + per_community - 1) // per_community):
        cid = f"c{c:04d}"
        buildings = [{"id": f"b{b}", "name": f"{b}号楼", "grid": "g1"} for b in range(4)]
        communities.append({"id": cid, "name": f"社区{c}", "grids": [{"id": "g1", "name": "一"}],
                            "buildings": buildings})
        for i in range(per_community):
            if len(placed) >= devices:
                break
            dtype = TYPES[i % 4]
            did = f"{dtype.value[:2]}-{c}-{i}"
            building = f"b{i % 4}"
            entries.append({"id": did, "type": dtype.value, "community": cid, "building": building})
            placed.append((cid, dtype, did, building, "g1"))
    return Site(Settings.model_validate({"communities": communities, "devices": entries})), placed


def fields_for(dtype: DeviceType, rng: random.Random, t: int) -> dict[str, float | bool | str]:
    hot = rng.random() < 0.002  # a few readings cross thresholds
    if dtype is DeviceType.SMOKE_DETECTOR:
        return {"obscuration_pct_m": 12.0 if hot else round(rng.uniform(0, 0.5), 2), "alarm": hot,
                "temperature_c": 22.0 + rng.random(), "battery_pct": 80.0}
    if dtype is DeviceType.EBIKE_CHARGER:
        return {"current_a": 12.0 if hot else 2.0 + rng.random(), "voltage_v": 220.0, "charging": True,
                "temperature_c": 30.0 + rng.random() + (40 if hot else 0), "battery_pct": 90.0}
    if dtype is DeviceType.WATER_LEVEL:
        return {"level_cm": 30.0 if hot else -20.0 + rng.random(), "rain_mm_h": 0.0, "battery_pct": 70.0}
    return {"occupied": hot or rng.random() < 0.05, "confidence": 0.9, "battery_pct": 60.0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--readings", type=int, default=500_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--target", type=float, default=50_000)
    ap.add_argument("--out", default="bench/results/rules.json")
    args = ap.parse_args()

    ruleset = parse_rules(default_rules_text())
    site, devices = make_site(args.devices)
    rng = random.Random(7)
    start_ns = 1_777_600_000 * 1_000_000_000
    step_ns = 10 * 1_000_000_000 // max(1, args.devices // 1000)  # each device reports about every 10 s
    readings = []
    for i in range(args.readings):
        cid, dtype, did, building, grid = devices[i % len(devices)]
        t = start_ns + (i // len(devices)) * 10_000_000_000 + (i % len(devices)) * step_ns // 1000
        readings.append(Reading(cid, dtype, did, t, fields_for(dtype, rng, t), building=building, grid=grid,
                                received_ns=t + 50_000_000))
    engine = Engine(ruleset, site, now_ns=start_ns)
    transitions = rows = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for b in range(0, len(readings), args.batch):
        batch = readings[b:b + args.batch]
        now = batch[-1].received_ns
        transitions += len(engine.on_tick(now))
        transitions += len(engine.on_batch(batch, [], now))
        rows += len(engine.take_dirty())
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    rate = len(readings) / cpu
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"devices": args.devices, "readings": len(readings), "batch": args.batch, "rules": len(ruleset.rules),
              "cpu_s": round(cpu, 3), "wall_s": round(wall, 3), "readings_per_cpu_s": round(rate),
              "transitions": transitions, "state_rows": rows, "max_rss_mb": round(rss_mb, 1),
              "target": args.target, "pass": rate >= args.target}
    print(f"rules: {len(ruleset.rules)} built-in, devices: {args.devices}, readings: {len(readings):,}, "
          f"batch: {args.batch}")
    print(f"engine: {rate:,.0f} readings per CPU second ({cpu:.2f} s CPU, {wall:.2f} s wall), "
          f"{transitions:,} transitions, {rows:,} state rows, max RSS {rss_mb:.0f} MB")
    print(f"target: {args.target:,.0f} readings/s on one core -> {'PASS' if result['pass'] else 'FAIL'}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
