"""CPU per reading of the ingest's own work, in-process on one thread: what the event loop and the
database thread do for each reading, without the broker, the network or the other processes on the
machine (which make the rates of bench/ingest_throughput.py move with the machine's load).

    .venv/bin/python bench/ingest_cpu.py [--readings 200000] [--devices 1000] [--batch 137,500,3400]
                                         [--piece 27]

The readings are those of bench/ingest_throughput.py (e-bike ports, `cb/bench/ebike_charger/<id>/
telemetry`, seq counting up per device, every built-in rule on). Each batch goes the way the
service takes it: Pipeline.process a piece at a time (--piece deliveries: what gathers between two
takes under load, ~27 at 10,000/s; decode, validate, dedup, each reading's InfluxDB line protocol,
and the rule stage observing them), then as a commit takes it: the device journal entry (or the
device rows when a snapshot is due), the rule stage's seal, StateDB.commit (SQLite, WAL) and the
rule stage's committed. Batch sizes: 137 is a commit at 5,000/s, 270 at 10,000/s, 500 at ~15,000/s,
3,400 one under saturation. The figure is process CPU time per reading (µs), best of --repeat.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from ingest.decode import Decoder  # noqa: E402
from ingest.device_book import DeviceBook  # noqa: E402
from ingest.mqtt_source import Delivery  # noqa: E402
from ingest.pipeline import Pipeline  # noqa: E402
from ingest.rejections import RejectionLog  # noqa: E402
from ingest.state_thread import StateThread  # noqa: E402
from ingest.statedb import StateDB  # noqa: E402
from ingest.store_process import WriterProcess  # noqa: E402
from kernel.clock import ManualClock  # noqa: E402
from kernel.metrics import Registry  # noqa: E402
from kernel.settings import InfluxSettings, IngestSettings, Settings  # noqa: E402
from kernel.site import Site  # noqa: E402
from rules.engine import Engine  # noqa: E402
from rules.runner import RulesRunner  # noqa: E402
from rules.spec import default_rules_text, parse_rules  # noqa: E402

MS = 1_000_000


PHASES = ("decode+dedup+line+rules", "device state", "rules' seal", "SQLite commit", "released")


def run(readings: int, devices: int, batch: int, tmp: Path, phases: dict[str, float] | None = None,
        piece: int = 27) -> float:
    """Process CPU µs per reading for one pass; phases, when given, gets the µs per reading of each."""
    site = Site(Settings.model_validate({"communities": [{"id": "bench", "name": "bench"}]}))
    t0 = 1_780_000_000_000 * MS
    clock = ManualClock(t0)
    db = StateDB(tmp / f"ingest-{batch}.db")
    book = DeviceBook(site)
    async def persist(writes: list[object]) -> None:
        db.write(writes)  # type: ignore[arg-type]

    async def script(sql: str) -> None:
        db.script(sql)

    async def select(sql: str) -> list[tuple[object, ...]]:
        return db.select(sql)

    rules = RulesRunner(Engine(parse_rules(default_rules_text()), site, now_ns=t0), clock, Registry(), persist)
    asyncio.run(rules.recover(script, select))
    # As the service runs by default: the InfluxDB writer in its own process reads the spooled lines
    # (so the batch keeps no Point objects); it is not started here.
    pipeline = Pipeline(settings=IngestSettings(), decoder=Decoder("cb", site, clock, max_past_s=7 * 86400,
                                                                   max_future_s=300),
                        devices=book, state=StateThread(db), store=None, clock=clock,  # type: ignore[arg-type]
                        metrics=Registry(), rejections=RejectionLog(100),
                        writer_process=WriterProcess(tmp / "unused.db", InfluxSettings(url="http://127.0.0.1:1"),
                                                     IngestSettings()),
                        participants=[rules])
    # 60 µs of reading time apart: 16,667 readings/s spread over the devices, as in the benchmark
    deliveries = [Delivery(f"cb/bench/ebike_charger/ev{i % devices:04d}/telemetry",
                           orjson.dumps({"ts": (t0 + i * 60_000) // MS, "seq": i // devices, "current_a": 2.1,
                                         "voltage_v": 220.0, "temperature_c": 30.5, "charging": True}),
                           i % 65535 + 1, 1, 1) for i in range(readings)]
    spent_in = dict.fromkeys(PHASES, 0.0)
    tick = time.process_time

    def timed(name: str, t: float) -> float:
        now = tick()
        spent_in[name] += now - t
        return now

    started = tick()
    for b in range(0, readings, batch):
        clock._now_ns = t0 + (b + batch) * 60_000  # the service clock moves with the readings
        t = tick()
        for p in range(b, min(b + batch, readings), piece):
            pipeline.process(deliveries[p:min(p + piece, b + batch)])
        taken, pipeline._batch = pipeline._batch, type(pipeline._batch)()  # as commit() does
        t = timed("decode+dedup+line+rules", t)
        device_log, rows = pipeline._device_state(clock.now_ns())
        t = timed("device state", t)
        writes = rules.seal(clock.now_ns())
        t = timed("rules' seal", t)
        db.commit(taken.points, [], writes, lines=taken.lines, refused=taken.refused, device_log=device_log)
        if rows:  # a snapshot of the devices, in a transaction of its own as the service writes it
            db.snapshot(rows, [])
        t = timed("SQLite commit", t)
        rules.committed()
        timed("released", t)
    spent = tick() - started
    if phases is not None:
        phases.update({k: v / readings * 1e6 for k, v in spent_in.items()})
    db.close()
    return spent / readings * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readings", type=int, default=200_000)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--batch", default="137,500,3400")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--piece", type=int, default=27, help="deliveries per take (Pipeline.process)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cb-ingest-cpu-") as tmp:
        for size in (int(x) for x in args.batch.split(",")):
            passes = []
            for _ in range(args.repeat):
                phases: dict[str, float] = {}
                passes.append((run(args.readings, args.devices, size, Path(tmp), phases, args.piece), phases))
            best, phases = min(passes, key=lambda p: p[0])
            print(f"batch {size:>5}: {best:6.2f} µs CPU per reading (decode, dedup, line protocol, rules, SQLite "
                  f"commit; {args.readings:,} readings, {args.devices:,} devices)")
            print("             " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
