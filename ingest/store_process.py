"""The InfluxDB writer in a process of its own, reading the durable spool from the state database.

    service (Pipeline.commit) ──commit──► StateDB spool (SQLite, WAL) ◄──read, release── writer process
          │  "id": batches are committed up to id, on the child's stdin          │
          └──────────────────────────────────────────────────────────────────────┘
          ◄── one JSON line per event on the child's stdout: stored, store down, dead-lettered

The writer shares nothing with the acknowledgement path but the SQLite file: the service commits
and acknowledges, the child POSTs the spooled line protocol, dead-letters what InfluxDB refuses and
deletes written batches from the spool, oldest first. What a write takes it reads from the spool
(SpoolWriter._read_spool): a notice only wakes it (WriterProcess.notify).
Either may be killed at any moment: a batch leaves the spool only after InfluxDB took it (a second
write of a point replaces it), the service restarts a writer that died, and a writer whose service
died sees its stdin close and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from ingest.influx import InfluxStore
from ingest.statedb import StateDB
from kernel.backoff import Backoff
from kernel.errors import BadPointError, StoreError
from kernel.settings import InfluxSettings, IngestSettings

log = logging.getLogger("cbrain.ingest.writer")

# As in the inline writer (ingest/store_writer.py): a write gathers until this many points wait.
GATHER_BELOW = 256
PR_SET_PDEATHSIG = 1
# The lines of the service's own points (alert events, measurement "alert"), which are not readings.
OWN = (b"alert,", b"alert ")


class SpoolWriter:
    """The child's loop: spool → InfluxDB, oldest first, retried until taken; reports on stdout."""

    def __init__(self, db: StateDB, store: InfluxStore, ingest: IngestSettings,
                 report: Callable[[dict[str, Any]], None]) -> None:
        self.db = db
        self.store = store
        self.settings = ingest
        self.report = report
        self.queue: deque[tuple[int, int, float]] = deque()  # (spool id, points, when seen)
        self.newest = 0  # the newest batch in the queue (or written)
        self.waiting_points = 0
        # The newest batch the service told of, and when the first told of since the spool was last
        # read was (see spooled()).
        self.told = 0
        self.told_at = 0.0
        self.wake = asyncio.Event()

    def start(self) -> None:
        """Queue what the spool holds and tell the service where the spool now starts."""
        self._read_spool()
        if not self.queue:
            self.newest = self.db.next_spool_id() - 1
        # Batches before this one were written (and released) by a writer that died before it said so.
        self.report({"start": self.queue[0][0] if self.queue else self.newest + 1})
        self.wake.set()

    def spooled(self, entry_id: int) -> None:
        """The service committed batches up to entry_id. A notice wakes the writer; which batches
        there are, and their points, it reads from the spool (_read_spool): the service tells of
        several batches at once, and not of every one (WriterProcess.notify)."""
        if entry_id > max(self.newest, self.told):
            if self.told <= self.newest:
                self.told_at = time.monotonic()
            self.told = entry_id
            self.wake.set()

    def _read_spool(self) -> None:
        """Queue the batches committed after the newest queued, as the spool holds them."""
        seen = self.told_at if self.told > self.newest else time.monotonic()
        for entry_id, points in self.db.spooled_after(self.newest):
            self.queue.append((entry_id, points, seen))
            self.waiting_points += points
            self.newest = entry_id

    async def _gather(self) -> None:
        """Let a write gather. At a light load, until GATHER_BELOW points wait or the oldest has
        waited store_gather_s (a hundred small requests a second become a few). Under load, until
        store_write_points wait or the oldest has waited store_gather_max_s: InfluxDB's own CPU per
        point halves from writes of 500 to writes of 5,000, and this process waiting costs the
        service nothing (alerts never wait for the store). What waits is read from the spool at each
        look (the service's notice of a full write, or the time up)."""
        settings = self.settings
        self._read_spool()
        if not self.queue:
            return
        oldest = self.queue[0][2]
        for want, until in ((GATHER_BELOW, oldest + settings.store_gather_s),
                            (min(settings.store_write_points, settings.batch_size),
                             oldest + max(settings.store_gather_s, settings.store_gather_max_s))):
            while self.waiting_points < want and (gather := until - time.monotonic()) > 0:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), gather)
                self._read_spool()
            if self.waiting_points < GATHER_BELOW:
                return  # a light load: written now

    async def run(self) -> None:
        """Write until killed."""
        backoff = Backoff(0.2, self.settings.retry_max_s)
        while True:
            if not self.queue and self.told <= self.newest:
                self.wake.clear()
                await self.wake.wait()
                continue
            await self._gather()
            if not self.queue:
                continue  # (told of batches a write already took)
            first, count, last = self.queue[0][0], 0, 0
            taken = 0
            for entry_id, n, _ in self.queue:
                if taken and count + n > self.settings.batch_size:
                    break
                last, count, taken = entry_id, count + n, taken + 1
            bodies = self.db.load_bodies(first, last)
            try:
                started = time.perf_counter()
                refused = await self._write(bodies)
                seconds = time.perf_counter() - started
            except StoreError as exc:
                self.report({"down": str(exc), "status": exc.status})
                delay = exc.retry_after_s if exc.retry_after_s is not None else backoff.next()
                await asyncio.sleep(min(delay, self.settings.retry_max_s))
                continue
            except Exception as exc:  # a fault of ours or of a library: keep the batch, say so, retry
                log.exception("writing to %s failed unexpectedly", self.store.name)
                self.report({"down": f"unexpected {type(exc).__name__}: {exc}", "status": None})
                await asyncio.sleep(backoff.next())
                continue
            backoff.reset()
            # A request and its response hold each other (httpx), and with them the body sent:
            # the young generations are collected now, or this process, which makes few objects
            # between collections, kept dozens of written bodies (~0.5 MB each under load).
            gc.collect(1)
            self.db.release_range(first, last)
            for _ in range(taken):
                self.waiting_points -= self.queue.popleft()[1]
            self.report({"stored": last, "points": count, "own": sum(map(own_lines, bodies)), "refused": refused,
                         "seconds": seconds})

    async def _write(self, bodies: list[bytes]) -> int:
        """Write bodies of lines as one request; the points InfluxDB refuses are found and
        dead-lettered (only then are the bodies split into lines: a line is a body of one)."""
        try:
            await self.store.write_body(b"\n".join(bodies))
            return 0
        except BadPointError as exc:
            return await self._refused([line for body in bodies for line in body.split(b"\n")], exc)

    async def _refused(self, lines: list[bytes], exc: BadPointError) -> int:
        """InfluxDB refused a write of these lines: halve until the bad points stand alone, and
        dead-letter those; how many were."""
        if len(lines) == 1:
            self.db.dead_letter_line(time.time_ns(), str(exc), lines[0])
            self.report({"bad_point": str(exc), "dead": True})
            return 1
        self.report({"bad_point": str(exc), "dead": False})
        half = len(lines) // 2
        return await self._write(lines[:half]) + await self._write(lines[half:])


