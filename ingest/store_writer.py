"""The store writer: spooled batches to the reading store (InfluxDB / SQLite), oldest first, retried
until taken; a point the store refuses is split out and dead-lettered.

    Spool.entries ─► StoreWriter.write ─► Store.write ─► StateDB.release ─► the spool's space back
                        └─ or, with a writer process (ingest/store_process.py): its reports, the same
                           metrics, health and logs
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from ingest.spool import Spool
from ingest.state_thread import StateThread
from ingest.statedb import SpoolEntry
from kernel.backoff import Backoff
from kernel.clock import Clock
from kernel.errors import BadPointError, StoreError
from kernel.metrics import Registry
from kernel.reading import Point
from kernel.settings import IngestSettings

log = logging.getLogger("cbrain.ingest")

# A commit smaller than this (light load) waits up to store_gather_s for others to join its write.
GATHER_BELOW = 256


class Store(Protocol):
    """A reading store."""

    name: str
    url: str

    async def write(self, points: list[Point]) -> None: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class StoreHealth:
    """The reading store as the writer last found it."""

    ok: bool = True
    error: str | None = None
    since_ns: int | None = None
    status: int | None = None


class StoreWriter:
    """Writes the spool to the store, in spool order, and keeps the store's health and metrics."""

    def __init__(self, settings: IngestSettings, spool: Spool, store: Store, state: StateThread, clock: Clock,
                 metrics: Registry) -> None:
        self.settings = settings
        self.spool = spool
        self.store = store
        self.state = state
        self.db = state.db
        self.clock = clock
        self.health = StoreHealth()
        m = metrics
        self.m_stored = m.counter("cb_readings_stored_total", "Readings the reading store has taken")
        self.m_own_stored = m.counter("cb_alert_points_stored_total", "Alert events the store has taken")
        self.m_store_errors = m.counter("cb_store_write_errors_total", "Failed store writes", ["kind"])
        self.m_write_latency = m.histogram("cb_store_write_seconds", "Duration of one store write",
                                           [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])
        m.gauge("cb_store_up", "1 while the reading store takes writes", source=lambda: float(self.health.ok))

    async def write(self) -> None:
        """Move spooled batches to the store, oldest first, until each is taken."""
        spool = self.spool
        check = getattr(self.store, "check_at_start", None)  # InfluxDB: a bucket or mapping it lacks, a token
        if check is not None and (problem := await check()) is not None:
            self._store_down(problem)
        if spool.writer_process is not None:
            await spool.writer_process.run(self._writer_event)
            return
        loop = asyncio.get_running_loop()
        backoff = Backoff(0.2, self.settings.retry_max_s)
        while True:
            if not spool.entries:
                spool.has_entries.clear()
                await spool.has_entries.wait()
                continue
            # Let a write gather (the store is not on an alert's path): at a light load this turns
            # a hundred small HTTP requests a second into a few. It gathers only until GATHER_BELOW
            # points wait: under load a commit is already a good write (holding it back was measured
            # to cost a fifth of the throughput), and at a moderate rate (5,000/s: commits of ~140)
            # waiting out the whole store_gather_s made the newest stored reading 90-160 ms old.
            deadline = spool.entries[0].queued_at + self.settings.store_gather_s
            while spool.points < GATHER_BELOW and (gather := deadline - loop.time()) > 0:
                spool.has_entries.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(spool.has_entries.wait(), gather)
            entries, points = await self._take(loop)
            try:
                started = time.perf_counter()
                refused = await self._write_splitting(points, loop)
                self.m_write_latency.observe(time.perf_counter() - started)
            except StoreError as exc:
                self._store_down(exc)
                delay = exc.retry_after_s if exc.retry_after_s is not None else backoff.next()
                await asyncio.sleep(min(delay, self.settings.retry_max_s))
                continue
            except Exception as exc:  # a fault of ours or of a library: keep the batch, say so, retry
                log.exception("writing to %s failed unexpectedly", self.store.name)
                self._store_down(StoreError(f"unexpected {type(exc).__name__}: {exc}", retryable=True))
                await asyncio.sleep(backoff.next())
                continue
            backoff.reset()
            self._store_up()
            ids = [e.id for e in entries]
            await loop.run_in_executor(self.state.executor, self.db.release, ids)
            for e in entries:
                spool.entries.popleft()
                if e.points is not None:
                    spool.memory_points -= e.count
                spool.bytes -= e.size
                spool.points -= e.count
            # The service's own points (alert events) share the spool but are not readings.
            own = sum(1 for p in points if p.measurement == "alert")
            self.m_stored.inc(sum(e.count for e in entries) - refused - own)
            self.m_own_stored.inc(own)
            spool.space.set()

    def _store_up(self) -> None:
        if not self.health.ok:
            log.warning("reading store %s is back; %d readings waiting", self.store.name, self.spool.points)
        self.health = StoreHealth()

    def _writer_event(self, event: dict[str, Any]) -> None:
        """A report of the writer process: the same metrics, health and logs as the inline writer's."""
        if "stored" in event:
            self._store_up()
            self.m_write_latency.observe(event["seconds"])
            self._released(event["stored"] + 1, stored=event["points"] - event["refused"] - event["own"],
                           own=event["own"])
        elif "down" in event:
            self._store_down(StoreError(event["down"], retryable=True, status=event["status"]))
        elif "bad_point" in event:
            self.m_store_errors.inc(1, "bad_point")
            if event["dead"]:
                log.error("store refused a point, dead-lettered: %s", event["bad_point"])
                self.spool.m_dead.inc()
        elif "start" in event:
            # A writer that died may have released batches before it could say so: they were stored.
            self._released(event["start"], stored=None, own=0)

    def _released(self, before: int, *, stored: int | None, own: int) -> None:
        """Forget the spooled batches with ids below `before`: the store took them."""
        spool = self.spool
        readings = alerts = 0
        while spool.entries and spool.entries[0].id < before:
            e = spool.entries.popleft()
            spool.bytes -= e.size
            spool.points -= e.count
            if e.own:
                alerts += e.count
            else:
                readings += e.count
        if stored is None:
            self.m_stored.inc(readings)
            self.m_own_stored.inc(alerts)
        else:
            self.m_stored.inc(stored)
            self.m_own_stored.inc(own)
        spool.space.set()

    async def _take(self, loop: asyncio.AbstractEventLoop) -> tuple[list[SpoolEntry], list[Point]]:
        """Consecutive entries from the head, up to one batch of points."""
        entries: list[SpoolEntry] = []
        count = 0
        for entry in self.spool.entries:  # no await in this loop: commits append to the deque meanwhile
            if entries and count + entry.count > self.settings.batch_size:
                break
            entries.append(entry)
            count += entry.count
        points: list[Point] = []
        for entry in entries:
            if entry.points is None:
                points.extend(await loop.run_in_executor(self.state.executor, self.db.load, entry.id))
            else:
                points.extend(entry.points)
        return entries, points

    async def _write_splitting(self, points: list[Point], loop: asyncio.AbstractEventLoop) -> int:
        """Write points; on a 400, halve until the bad points stand alone, and dead-letter those.

        Returns how many were dead-lettered. Rewriting the good half is safe: a point is keyed by
        its series and timestamp, so a second write replaces it.
        """
        try:
            await self.store.write(points)
            return 0
        except BadPointError as exc:
            self.m_store_errors.inc(1, "bad_point")
            if len(points) == 1:
                log.error("store refused a point, dead-lettered: %s", exc)
                await loop.run_in_executor(self.state.executor, self.db.dead_letter,
                                           self.clock.now_ns(), str(exc), points[0])
                self.spool.m_dead.inc()
                return 1
            half = len(points) // 2
            return await self._write_splitting(points[:half], loop) + await self._write_splitting(points[half:], loop)

    def _store_down(self, exc: StoreError) -> None:
        kind = f"http_{exc.status}" if exc.status else "unreachable"
        self.m_store_errors.inc(1, kind)
        if self.health.ok or self.health.error != str(exc):
            level = logging.ERROR if exc.status in (401, 403, 404) else logging.WARNING
            log.log(level, "reading store %s: %s; %d readings kept in the spool",
                    self.store.name, exc, self.spool.points)
        since = self.health.since_ns if not self.health.ok else self.clock.now_ns()
        self.health = StoreHealth(False, str(exc), since, exc.status)
