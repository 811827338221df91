"""The ingest pipeline: deliveries in, durable batches out, readings to the store exactly once.

    MqttSource ──deliveries──► consume: decode → validate → dedup(seq) → batch
                                                                          │ group commit
                                                                          ▼
          StateDB (spool + seq marks + device state + participants' writes, one SQLite transaction)
                                  │ then PUBACK, in arrival order      │ then participants (rules) release
                                  ▼                                    ▼
               Spool ─► StoreWriter: spool → store (InfluxDB / SQLite), in spool order, retried
                        until taken; a bad point is split out and dead-lettered (ingest/store_writer.py)

Queues are bounded: the broker's in-flight window (Receive Maximum) bounds deliveries, the
batch size bounds a commit, and the spool's byte limit bounds the backlog; when the spool is
full, or state_dir's disk is short of space (ingest/disk_watch.py), the pipeline stops taking
deliveries (the broker keeps them) and says so on /health.
Every statement on the state database runs on its one thread (ingest/state_thread.py), which the
pipeline shares with the parts that write outside a batch (the rules runner, alerts, orders).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ingest.decode import REASONS, SOURCE_REASONS, Decoder, Rejection
from ingest.dedup import DUPLICATE, LATE, RESET
from ingest.device_book import DeviceBook
from ingest.lineproto import LineProtocolError, encode_line, series_key
from ingest.mqtt_source import AckToken, Delivery
from ingest.rejections import RejectionLog
from ingest.sources.push import PUSH_GENERATION
from ingest.spool import Spool
from ingest.state_thread import StateThread
from ingest.store_process import WriterProcess
from ingest.store_writer import Store, StoreWriter
from kernel.clock import Clock
from kernel.metrics import Registry
from kernel.reading import Point, Reading, StatusUpdate
from kernel.settings import IngestSettings
from kernel.snapshots import SnapshotSchedule
from kernel.writes import Write

log = logging.getLogger("cbrain.ingest")

# Under load, deliveries gather this long between takes from the source (see consume).
TAKE_EVERY_S = 0.002
# At most this many deliveries are taken at a time (~3 ms of work), so that a backlog (after a
# reconnect, or behind a long commit) does not keep the rest of the event loop waiting.
TAKE_AT_MOST = 256
# The devices' rows are written at least this often (service time) and after this many events
# (readings, announcements) were journalled; in between each batch journals what the devices were
# given (ingest.device_book). A restart applies at most this much journal: ~5 µs an event. They
# are written half a period (or half a journal) out of step with the rule engine's snapshot
# (rules.runner), so that the two transactions do not hold up the same batch.
DEVICE_SNAPSHOT_EVERY_NS = 30_000_000_000
DEVICE_SNAPSHOT_AFTER = 100_000


class Source(Protocol):
    """Where deliveries come from (the MQTT source, or a test's)."""

    async def wait(self) -> None: ...

    def drain(self, limit: int) -> list[Delivery]: ...

    def ack(self, tokens: list[AckToken]) -> int: ...

    def pending(self) -> int: ...


class CommitParticipant(Protocol):
    """What the commit hands each batch to: work that must be as durable as the batch (the rule
    engine's state).

    `prepare` runs before the commit and returns writes committed in the same transaction;
    `committed` runs after it, and only then may the participant let its results out. A participant
    may instead take the batch as it fills: `observe(readings, statuses, now) -> bool` for each
    piece as deliveries are taken (True: the batch holds news that should not wait for the flush
    window, an alert's change), then `seal(now) -> list[Write]` in place of prepare (rules.runner).
    It may also have `async after_commit() -> list[Write]`, awaited after `committed`: writes for a
    transaction of their own, after the batch's and before the next's (a snapshot that replaces the
    journal the batch's transaction extended; it then does not hold up the batch and its alerts).
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
    waited_for: bool = False  # whether it holds a push whose sender waits for its commit
    urgent: bool = False  # whether a participant saw news in it that should not wait (an alert's change)

    def __len__(self) -> int:
        return len(self.acks)


class Pipeline:
    """Consumes deliveries, commits batches, hands them to the store writer; see the module diagram."""

    def __init__(self, *, settings: IngestSettings, decoder: Decoder, devices: DeviceBook, state: StateThread,
                 store: Store, clock: Clock, metrics: Registry, rejections: RejectionLog,
                 participants: Sequence[CommitParticipant] = (),
                 on_gap: Callable[[Reading, int], None] | None = None,
                 on_late: Callable[[Reading], None] | None = None,
                 writer_process: WriterProcess | None = None, spool: Spool | None = None) -> None:
        self.settings = settings
        self.decoder = decoder
        self.devices = devices
        self.state = state
        self.db = state.db
        self._device_snapshots = SnapshotSchedule(DEVICE_SNAPSHOT_EVERY_NS, DEVICE_SNAPSHOT_AFTER)
        self.clock = clock
        self.rejections = rejections
        self.participants = tuple(participants)
        self._observers = [o for p in self.participants if (o := getattr(p, "observe", None)) is not None]
        # Told of each seq gap (reading, seqs skipped) and each late reading: rare, never per reading.
        self.on_gap = on_gap
        self.on_late = on_late
        # The store writer in a process of its own (ingest/store_process.py), or None: written here.
        self.writer_process = writer_process
        self._db_thread = state.executor
        self._batch = Batch()
        self._has_batch = asyncio.Event()
        self._batch_taken = asyncio.Event()
        self._batch_full = asyncio.Event()
        self._wake = asyncio.Event()  # the commit's spacing wait: the batch is full, or a push waits
        # Clear from the moment a batch holds an alert's change until that batch is committed and its
        # notifications are out: consume() takes nothing meanwhile (see there).
        self._news_out = asyncio.Event()
        self._news_out.set()
        self.committing = False
        self._snapshot_error: BaseException | None = None
        self.rate = 0.0  # messages per second, smoothed over commits
        self._define_metrics(metrics)
        # The spool may be made first by whoever wires the parts (the alerts runner writes its events to it).
        self.spooled = spool if spool is not None else Spool(settings, state, clock, metrics, writer_process)
        self.writer = StoreWriter(settings, self.spooled, store, state, clock, metrics)
        metrics.gauge("cb_queue_depth", "Items waiting in each internal queue", ["queue"], source=lambda: {
            ("batch",): float(len(self._batch)),
            ("store",): float(len(self.spooled.entries)),
        })

    def _define_metrics(self, m: Registry) -> None:
        self.m_received = m.counter("cb_messages_received_total", "Messages delivered by the broker to ingest")
        self.m_accepted = m.counter("cb_readings_received_total", "Valid readings received (duplicates included)")
        self.m_rejected = m.counter("cb_readings_rejected_total", "Messages rejected, by reason", ["reason"])
        for reason in REASONS + SOURCE_REASONS:
            self.m_rejected.inc(0, reason)
        self.m_duplicates = m.counter("cb_readings_duplicates_total", "Readings with an already-seen seq")
        self.m_lost = m.counter("cb_readings_seq_gap_total", "Seq numbers skipped: readings lost before the service")
        self.m_late = m.counter("cb_readings_late_total", "Readings that arrived after a later seq (filled a gap)")
        self.m_resets = m.counter("cb_readings_seq_resets_total", "Devices seen restarting their seq counter")
        self.m_ignored = m.counter("cb_reading_fields_ignored_total", "Unknown fields ignored in valid readings")
        self.m_status = m.counter("cb_status_updates_total", "online/offline announcements", ["status"])
        self.m_commits = m.counter("cb_spool_commits_total", "Batches committed to the spool")
        self.m_commit_latency = m.histogram("cb_spool_commit_seconds", "Duration of one spool commit (SQLite)",
                                            [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1])

    def settled(self) -> bool:
        """Whether everything taken from the source is committed (the spool may still hold some)."""
        return not self._batch.acks and not self.committing

    # ---- start-up --------------------------------------------------------------------------------

    async def recover(self) -> int:
        """Load device state and queue every batch left in the spool by a previous run."""
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(self._db_thread, self.db.devices)
        self.devices.restore(rows)
        self.devices.replay(await loop.run_in_executor(self._db_thread, self.db.device_journal))
        return await self.spooled.recover()

    # ---- consume ---------------------------------------------------------------------------------

    def process(self, deliveries: list[Delivery]) -> None:
        """Decode, validate and dedup deliveries into the open batch."""
        batch = self._batch
        decode = self.decoder.decode
        take = self._take
        keep_points = self.writer_process is None  # the writer process reads the lines from the spool
        valid = 0
        first_reading, first_status = len(batch.readings), len(batch.statuses)
        for d in deliveries:
            batch.acks.append((d.generation, d.mid, d.qos))
            if d.generation == PUSH_GENERATION and not batch.waited_for:
                batch.waited_for = True
                self._wake.set()  # the commit waits for push_commit_spacing_s at most now
            item = decode(d.topic, d.payload)
            if isinstance(item, list):  # a source's message: several readings, or a status per port
                for one in item:
                    valid += take(batch, one, keep_points)
            elif item is not None:
                valid += take(batch, item, keep_points)
        self.m_received.inc(len(deliveries))
        self.m_accepted.inc(valid)
        if self._observers and (len(batch.readings) > first_reading or len(batch.statuses) > first_status):
            self._observe(batch, batch.readings[first_reading:], batch.statuses[first_status:])
        if batch.acks:
            self._has_batch.set()
            if len(batch.acks) >= self.settings.batch_size:
                self._batch_full.set()
                self._wake.set()

    def _observe(self, batch: Batch, readings: list[Reading], statuses: list[StatusUpdate]) -> None:
        """The participants that take the batch as it fills see these; news among them (an alert's
        change) shortens the wait for the commit to push_commit_spacing_s."""
        now = self.clock.now_ns()
        for observe in self._observers:
            if observe(readings, statuses, now) and not batch.urgent:
                batch.urgent = True
                self._news_out.clear()
                self._wake.set()

    def _take(self, batch: Batch, item: Reading | StatusUpdate | Rejection, keep_points: bool) -> int:
        """Put one decoded item into the batch; 1 for a valid reading (a duplicate included), else 0."""
        if isinstance(item, Reading):
            verdict, gap = self.devices.observe(item)
            if verdict is DUPLICATE:
                self.m_duplicates.inc()
                return 1
            if gap:
                self.m_lost.inc(gap)
                if self.on_gap is not None:
                    self.on_gap(item, gap)
            elif verdict is LATE:
                self.m_late.inc()
                if self.on_late is not None:
                    self.on_late(item)
            elif verdict is RESET:
                self.m_resets.inc()
            if item.ignored_fields:
                self.m_ignored.inc(item.ignored_fields)
            batch.readings.append(item)
            try:
                batch.lines.append(encode_line(item.series or series_key(item.device_type.value, item.tags()),
                                               item.fields, item.ts_ns))
            except LineProtocolError as exc:
                batch.refused.append((Point.of(item), str(exc)))
                return 1
            if keep_points:
                batch.points.append(Point.of(item))
            return 1
        if isinstance(item, Rejection):
            self.m_rejected.inc(1, item.reason)
            self.rejections.add(item)
        else:
            self.devices.status(item)
            self.m_status.inc(1, "online" if item.online else "offline")
            batch.statuses.append(item)
        return 0

    async def consume(self, source: Source) -> None:
        """Take deliveries as they come, pausing while the spool is full, and while a batch that
        changed an alert is on its way to its commit: the event loop is then the alert's alone (its
        commit, the acknowledgements, the hand-over of its notifications to delivery), instead of
        each of those steps waiting behind a piece of ingest. What arrives meanwhile waits in the
        source (the broker's in-flight window bounds it), and is taken right after: the pause lasts
        one commit, a few milliseconds."""
        limit = self.settings.batch_size
        while True:
            if self.spooled.paused:
                await self.spooled.wait_for_space()
            if not self._news_out.is_set():
                await self._news_out.wait()
                continue
            if len(self._batch) >= limit:
                # Commits lag behind: wait for the batch to be taken before taking more.
                self._batch_taken.clear()
                await self._batch_taken.wait()
                continue
            await source.wait()
            self.process(source.drain(min(limit - len(self._batch), TAKE_AT_MOST)))
            if self.rate >= self.settings.batch_above_rate:
                # Under load the batch waits for its flush window anyway: let deliveries gather
                # rather than wake up for every few (a wake-up cost more than the messages it
                # brought). The commit takes what waits when it takes the batch.
                await asyncio.sleep(TAKE_EVERY_S)
            else:
                await asyncio.sleep(0)  # (a backlog is taken a piece at a time: the loop runs between)

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
                while True:  # (woken when the batch fills, or a push makes the spacing shorter)
                    self._wake.clear()
                    wait = last + self._spacing() - loop.time()
                    if wait <= 0 or self._batch_full.is_set():
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), wait)
                # What arrived while consume() let deliveries gather; not for a batch with an
                # alert's change, which goes as it stands (the rest is the next batch's).
                if not self.spooled.paused and not self._batch.urgent:
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
            # The devices' state as this batch left it.
            device_log, rows = self._device_state(now)
            self.committing = True
            writes: list[Write] = []
            try:
                for participant in self.participants:
                    seal = getattr(participant, "seal", None)
                    writes += (seal(now) if seal is not None
                               else participant.prepare(batch.readings, batch.statuses, now))
                started = time.perf_counter()
                # (submitted to the database thread before the loop runs again, so that no deadline's
                # transaction comes before the batch's; the devices' snapshot follows it, before any other)
                committed = loop.run_in_executor(self._db_thread, self.spooled.transaction, batch.points, writes,
                                                 now, batch.lines, batch.refused, device_log)
                if rows:
                    self._snapshot(rows, [])
                entry = await committed
            finally:
                self.committing = False
            self.m_commit_latency.observe(time.perf_counter() - started)
            self.m_commits.inc()
            source.ack(batch.acks)
            if entry is not None:
                self.spooled.queue(entry)
            for participant in self.participants:
                participant.committed()
            self._news_out.set()  # (the batch's notifications are with delivery: ingest goes on)
            for participant in self.participants:  # (once the batch's news is out: see CommitParticipant)
                after = getattr(participant, "after_commit", None)
                if after is not None and (more := await after()):
                    self._snapshot([], more)

    def _spacing(self) -> float:
        """How far apart this batch's commit may be from the last: flush_interval_s under load,
        commit_spacing_s below it, push_commit_spacing_s while an HTTP push's sender waits or the
        batch changes an alert."""
        spacing = (self.settings.flush_interval_s if self.rate >= self.settings.batch_above_rate
                   else self.settings.commit_spacing_s)
        batch = self._batch
        return min(spacing, self.settings.push_commit_spacing_s) if batch.waited_for or batch.urgent else spacing

    def _device_state(self, now: int) -> tuple[bytes | None, list[tuple[object, ...]]]:
        """What makes the devices' state after this batch durable: its journal entry (ingest.device_book),
        and the rows of a snapshot once DEVICE_SNAPSHOT_EVERY_NS passed or DEVICE_SNAPSHOT_AFTER
        events were journalled since the last."""
        changed = len(self.devices.events)
        device_log = self.devices.take_journal()
        if self._device_snapshots.due(now, changed):
            self._device_snapshots.taken(now, halfway=self._device_snapshots.at is None)
            return device_log, self.devices.take_snapshot()
        self._device_snapshots.journal(changed)
        return device_log, []

    def _snapshot(self, rows: list[tuple[object, ...]], writes: list[Write]) -> None:
        """A snapshot's transaction, queued on the database thread behind what is queued there."""
        asyncio.get_running_loop().run_in_executor(self._db_thread, self.db.snapshot, rows, writes).add_done_callback(
            self._snapshot_written)

    def _snapshot_written(self, done: asyncio.Future[None]) -> None:
        """A snapshot's transaction failed: what it would have replaced is still in the journals,
        but what they hold is no longer known here, so the commit stops (as for a failed batch)."""
        if not done.cancelled() and (exc := done.exception()) is not None:
            log.error("writing a snapshot of the device and rule state failed: %s", exc)
            self._snapshot_error = exc
