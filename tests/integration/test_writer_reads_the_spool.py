"""The writer process's loop (ingest/store_process.py, SpoolWriter) against InfluxDB: it reads the
spool itself, so every batch is written once, with its own points, whatever the service's notices
said, and a full write's points are written when the service says so, not at the end of the
gathering's time."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ingest.influx import InfluxStore
from ingest.statedb import StateDB
from ingest.store_process import SpoolWriter
from kernel.reading import Point
from kernel.settings import InfluxSettings, IngestSettings
from tests.servers import InfluxD


def point(i: int) -> Point:
    return Point("ebike_charger", {"community": "c1", "device_id": f"d{i % 7}"}, {"current_a": float(i)},
                 1_700_000_000_000_000_000 + i)


async def test_the_writer_writes_every_spooled_batch_once_whatever_it_was_told(
        tmp_path: Path, influxdb: InfluxD, influx_db: str) -> None:
    db = StateDB(tmp_path / "state.db")
    reports: list[dict[str, Any]] = []
    store = InfluxStore(InfluxSettings(url=influxdb.url, database=influx_db))
    writer = SpoolWriter(db, store, IngestSettings(store_gather_s=0.01, store_gather_max_s=0.01), reports.append)
    writer.start()
    task = asyncio.create_task(writer.run())
    try:
        sizes = [3, 5, 2, 4, 6, 1]
        ids = []
        sent = 0
        for n, size in enumerate(sizes):
            entry = db.commit([point(sent + i) for i in range(size)], [])
            assert entry is not None
            ids.append(entry.id)
            sent += size
            if n in (0, 3):  # told of the first, then of the fourth (a notice for several)
                writer.spooled(entry.id)
            await asyncio.sleep(0.03 if n == 1 else 0)
        writer.spooled(ids[1])  # a late notice of batches written already changes nothing
        writer.spooled(ids[-1])  # the last two, told together (the service's held notice)
        for _ in range(100):
            if db.pending() == [] and sum(r.get("points", 0) for r in reports) == sent:
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()
    assert influxdb.count("ebike_charger", influx_db) == sent
    assert sum(r["points"] for r in reports if "stored" in r) == sent  # each written once
    assert max(r["stored"] for r in reports if "stored" in r) == ids[-1]
    assert db.pending() == []
    db.close()


async def test_a_gathering_writer_told_that_a_full_write_waits_writes_it_then(
        tmp_path: Path, influxdb: InfluxD, influx_db: str) -> None:
    """Under load a write gathers until a full write's points wait (or store_gather_max_s): the
    writer learns what waits from the spool when it is told, not from the notices' count."""
    db = StateDB(tmp_path / "state.db")
    reports: list[dict[str, Any]] = []
    store = InfluxStore(InfluxSettings(url=influxdb.url, database=influx_db))
    writer = SpoolWriter(db, store, IngestSettings(store_gather_s=0.01, store_gather_max_s=30, store_write_points=1000),
                         reports.append)
    writer.start()
    task = asyncio.create_task(writer.run())
    try:
        entry = db.commit([point(i) for i in range(300)], [])  # more than a light load's: it gathers on
        assert entry is not None
        writer.spooled(entry.id)
        await asyncio.sleep(0.1)
        entry = db.commit([point(300 + i) for i in range(800)], [])  # committed, not told of
        assert entry is not None
        await asyncio.sleep(0.1)
        assert reports == [{"start": 1}]  # still gathering: it was not told
        writer.spooled(entry.id)  # the service's notice: a full write's points wait
        for _ in range(50):
            if any("stored" in r for r in reports):
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()
    assert [(r["stored"], r["points"]) for r in reports if "stored" in r] == [(2, 1100)]
    assert influxdb.count("ebike_charger", influx_db) == 1100
    db.close()