def own_lines(body: bytes) -> int:
    """How many lines of a spooled body are the service's own points (alert events), not readings.
    A line never holds a line break (ingest.lineproto refuses one in a value), so each line but
    the first starts after a newline."""
    return body.startswith(OWN) + sum(body.count(b"\n" + start) for start in OWN)


def _die_with_parent() -> None:
    """Linux: be killed when the service dies, even while stuck in a write (stdin EOF covers the rest)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


async def child_main() -> None:
    """The writer process: its settings on the first stdin line, then one spooled batch a line."""
    _die_with_parent()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    config = orjson.loads(await reader.readline())
    if os.getppid() != config["parent"]:
        return  # the service died before this process could follow it
    ingest = IngestSettings.model_validate(config["ingest"])
    db = StateDB(Path(config["db"]), fsync=ingest.fsync, own_checkpoints=True)  # the service checkpoints
    store = InfluxStore(InfluxSettings.model_validate(config["influx"]))
    out = sys.stdout.buffer

    def report(event: dict[str, Any]) -> None:
        out.write(orjson.dumps(event) + b"\n")
        out.flush()

    writer = SpoolWriter(db, store, ingest, report)
    writer.start()

    async def listen() -> None:
        while line := await reader.readline():
            writer.spooled(int(line))

    task = asyncio.create_task(writer.run(), name="spool-writer")
    listening = asyncio.create_task(listen(), name="spool-notices")
    await asyncio.wait((task, listening), return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # the writer failed: exit with its error, and the service starts another
    # stdin closed: the service stopped or died. A batch being written stays in the spool.
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    db.close()


class WriterProcess:
    """The service's side: starts the writer process, tells it of spooled batches, restarts it if it dies."""

    def __init__(self, db_path: Path, influx: InfluxSettings, ingest: IngestSettings) -> None:
        self.config = orjson.dumps({"db": str(db_path), "influx": influx.model_dump(mode="json"),
                                    "ingest": ingest.model_dump(mode="json"), "parent": os.getpid()}) + b"\n"
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.alive = False  # between start and the end of its reports (a dead pipe is not written to)
        # The newest batch the writer reported written (ingest.spool does not wait for those).
        self.written = 0
        # Notices (see notify): the newest batch told of, the newest committed since the last notice,
        # and the points a write gathers for under load.
        self._told = 0
        self._held = 0
        self._full = min(ingest.store_write_points, ingest.batch_size)

    def notify(self, entry_id: int, waiting: int) -> None:
        """A batch is committed to the spool, and `waiting` points are now spooled and not written (a
        writer not running finds them in the spool when it starts).

        The writer reads the spool itself (SpoolWriter._read_spool), so a notice only has to wake
        it where it would act: when it has written everything it was told of (it may be waiting
        for work), and once a full write's points wait (it may be gathering for them). Other
        batches are told of with the writer's next report (_reported), which wakes this loop
        anyway. A notice wakes the writer process: at a light load one for each commit cost it more
        CPU than its writes did."""
        self._held = entry_id
        if self._told <= self.written or waiting >= self._full:
            self._tell()

    def _tell(self) -> None:
        held, self._held = self._held, 0
        proc = self.proc
        if (held > max(self._told, self.written) and proc is not None and proc.stdin is not None and self.alive
                and not proc.stdin.is_closing()):
            with contextlib.suppress(ConnectionError, RuntimeError):
                proc.stdin.write(b"%d\n" % held)
                self._told = held

    def _reported(self, event: dict[str, Any]) -> None:
        """The writer's report: what it has written, and the batches held since, told of now (the
        writer read those it had written from the spool itself; it may wait for the others)."""
        if "stored" in event:
            self.written = max(self.written, event["stored"])
        elif "start" in event:
            self.written = max(self.written, event["start"] - 1)
        else:
            return
        if self._held:
            self._tell()

    async def run(self, on_event: Callable[[dict[str, Any]], None]) -> None:
        """Keep a writer process running and pass on its reports, until cancelled."""
        backoff = Backoff(0.2, 5.0)
        try:
            while True:
                self.proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "ingest.store_process", stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE, limit=1 << 20)
                assert self.proc.stdin is not None and self.proc.stdout is not None
                self.proc.stdin.write(self.config)
                self.alive = True
                self._told = 0  # (a new writer: the next batch is told of at once)
                started = time.monotonic()
                while line := await self.proc.stdout.readline():
                    event = orjson.loads(line)
                    self._reported(event)
                    on_event(event)
                self.alive = False
                code = await self.proc.wait()
                self.restarts += 1
                log.error("the store writer process (pid %d) exited with %s; starting another", self.proc.pid, code)
                if time.monotonic() - started > 30:
                    backoff.reset()
                await asyncio.sleep(backoff.next())
        finally:
            await self.stop()

    async def stop(self) -> None:
        """End the writer process (what it was writing stays in the spool for the next one)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 2.0)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        except asyncio.CancelledError:
            proc.kill()
            raise


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # As in the service (app/cli/common.py): a line per HTTP request would drown the store's own
    # lines (a refused write is told once by the service, with what to fix).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(child_main())
