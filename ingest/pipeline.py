"""The ingest pipeline: deliveries in, durable batches out, readings to the store exactly once.

    MqttSource ──deliveries──► consume: decode → validate → dedup(seq) → batch
                                                                          │ group commit
                                                                          ▼
          StateDB (spool + seq marks + device state + stage writes, one SQLite transaction)
                                  │ then PUBACK, in arrival order      │ then stages (rules) release
                                  ▼                                    ▼
                              write: spool → store (InfluxDB / SQLite), in spool order, retried
                                     until taken; a bad point is split out and dead-lettered

Queues are bounded: the broker's in-flight window (Receive Maximum) bounds deliveries, the
batch size bounds a commit, and the spool's byte limit bounds the backlog; when the spool is
full the pipeline stops taking deliveries (the broker keeps them) and says so on /health.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from ingest.decode import REASONS, Decoder, Rejection
from ingest.dedup import SeqVerdict
from ingest.device_book import DeviceBook
from ingest.lineproto import LineProtocolError, encode_line, encode_lines, series_key
from ingest.mqtt_source import AckToken, Delivery
from ingest.rejections import RejectionLog
from ingest.statedb import SpoolEntry, StateDB
from ingest.store_process import WriterProcess
from kernel.backoff import Backoff
from kernel.clock import Clock
from kernel.errors import BadPointError, StoreError
from kernel.metrics import Registry
from kernel.reading import Point, Reading, StatusUpdate
from kernel.settings import IngestSettings
from kernel.snapshots import SnapshotSchedule
from kernel.writes import Row, Write

log = logging.getLogger("cbrain.ingest")

# A commit smaller than this (light load) waits up to store_gather_s for others to join its write.
GATHER_BELOW = 256
# Under load, deliveries gather this long between takes from the source (see consume).
TAKE_EVERY_S = 0.002
# At most this many deliveries are taken at a time (~3 ms of work), so that a backlog (after a
# reconnect, or behind a long commit) does not keep the rest of the event loop waiting.
TAKE_AT_MOST = 256
# Points kept in memory between commit and store; beyond this the writer reads them back from disk.
MEMORY_POINTS = 200_000
# The devices' rows are written at least this often (service time) and after this many device
# states were journalled; in between each batch journals what it changed (ingest.device_book). A
# restart applies at most this much journal: ~1 µs a state.
DEVICE_SNAPSHOT_EVERY_NS = 5_000_000_000
DEVICE_SNAPSHOT_AFTER = 100_000
# A state database with checkpoints of its own (StateDB) has its WAL copied back this often.
CHECKPOINT_EVERY_S = 1.0


class Store(Protocol):
    """A reading store."""

    name: str
    url: str

    async def write(self, points: list[Point]) -> None: ...

    async def close(self) -> None: ...


class Source(Protocol):
    """Where deliveries come from (the MQTT source, or a test's)."""

    async def wait(self) -> None: ...

    def drain(self, limit: int) -> list[Delivery]: ...

    def ack(self, tokens: list[AckToken]) -> int: ...

    def pending(self) -> int: ...


class Stage(Protocol):
    """Work on each batch that must be as durable as the batch (the rule engine's state).

    `prepare` runs before the commit and returns writes committed in the same transaction;
    `committed` runs after it, and only then may the stage let its results out. A stage may also
    have `async prepare_async`, which the commit then awaits instead (rules.runner: it lets the
    event loop run between pieces of a large batch), and `after_commit() -> list[Write]`: writes
    for a transaction of their own right after the batch's (a snapshot that replaces the journal
    the batch's transaction extended; it then does not hold up the batch and its alerts).
    """

    def prepare(self, readings: list[Reading], statuses: list[StatusUpdate], now_ns: int) -> list[Write]: ...

    def committed(self) -> None: ...


@dataclass(slots=True)
class Batch:
    """What one commit makes durable."""

    points: list[Point] = field(default_factory=list)  # kept only for a writer in this process
    lines: list[bytes] = field(default_factory=list)  # the readings' line protocol, as spooled
    refused: list[tuple[Point, str]] = field(default_factory=list)  # what line protocol cannot carry
    readings: list[Reading] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    acks: list[AckToken] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.acks)


