"""Instructions per reading of the event loop's per-reading work, counted by valgrind: a figure that
does not move with the machine's load or clock, where the CPU time of bench/ingest_cpu.py moves by
20-30 % between two runs of the same code on a shared virtual machine.

    .venv/bin/python bench/ingest_instructions.py                 # this checkout
    .venv/bin/python bench/ingest_instructions.py --tree ../old   # another checkout of the project, for before/after

Each stage runs in a child process under `valgrind --tool=callgrind` twice, over 40 + N and 40 + 2N
batches of 250 e-bike readings (bench/harness/mqtt_load.py's payload, 1,000 devices, seq counting up,
10,000 readings/s of reading time); the difference of the two totals over the N × 250 readings
between them is the figure (start-up, imports and the first 40 batches cancel out). Stages:

- `decode`: Decoder.decode (topic, orjson, the payload's quick check, the Reading), over and above
  making the messages;
- `dedup + line + journal`: DeviceBook.observe, the line protocol and the device journal of each batch;
- `rules, values repeat` / `rules, temperature changes`: Engine.on_batch and on_tick with the default
  rules, the readings' values the same each time or the temperature different at each reading.

Needs valgrind (`apt-get install valgrind`). PYTHONHASHSEED is fixed so that two runs of the same
code count the same to within a few instructions.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = {"make": "making the messages", "decode": "decode", "ingest": "decode + dedup + line + journal",
          "rules-same": "rules, values repeat", "rules-changing": "rules, temperature changes"}
BATCH = 250
PACKAGES = ("bench", "ingest", "kernel", "rules")  # what the stages import
WARM = 40


def child(tree: str, stage: str, batches: int) -> None:
    """The work of one stage, in this process (run under valgrind by the parent)."""
    sys.path.insert(0, tree)
    from bench.harness.mqtt_load import PAYLOAD_FMT
    from ingest.decode import Decoder
    from ingest.device_book import DeviceBook
    from ingest.lineproto import encode_line
    from kernel.clock import ManualClock
    from kernel.ids import DeviceType
    from kernel.reading import Reading
    from kernel.settings import Settings
    from kernel.site import Site
    from rules.engine import Engine
    from rules.spec import default_rules_text, parse_rules

    ns, devices = 1_000_000_000, 1000
    t0 = 1_780_000_000 * ns
    site = Site(Settings.model_validate({"communities": [{"id": "bench", "name": "bench"}]}))
    total = (WARM + batches) * BATCH
    if stage.startswith("rules"):
        changing = stage == "rules-changing"
        engine = Engine(parse_rules(default_rules_text(), source="defaults.yaml"), site, now_ns=t0)
        ebike = DeviceType("ebike_charger")  # (once: DeviceType.EBIKE_CHARGER goes through its metaclass)

        def reading(i: int) -> Reading:
            # Received 0-3 ms after its ts, which is in whole milliseconds (epoch ms, as devices send
            # it): the device's clock offset moves up and down from one reading to the next.
            t = t0 + i * 100_000
            temp = 30.0 + (i // devices % 7) * 0.1 if changing else 30.0
            return Reading("bench", ebike, f"eb-{i % devices}", t - t % 1_000_000,
                           {"current_a": 2.0, "voltage_v": 220.0, "temperature_c": temp, "charging": True},
                           i // devices, "", "", t + i * 7919 % 2_000_000)
        for k in range(WARM + batches):
            batch = [reading(i) for i in range(k * BATCH, (k + 1) * BATCH)]
            engine.on_batch(batch, [], batch[-1].received_ns)
            engine.on_tick(batch[-1].received_ns)
        return
    ms = t0 // 1_000_000
    messages = [(f"cb/bench/ebike_charger/eb-{i % devices}/telemetry", PAYLOAD_FMT % (ms + i // 10, i // devices))
                for i in range(total)]
    if stage == "make":
        return
    decoder = Decoder("cb", site, ManualClock(t0), max_past_s=7 * 86400, max_future_s=300)
    book = DeviceBook(site)
    for k in range(0, total, BATCH):
        readings = [decoder.decode(topic, payload) for topic, payload in messages[k:k + BATCH]]
        if stage == "ingest":
            for r in readings:
                book.observe(r)  # type: ignore[arg-type]
            [encode_line(r.series, r.fields, r.ts_ns) for r in readings]  # type: ignore[union-attr]
            book.take_journal()


def count(tree: Path, stage: str, batches: int) -> int:
    """Instructions valgrind counted for one child run."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                          __file__, "--child", stage, "--batches", str(batches), "--tree", str(tree)],
                         capture_output=True, text=True, env=env, check=False, timeout=1800)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if out.returncode != 0 or found is None:
        raise SystemExit(f"{stage}: valgrind run failed:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", type=Path, default=ROOT, help="a checkout of the project to measure")
    ap.add_argument("--batches", type=int, default=40, help="N: batches of 250 readings counted")
    ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of " + ",".join(STAGES))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(str(args.tree.resolve()), args.child, args.batches)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    stages = [s for s in args.stages.split(",") if s]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        print(f"unknown stage {unknown[0]!r}; stages: {', '.join(STAGES)}", file=sys.stderr)
        return 2
    if any(s in ("decode", "ingest") for s in stages) and "make" not in stages:
        stages.insert(0, "make")
    # Byte-compiled first: the two runs of a stage start together, and one that compiled the modules
    # while its twin loaded what the other wrote would count the compiler into the difference.
    subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(args.tree.resolve() / d) for d in PACKAGES)],
                   check=True)
    runs = [(s, n) for s in stages for n in (args.batches, 2 * args.batches)]
    with ThreadPoolExecutor(max(1, os.cpu_count() or 1)) as pool:
        totals = dict(zip(runs, pool.map(lambda r: count(args.tree.resolve(), *r), runs), strict=True))
    per = {s: (totals[(s, 2 * args.batches)] - totals[(s, args.batches)]) / (args.batches * BATCH) for s in stages}
    print(f"{args.tree.resolve()}: instructions per reading ({args.batches * BATCH:,} readings counted)")
    for s in stages:
        note = f"  ({per[s] - per['make']:,.0f} over making the messages)" if s in ("decode", "ingest") else ""
        print(f"  {STAGES[s]:34s} {per[s]:9,.0f}{note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
