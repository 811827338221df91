"""The service tells its writer process of spooled batches only where the writer would act, and
the writer reads the spool itself (ingest/store_process.py): every batch is written once, with its
own points, whatever the notices said, a full write's points are not left waiting for the gathering's
time, and a batch the writer wrote before its commit's turn of the event loop queued it is not
waited for."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ingest.spool import Spool
from ingest.state_thread import StateThread
from ingest.statedb import SpoolEntry, StateDB
from ingest.store_process import SpoolWriter, WriterProcess
from ingest.store_writer import StoreWriter
from kernel.clock import SystemClock
from kernel.metrics import Registry
from kernel.reading import Point
from kernel.settings import InfluxSettings, IngestSettings


class Pipe:
    """The writer process's stdin, as WriterProcess writes to it."""

    def __init__(self) -> None:
        self.lines: list[int] = []

    def write(self, data: bytes) -> None:
        self.lines += [int(line) for line in data.splitlines()]

    def is_closing(self) -> bool:
        return False


class Proc:
    def __init__(self) -> None:
        self.stdin = Pipe()


def writer_process(tmp_path: Path, **ingest: Any) -> tuple[WriterProcess, Pipe]:
    process = WriterProcess(tmp_path / "state.db", InfluxSettings(), IngestSettings(**ingest))
    proc = Proc()
    process.proc = proc  # type: ignore[assignment]
    process.alive = True
    return process, proc.stdin


async def test_a_waiting_writer_is_told_at_once_a_writing_one_of_several_batches_with_its_report(
        tmp_path: Path) -> None:
    process, pipe = writer_process(tmp_path, store_write_points=5000)
    process.notify(1, 10)
    assert pipe.lines == [1]  # nothing told yet: the writer waits for this
    process.notify(2, 30)
    process.notify(3, 60)
    assert pipe.lines == [1]  # it writes (or gathers) what it was told: these wait together
    process._reported({"stored": 1, "points": 10})  # it wrote only the first: told of the others now
    assert pipe.lines == [1, 3]
    process.notify(4, 55)
    process._reported({"stored": 4, "points": 55})  # it read 2-4 from the spool: nothing to tell
    assert pipe.lines == [1, 3]
    process.notify(5, 5)
    assert pipe.lines[-1] == 5  # written up to what it was told: at once again
    process.notify(6, 6)
    process._reported({"down": "influxdb: connection refused", "status": None})
    assert pipe.lines[-1] == 5  # a report of no write tells nothing
    process._reported({"start": 3})  # a writer started again (it reads the spool from 3)
    assert pipe.lines[-1] == 6


async def test_a_full_writes_points_are_told_at_once(tmp_path: Path) -> None:
    process, pipe = writer_process(tmp_path, store_write_points=1000)
    process.notify(1, 1)
    process.notify(2, 300)
    process.notify(3, 999)
    assert pipe.lines == [1]
    process.notify(4, 1000)  # a full write's points wait: the writer gathering for them writes now
    assert pipe.lines == [1, 4]
    process.notify(5, 1200)  # (until it reports, each commit says so again)
    assert pipe.lines == [1, 4, 5]


class Store:
    """Stands in for InfluxDB: keeps the bodies it is sent."""

    name = "memory"

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def write_body(self, body: bytes) -> None:
        self.bodies.append(body)


def point(i: int) -> Point:
    return Point("ebike_charger", {"community": "c1", "device_id": f"d{i % 7}"}, {"current_a": float(i)},
                 1_700_000_000_000_000_000 + i)


async def test_the_writer_writes_every_spooled_batch_once_whatever_it_was_told(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    reports: list[dict[str, Any]] = []
    store = Store()
    writer = SpoolWriter(db, store, IngestSettings(store_gather_s=0.01, store_gather_max_s=0.01),  # type: ignore[arg-type]
                         reports.append)
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
    lines = b"\n".join(store.bodies).split(b"\n")
    assert len(lines) == sent and len(set(lines)) == sent  # each once
    assert sum(r["points"] for r in reports if "stored" in r) == sent
    assert max(r["stored"] for r in reports if "stored" in r) == ids[-1]
    assert db.pending() == []
    db.close()


async def test_a_gathering_writer_told_that_a_full_write_waits_writes_it_then(tmp_path: Path) -> None:
    """Under load a write gathers until a full write's points wait (or store_gather_max_s): the
    writer learns what waits from the spool when it is told, not from the notices' count."""
    db = StateDB(tmp_path / "state.db")
    reports: list[dict[str, Any]] = []
    writer = SpoolWriter(db, Store(), IngestSettings(store_gather_s=0.01, store_gather_max_s=30,  # type: ignore[arg-type]
                                                     store_write_points=1000), reports.append)
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
    assert [(r["stored"], r["points"]) for r in reports if "stored" in r] == [(2, 1100)]
    db.close()


@pytest.mark.parametrize("reported_first", [True, False])
async def test_a_batch_written_before_it_was_queued_is_not_waited_for(tmp_path: Path, reported_first: bool) -> None:
    """The writer process may write a batch (read from the spool) before the commit that made it
    queued it in the service: the service's account of what waits must not keep it for ever."""
    settings = IngestSettings()
    state = StateThread(StateDB(tmp_path / "state.db"))
    process, _pipe = writer_process(tmp_path)
    spool = Spool(settings, state, SystemClock(), Registry(), process)
    writer = StoreWriter(settings, spool, Store(), state, SystemClock(), Registry())  # type: ignore[arg-type]
    entry = SpoolEntry(7, 10, 400, None)
    report = {"stored": 7, "points": 10, "own": 0, "refused": 0, "seconds": 0.01}
    if reported_first:
        writer._writer_event(report)
        spool.queue(entry)
    else:
        spool.queue(entry)
        writer._writer_event(report)
    assert list(spool.entries) == [] and spool.points == 0 and spool.bytes == 0
    spool.queue(SpoolEntry(8, 3, 100, None))
    assert [e.id for e in spool.entries] == [8] and spool.points == 3
    await state.close()
