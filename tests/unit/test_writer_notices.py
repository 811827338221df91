"""The service tells its writer process of spooled batches only where the writer would act
(ingest/store_process.py), and a batch the writer wrote before its commit's turn of the event loop
queued it is not waited for. The writer's own reading of the spool, against InfluxDB:
tests/integration/test_writer_reads_the_spool.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ingest.influx import InfluxStore
from ingest.spool import Spool
from ingest.state_thread import StateThread
from ingest.statedb import SpoolEntry, StateDB
from ingest.store_process import WriterProcess
from ingest.store_writer import StoreWriter
from kernel.clock import SystemClock
from kernel.metrics import Registry
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


@pytest.mark.parametrize("reported_first", [True, False])
async def test_a_batch_written_before_it_was_queued_is_not_waited_for(tmp_path: Path, reported_first: bool) -> None:
    """The writer process may write a batch (read from the spool) before the commit that made it
    queued it in the service: the service's account of what waits must not keep it for ever."""
    settings = IngestSettings()
    state = StateThread(StateDB(tmp_path / "state.db"))
    process, _pipe = writer_process(tmp_path)
    spool = Spool(settings, state, SystemClock(), Registry(), process)
    store = InfluxStore(InfluxSettings())  # (never written to: the reports are the writer process's)
    writer = StoreWriter(settings, spool, store, state, SystemClock(), Registry())
    entry = SpoolEntry(7, 10, 400, None)
    report = {"stored": 7, "points": 10, "own": 0, "refused": 0, "seconds": 0.01}
    if reported_first:
        process._reported(report)  # (the service's reading of a report, as WriterProcess.run does it)
        writer._writer_event(report)
        spool.queue(entry)
    else:
        spool.queue(entry)
        process._reported(report)
        writer._writer_event(report)
    assert list(spool.entries) == [] and spool.points == 0 and spool.bytes == 0
    spool.queue(SpoolEntry(8, 3, 100, None))
    assert [e.id for e in spool.entries] == [8] and spool.points == 3
    await state.close()
    await store.close()
