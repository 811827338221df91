"""The spool: batches committed to the state database and not yet taken by the reading store.

    Pipeline.commit ─► transaction (StateDB: spool row + the batch's writes) ─► queue ─┐
    alert events ────► add ──────────────────────────────────────────────────────────┤
                                                                                      ▼
                                     entries (in memory, oldest first) ─► StoreWriter (or the writer process)

What is committed here is durable; the entries in memory are only what the writer has still to
write, with their points while MEMORY_POINTS allows (beyond it the writer reads them back). The
byte limit bounds the backlog: when it is reached the pipeline stops taking deliveries. So does a
hold (`hold`): the disk watch's, while state_dir is short of space or cannot be written.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from ingest.lineproto import encode_lines
from ingest.state_thread import StateThread
from ingest.statedb import SpoolEntry
from ingest.store_process import WriterProcess
from kernel.clock import Clock
from kernel.metrics import Registry
from kernel.reading import Point
from kernel.settings import IngestSettings
from kernel.writes import Write

log = logging.getLogger("cbrain.ingest")

# Points kept in memory between commit and store; beyond this the writer reads them back from disk.
MEMORY_POINTS = 200_000


class Spool:
    """The committed batches waiting for the store, their size, and the transaction that adds one."""

    def __init__(self, settings: IngestSettings, state: StateThread, clock: Clock, metrics: Registry,
                 writer_process: WriterProcess | None = None) -> None:
        self.db = state.db
        self.state = state
        self.clock = clock
        # The store writer in a process of its own (ingest/store_process.py), or None: written here.
        self.writer_process = writer_process
        self.entries: deque[SpoolEntry] = deque()
        self.has_entries = asyncio.Event()
        self.space = asyncio.Event()
        self.space.set()
        self.memory_points = 0
        self.limit = int(settings.spool_max_mb * 1024 * 1024)
        self.bytes = 0
        self.points = 0
        self.held: str | None = None  # why intake is held besides a full spool (the disk watch's), or None
        m = metrics
        self.m_dead = m.counter("cb_readings_dead_lettered_total", "Points the store refused as malformed")
        m.gauge("cb_spool_points", "Readings committed but not yet in the store", source=lambda: self.points)
        m.gauge("cb_spool_bytes", "Bytes of spooled batches", source=lambda: self.bytes)
        m.gauge("cb_spool_limit_bytes", "Spool size limit", source=lambda: self.limit)
        m.gauge("cb_spool_full", "1 while the spool is full and ingest waits", source=lambda: float(self.full))

    @property
    def full(self) -> bool:
        """Whether the backlog reached its limit."""
        return self.bytes >= self.limit

    @property
    def paused(self) -> bool:
        """Whether the pipeline takes no deliveries now: the spool is full, or intake is held."""
        return self.bytes >= self.limit or self.held is not None

    def hold(self, reason: str | None) -> None:
        """Hold intake for this reason (said where it is decided), or (None) let it go on."""
        self.held = reason
        if reason is None:
            self.space.set()

    async def wait_for_space(self) -> None:
        """Wait until the store has taken enough for the spool to be below its limit again, and no hold is left."""
        self.space.clear()
        if self.held is None:
            log.error("spool full (%d bytes): not taking messages until the store catches up", self.bytes)
        await self.space.wait()

    def transaction(self, points: list[Point], writes: list[Write], now: int, lines: list[bytes] | None = None,
                    refused: list[tuple[Point, str]] | None = None, device_log: bytes | None = None
                    ) -> SpoolEntry | None:
        """One batch's transaction (on the database thread); points the store could never take are
        dead-lettered in it and said so."""
        if lines is None:
            lines, refused = encode_lines(points)
        entry = self.db.commit(points, [], writes, at_ns=now, lines=lines, refused=refused, device_log=device_log)
        for _point, reason in refused or ():
            log.error("a point cannot be written as line protocol, dead-lettered: %s", reason)
            self.m_dead.inc()
        return entry

    async def add(self, points: list[Point]) -> None:
        """Points made by the service itself (alert events): spooled and written like readings."""
        if not points:
            return
        entry = await asyncio.get_running_loop().run_in_executor(self.state.executor, self.transaction, points, [],
                                                                 self.clock.now_ns())
        if entry is not None:
            entry.own = True
            self.queue(entry)

    async def recover(self) -> int:
        """Queue every batch left in the spool by a previous run; how many there were."""
        pending = await asyncio.get_running_loop().run_in_executor(self.state.executor, self.db.pending)
        for entry in pending:
            self.queue(entry)
        if pending:
            log.info("replaying %d spooled batches (%d readings) left by the previous run", len(pending), self.points)
        return len(pending)

    def queue(self, entry: SpoolEntry) -> None:
        """A committed batch, for the writer."""
        entry.queued_at = asyncio.get_running_loop().time()
        if self.writer_process is not None:
            if entry.id <= self.writer_process.written:
                # Written already: the writer process reads the spool itself, and may write a batch
                # before its commit's turn of the event loop queued it here (its report counted it).
                return
            entry.points = None  # the writer process reads them from the spool
        elif entry.points is not None:
            if self.memory_points + entry.count > MEMORY_POINTS:
                entry.points = None
            else:
                self.memory_points += entry.count
        self.entries.append(entry)
        self.bytes += entry.size
        self.points += entry.count
        self.has_entries.set()
        if self.writer_process is not None:
            self.writer_process.notify(entry.id, self.points)