@dataclass(slots=True)
class StoreHealth:
    """The reading store as the writer last found it."""

    ok: bool = True
    error: str | None = None
    since_ns: int | None = None
    status: int | None = None


class Pipeline:
    """Consumes deliveries, commits batches, writes them to the store; see the module diagram."""

    def __init__(self, *, settings: IngestSettings, decoder: Decoder, devices: DeviceBook, statedb: StateDB,
                 store: Store, clock: Clock, metrics: Registry, rejections: RejectionLog) -> None:
        self.settings = settings
        self.decoder = decoder
        self.devices = devices
        self.db = statedb
        self._device_snapshots = SnapshotSchedule(DEVICE_SNAPSHOT_EVERY_NS, DEVICE_SNAPSHOT_AFTER)
        self.store = store
        self.clock = clock
        self.rejections = rejections
        self.stages: list[Stage] = []
        # Told of each seq gap (reading, seqs skipped) and each late reading: rare, never per reading.
        self.on_gap: Callable[[Reading, int], None] | None = None
        self.on_late: Callable[[Reading], None] | None = None
        self.store_health = StoreHealth()
        self._db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="statedb")
        self._checkpoint_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="statedb-checkpoint")
        self._batch = Batch()
        self._has_batch = asyncio.Event()
        self._batch_taken = asyncio.Event()
        self._batch_full = asyncio.Event()
        self._entries: deque[SpoolEntry] = deque()
        self._has_entries = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._memory_points = 0
        self.spool_limit = int(settings.spool_max_mb * 1024 * 1024)
        self.spool_bytes = 0
        self.spool_points = 0
        self.committing = False
        self._snapshot_error: BaseException | None = None
        self.rate = 0.0  # messages per second, smoothed over commits
        # The store writer in a process of its own (ingest/store_process.py), or None: written here.
        self.writer_process: WriterProcess | None = None
        self._define_metrics(metrics)

    def _define_metrics(self, m: Registry) -> None:
        self.m_received = m.counter("cb_messages_received_total", "Messages delivered by the broker to ingest")
        self.m_accepted = m.counter("cb_readings_received_total", "Valid readings received (duplicates included)")
        self.m_stored = m.counter("cb_readings_stored_total", "Readings the reading store has taken")
        self.m_own_stored = m.counter("cb_alert_points_stored_total", "Alert events the store has taken")
        self.m_rejected = m.counter("cb_readings_rejected_total", "Messages rejected, by reason", ["reason"])
        for reason in REASONS:
            self.m_rejected.inc(0, reason)
        self.m_duplicates = m.counter("cb_readings_duplicates_total", "Readings with an already-seen seq")
        self.m_lost = m.counter("cb_readings_seq_gap_total", "Seq numbers skipped: readings lost before the service")
        self.m_late = m.counter("cb_readings_late_total", "Readings that arrived after a later seq (filled a gap)")
        self.m_resets = m.counter("cb_readings_seq_resets_total", "Devices seen restarting their seq counter")
        self.m_ignored = m.counter("cb_reading_fields_ignored_total", "Unknown fields ignored in valid readings")
        self.m_status = m.counter("cb_status_updates_total", "online/offline announcements", ["status"])
        self.m_dead = m.counter("cb_readings_dead_lettered_total", "Points the store refused as malformed")
        self.m_store_errors = m.counter("cb_store_write_errors_total", "Failed store writes", ["kind"])
        self.m_commits = m.counter("cb_spool_commits_total", "Batches committed to the spool")
        self.m_commit_latency = m.histogram("cb_spool_commit_seconds", "Duration of one spool commit (SQLite)",
                                            [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1])
        self.m_write_latency = m.histogram("cb_store_write_seconds", "Duration of one store write",
                                           [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])
        m.gauge("cb_spool_points", "Readings committed but not yet in the store", source=lambda: self.spool_points)
        m.gauge("cb_spool_bytes", "Bytes of spooled batches", source=lambda: self.spool_bytes)
        m.gauge("cb_spool_limit_bytes", "Spool size limit", source=lambda: self.spool_limit)
        m.gauge("cb_spool_full", "1 while the spool is full and ingest waits", source=lambda: float(self.spool_full))
        m.gauge("cb_store_up", "1 while the reading store takes writes", source=lambda: float(self.store_health.ok))
        m.gauge("cb_queue_depth", "Items waiting in each internal queue", ["queue"], source=lambda: {
            ("batch",): float(len(self._batch)),
            ("store",): float(len(self._entries)),
        })

    def settled(self) -> bool:
        """Whether everything taken from the source is committed (the spool may still hold some)."""
        return not self._batch.acks and not self.committing

    @property
    def spool_full(self) -> bool:
        """Whether the backlog reached its limit."""
        return self.spool_bytes >= self.spool_limit

    # ---- start-up --------------------------------------------------------------------------------

    async def recover(self) -> int:
        """Load device state and queue every batch left in the spool by a previous run."""
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(self._db_thread, self.db.devices)
        self.devices.restore(rows)
        self.devices.replay(await loop.run_in_executor(self._db_thread, self.db.device_journal))
        pending = await loop.run_in_executor(self._db_thread, self.db.pending)
        for entry in pending:
            self._queue_entry(entry)
        if pending:
            log.info("replaying %d spooled batches (%d readings) left by the previous run",
                     len(pending), self.spool_points)
        return len(pending)

    # ---- consume ---------------------------------------------------------------------------------

    def process(self, deliveries: list[Delivery]) -> None:
        """Decode, validate and dedup deliveries into the open batch."""
        batch = self._batch
        decode = self.decoder.decode
        keep_points = self.writer_process is None  # the writer process reads the lines from the spool
        valid = 0
        for d in deliveries:
            batch.acks.append((d.generation, d.mid, d.qos))
            item = decode(d.topic, d.payload)
            if isinstance(item, Reading):
                valid += 1
                verdict, gap = self.devices.observe(item)
                if verdict is SeqVerdict.DUPLICATE:
                    self.m_duplicates.inc()
                    continue
                if gap:
                    self.m_lost.inc(gap)
                    if self.on_gap is not None:
                        self.on_gap(item, gap)
                elif verdict is SeqVerdict.LATE:
                    self.m_late.inc()
                    if self.on_late is not None:
                        self.on_late(item)
                elif verdict is SeqVerdict.RESET:
                    self.m_resets.inc()
                if item.ignored_fields:
                    self.m_ignored.inc(item.ignored_fields)
                batch.readings.append(item)
                try:
                    batch.lines.append(encode_line(item.series or series_key(item.device_type.value, item.tags()),
                                                   item.fields, item.ts_ns))
                except LineProtocolError as exc:
                    batch.refused.append((Point.of(item), str(exc)))
                    continue
                if keep_points:
                    batch.points.append(Point.of(item))
            elif isinstance(item, Rejection):
                self.m_rejected.inc(1, item.reason)
                self.rejections.add(item)
            elif isinstance(item, StatusUpdate):
                self.devices.status(item)
                self.m_status.inc(1, "online" if item.online else "offline")
                batch.statuses.append(item)
        self.m_received.inc(len(deliveries))
        self.m_accepted.inc(valid)
        if batch.acks:
            self._has_batch.set()
            if len(batch.acks) >= self.settings.batch_size:
                self._batch_full.set()

    async def consume(self, source: Source) -> None:
        """Take deliveries as they come, pausing while the spool is full."""
        limit = self.settings.batch_size
        while True:
            if self.spool_full:
                self._space.clear()
                log.error("spool full (%d bytes): not taking messages until the store catches up",
                          self.spool_bytes)
                await self._space.wait()
            if len(self._batch) >= limit:
                # Commits lag behind: wait for the batch to be taken before taking more.
                self._batch_taken.clear()
                await self._batch_taken.wait()
                continue
            await source.wait()
            self.process(source.drain(min(limit - len(self._batch), TAKE_AT_MOST)))
            await asyncio.sleep(0)  # (a backlog is taken a piece at a time: the loop runs between)
            if self.rate >= self.settings.batch_above_rate:
                # Under load the batch waits for its flush window anyway: let deliveries gather
                # rather than wake up for every few (a wake-up cost more than the messages it
                # brought). The commit takes what waits when it takes the batch.
                await asyncio.sleep(TAKE_EVERY_S)

    async def commit(self, source: Source) -> None:
        """Group commit: whatever arrived while the last commit ran is the next batch. Batches are
        taken at most every flush_interval_s under load (per-commit and per-write costs dominate
        small batches) and every commit_spacing_s at light load (a transaction per message would
        cost a core at 1,000/s), or at once when full."""
        loop = asyncio.get_running_loop()
        last = loop.time()  # when the last batch was taken
        while True:
            await self._has_batch.wait()
            if len(self._batch) < self.settings.batch_size:
                # The spacing counts from when the last batch was taken, not from when its commit
                # ended: a commit that took longer than the spacing is followed at once, so a
                # reading waits for at most one spacing plus one commit.
                spacing = (self.settings.flush_interval_s if self.rate >= self.settings.batch_above_rate
                           else self.settings.commit_spacing_s)
                wait = last + spacing - loop.time()
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._batch_full.wait(), wait)
                if not self.spool_full:  # what arrived while consume() let deliveries gather
                    self.process(source.drain(min(self.settings.batch_size - len(self._batch), TAKE_AT_MOST)))
            now_s = loop.time()
            self.rate = 0.7 * self.rate + 0.3 * len(self._batch) / max(now_s - last, 1e-3)
            last = now_s
            self._has_batch.clear()
            self._batch_full.clear()
            batch, self._batch = self._batch, Batch()
            self._batch_taken.set()
            if not batch.acks:
                continue
            now = self.clock.now_ns()
            if self._snapshot_error is not None:
                raise self._snapshot_error
            # The devices' state as this batch left it (consume() goes on with the next one while
            # the stages let the loop run).
            device_log, rows = self._device_state(now)
            self.committing = True
            writes: list[Write] = []
            try:
                await asyncio.sleep(0)  # (taking the batch took what waited: let the loop run first)
                for stage in self.stages:
                    in_pieces = getattr(stage, "prepare_async", None)
                    writes += (await in_pieces(batch.readings, batch.statuses, now) if in_pieces is not None
                               else stage.prepare(batch.readings, batch.statuses, now))
                after = [w for stage in self.stages for w in self._after_commit(stage)]
                started = time.perf_counter()
                # (submitted to the database thread before the loop runs again: see prepare_async;
                # the snapshots' transaction follows the batch's, before any other)
                committed = loop.run_in_executor(self._db_thread, self._commit, batch.points, writes, now,
                                                 batch.lines, batch.refused, device_log)
                if rows or after:
                    loop.run_in_executor(self._db_thread, self.db.snapshot, rows, after).add_done_callback(
                        self._snapshot_written)
                entry = await committed
            finally:
                self.committing = False
            self.m_commit_latency.observe(time.perf_counter() - started)
            self.m_commits.inc()
            source.ack(batch.acks)
            if entry is not None:
                self._queue_entry(entry)
            for stage in self.stages:
                stage.committed()

    def _device_state(self, now: int) -> tuple[bytes | None, list[tuple[object, ...]]]:
        """What makes the devices' state after this batch durable: its journal entry (ingest.device_book),
        and the rows of a snapshot once DEVICE_SNAPSHOT_EVERY_NS passed or DEVICE_SNAPSHOT_AFTER
        device states were journalled since the last."""
        changed = len(self.devices.dirty)
        device_log = self.devices.take_journal()
        if self._device_snapshots.due(now, changed):
            self._device_snapshots.taken(now)
            return device_log, self.devices.take_snapshot()
        self._device_snapshots.journal(changed)
        return device_log, []

    @staticmethod
    def _after_commit(stage: Stage) -> list[Write]:
        after = getattr(stage, "after_commit", None)
        return after() if after is not None else []

    def _snapshot_written(self, done: asyncio.Future[None]) -> None:
        """A snapshot's transaction failed: what it would have replaced is still in the journals,
        but what they hold is no longer known here, so the commit stops (as for a failed batch)."""
        if not done.cancelled() and (exc := done.exception()) is not None:
            log.error("writing a snapshot of the device and rule state failed: %s", exc)
            self._snapshot_error = exc

    def _commit(self, points: list[Point], writes: list[Write], now: int, lines: list[bytes] | None = None,
                refused: list[tuple[Point, str]] | None = None, device_log: bytes | None = None) -> SpoolEntry | None:
        """One batch's transaction (on the database thread); points the store could never take are
        dead-lettered in it and said so."""
        if lines is None:
            lines, refused = encode_lines(points)
        entry = self.db.commit(points, [], writes, at_ns=now, lines=lines, refused=refused, device_log=device_log)
        for _point, reason in refused or ():
            log.error("a point cannot be written as line protocol, dead-lettered: %s", reason)
            self.m_dead.inc()
        return entry

    def _queue_entry(self, entry: SpoolEntry) -> None:
        entry.queued_at = asyncio.get_running_loop().time()
        if self.writer_process is not None:
            entry.points = None  # the writer process reads them from the spool
            self.writer_process.notify(entry.id, entry.count)
        elif entry.points is not None:
            if self._memory_points + entry.count > MEMORY_POINTS:
                entry.points = None
            else:
                self._memory_points += entry.count
        self._entries.append(entry)
        self.spool_bytes += entry.size
        self.spool_points += entry.count
        self._has_entries.set()

    # ---- write -----------------------------------------------------------------------------------

    async def write(self) -> None:
        """Move spooled batches to the store, oldest first, until each is taken."""
        if self.writer_process is not None:
            await self.writer_process.run(self._writer_event)
            return
        loop = asyncio.get_running_loop()
        backoff = Backoff(0.2, self.settings.retry_max_s)
        while True:
            if not self._entries:
                self._has_entries.clear()
                await self._has_entries.wait()
                continue
            # Let a write gather (the store is not on an alert's path): at a light load this turns
            # a hundred small HTTP requests a second into a few. It gathers only until GATHER_BELOW
            # points wait: under load a commit is already a good write (holding it back was measured
            # to cost a fifth of the throughput), and at a moderate rate (5,000/s: commits of ~140)
            # waiting out the whole store_gather_s made the newest stored reading 90-160 ms old.
            deadline = self._entries[0].queued_at + self.settings.store_gather_s
            while self.spool_points < GATHER_BELOW and (gather := deadline - loop.time()) > 0:
                self._has_entries.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._has_entries.wait(), gather)
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
            await loop.run_in_executor(self._db_thread, self.db.release, ids)
            for e in entries:
                self._entries.popleft()
                if e.points is not None:
                    self._memory_points -= e.count
                self.spool_bytes -= e.size
                self.spool_points -= e.count
            # The service's own points (alert events) share the spool but are not readings.
            own = sum(1 for p in points if p.measurement == "alert")
            self.m_stored.inc(sum(e.count for e in entries) - refused - own)
            self.m_own_stored.inc(own)
            self._space.set()

    def _store_up(self) -> None:
        if not self.store_health.ok:
            log.warning("reading store %s is back; %d readings waiting", self.store.name, self.spool_points)
        self.store_health = StoreHealth()

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
                self.m_dead.inc()
        elif "start" in event:
            # A writer that died may have released batches before it could say so: they were stored.
            self._released(event["start"], stored=None, own=0)

    def _released(self, before: int, *, stored: int | None, own: int) -> None:
        """Forget the spooled batches with ids below `before`: the store took them."""
        readings = alerts = 0
        while self._entries and self._entries[0].id < before:
            e = self._entries.popleft()
            self.spool_bytes -= e.size
            self.spool_points -= e.count
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
        self._space.set()

    async def _take(self, loop: asyncio.AbstractEventLoop) -> tuple[list[SpoolEntry], list[Point]]:
        """Consecutive entries from the head, up to one batch of points."""
        entries: list[SpoolEntry] = []
        count = 0
        for entry in self._entries:  # no await in this loop: commits append to the deque meanwhile
            if entries and count + entry.count > self.settings.batch_size:
                break
            entries.append(entry)
            count += entry.count
        points: list[Point] = []
        for entry in entries:
            if entry.points is None:
                points.extend(await loop.run_in_executor(self._db_thread, self.db.load, entry.id))
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
                await loop.run_in_executor(self._db_thread, self.db.dead_letter,
                                           self.clock.now_ns(), str(exc), points[0])
                self.m_dead.inc()
                return 1
            half = len(points) // 2
            return await self._write_splitting(points[:half], loop) + await self._write_splitting(points[half:], loop)

    def _store_down(self, exc: StoreError) -> None:
        kind = f"http_{exc.status}" if exc.status else "unreachable"
        self.m_store_errors.inc(1, kind)
        if self.store_health.ok or self.store_health.error != str(exc):
            level = logging.ERROR if exc.status in (401, 403, 404) else logging.WARNING
            log.log(level, "reading store %s: %s; %d readings kept in the spool",
                    self.store.name, exc, self.spool_points)
        since = self.store_health.since_ns if not self.store_health.ok else self.clock.now_ns()
        self.store_health = StoreHealth(False, str(exc), since, exc.status)

    async def spool(self, points: list[Point]) -> None:
        """Points made by the service itself (alert events): spooled and written like readings."""
        if not points:
            return
        entry = await asyncio.get_running_loop().run_in_executor(self._db_thread, self._commit, points, [],
                                                                 self.clock.now_ns())
        if entry is not None:
            entry.own = True
            self._queue_entry(entry)

    async def state_write(self, writes: list[Write]) -> None:
        """Commit writes of a stage outside a batch, on the database thread."""
        await asyncio.get_running_loop().run_in_executor(self._db_thread, self.db.write, writes)

    async def state_script(self, sql: str) -> None:
        """Create a stage's tables, on the database thread."""
        await asyncio.get_running_loop().run_in_executor(self._db_thread, self.db.script, sql)

    async def state_select(self, sql: str, params: Row = ()) -> list[Row]:
        """Read a stage's rows, on the database thread."""
        return await asyncio.get_running_loop().run_in_executor(self._db_thread, self.db.select, sql, params)

    async def dead_letters(self, limit: int) -> list[tuple[int, str, list[Point]]]:
        """The latest points the store refused, with its reasons (read on the database thread)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_thread, self.db.dead_letters, limit)

    async def checkpoints(self) -> None:
        """Checkpoint the state database every CHECKPOINT_EVERY_S, on a thread of its own while
        commits go on, when it has checkpoints of its own (StateDB)."""
        if not self.db.own_checkpoints:
            return
        loop = asyncio.get_running_loop()
        failing = False
        while True:
            await asyncio.sleep(CHECKPOINT_EVERY_S)
            try:
                await loop.run_in_executor(self._checkpoint_thread, self.db.checkpoint)
            except sqlite3.Error as exc:  # e.g. a full disk: the WAL keeps everything meanwhile
                if not failing:
                    log.warning("checkpoint of %s failed, retrying every %g s: %s", self.db.path,
                                CHECKPOINT_EVERY_S, exc)
                failing = True
                continue
            if failing:
                log.warning("checkpoint of %s works again", self.db.path)
            failing = False

    async def close(self) -> None:
        """Release the database threads."""
        self._checkpoint_thread.shutdown(wait=True)
        self._db_thread.shutdown(wait=True)
