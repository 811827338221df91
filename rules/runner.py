"""The async side of the rule engine: it evaluates batches in the ingest's commit, keeps the
engine's state durable in the same SQLite transaction, runs deadlines on the service clock, and
hands transitions on only once the state that produced them is durable.

The state is kept as a snapshot (one row per device, `rule_state`) and a journal of what the
engine was given since (`rule_journal`: each batch's readings and statuses, each deadline run,
with the service time it ran at). A commit appends one journal row; every SNAPSHOT_EVERY_NS (or
after SNAPSHOT_AFTER inputs) the rows of the devices changed since the last snapshot are written
too and the journal emptied, in a transaction right after the batch's (a deadline's commit does
both in one). After a restart the snapshot is loaded and the journal replayed through the same
engine code, in order, with its transitions dropped (they were committed, with the alerts they
made, in the transaction that journalled them). Writing every changed device's whole state with
each commit cost about 5-10 µs per reading; a journal row costs well under one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson

from kernel.alerting import Transition
from kernel.clock import Clock
from kernel.deadlines import DeadlineLoop
from kernel.ids import DeviceType
from kernel.metrics import Registry
from kernel.packed import Packed, unpacked
from kernel.reading import Reading, StatusUpdate
from kernel.snapshots import SnapshotSchedule
from kernel.writes import Write
from rules.engine import Engine

log = logging.getLogger("cbrain.rules")

SCHEMA = """
CREATE TABLE IF NOT EXISTS rule_state (
    community TEXT NOT NULL,
    device_type TEXT NOT NULL,
    device_id TEXT NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (community, device_type, device_id)
);
"""
UPSERT = ("INSERT INTO rule_state VALUES (?, ?, ?, ?) ON CONFLICT (community, device_type, device_id) "
          "DO UPDATE SET state = excluded.state")
SELECT = "SELECT community, device_type, device_id, state FROM rule_state"
JOURNAL_SCHEMA = """
CREATE TABLE IF NOT EXISTS rule_journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    body BLOB NOT NULL
);
"""
JOURNAL_APPEND = "INSERT INTO rule_journal (body) VALUES (?)"
JOURNAL_SELECT = "SELECT body FROM rule_journal ORDER BY id"
JOURNAL_CLEAR = "DELETE FROM rule_journal"
# A snapshot at least this often (service time), and after this many journalled inputs: what a
# restart replays stays small (~10 µs an input: at most about a second). A snapshot writes every
# device changed since the last one; once a second it cost ~1.5 µs a reading at 20,000/s. Its
# transaction (a thousand rows, and the journal's pages freed: 8-19 ms on the database thread under
# load at 10,000/s) holds up the next batch's, and the alerts it carries.
SNAPSHOT_EVERY_NS = 30_000_000_000
SNAPSHOT_AFTER = 100_000
# A batch is evaluated (and a snapshot's rows made) this many readings (devices) at a time; the
# pipeline's commit lets the event loop run between them (prepare_async), so that a commit of
# hundreds of readings does not hold up, for ~10 ms at a time, the deliveries of the alerts of the
# commit before. The journal is replayed in the same pieces, so a replay cascades as the batch did.
CHUNK = 64

Persist = Callable[[list[Write]], Awaitable[None]]


class TransitionSink(Protocol):
    """Takes transitions with the rule state: its writes join the same transaction (the alerts)."""

    def prepare(self, transitions: list[Transition], now_ns: int) -> list[Write]: ...

    def committed(self) -> None: ...


class RulesRunner:
    """A pipeline stage (prepare / committed) plus the deadline task.

    `sink` takes the transitions with the rule state (the alerts); without one they are only
    counted and logged."""

    def __init__(self, engine: Engine, clock: Clock, metrics: Registry, persist: Persist, *,
                 sink: TransitionSink | None = None) -> None:
        self.engine = engine
        self.clock = clock
        self.persist = persist
        self.sink = sink
        self._held: list[Transition] = []
        self._deadlines = DeadlineLoop(clock, lambda: self.engine.next_deadline(), self._fire, before=self._before)
        self._snapshots = SnapshotSchedule(SNAPSHOT_EVERY_NS, SNAPSHOT_AFTER)
        self._snapshot_due = False  # a reloaded engine: the next write is a snapshot of every state
        self._preparing = False  # a batch is being evaluated in pieces (prepare_async)
        self._prepared = asyncio.Event()  # set when it is done
        self._next_engine: Engine | None = None  # a reload waiting for that
        self._after: list[Write] = []  # a snapshot to follow the batch's transaction (after_commit)
        self._snapshot_owed = False  # ... whose rows after_commit makes (after prepare_async)
        self.m_transitions = metrics.counter("cb_rule_transitions_total", "Rule transitions, by rule, kind and level",
                                             ["rule", "kind", "level"])
        self.m_eval = metrics.histogram("cb_rules_batch_seconds", "Rule evaluation time of one batch",
                                        [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25])
        metrics.gauge("cb_rules_firing", "Episodes firing now, by rule and level", ["rule", "level"],
                      source=self._firing_counts)
        metrics.gauge("cb_rules_watched", "Devices and groups the rule engine watches",
                      source=lambda: float(len(self.engine.watched)))

    def _firing_counts(self) -> dict[tuple[str, ...], float]:
        counts: dict[tuple[str, ...], float] = {}
        for rule, _c, _d, level in self.engine.firing_now():
            counts[(rule, level.value)] = counts.get((rule, level.value), 0) + 1
        return counts

    async def recover(self, script: Callable[[str], Awaitable[None]],
                      select: Callable[[str], Awaitable[list[tuple[Any, ...]]]]) -> int:
        """Create the table and load the state a previous run left."""
        await script(SCHEMA + JOURNAL_SCHEMA)
        rows = await select(SELECT)
        self.engine.restore([(str(c), str(t), str(d), bytes(s)) for c, t, d, s in rows], self.clock.now_ns())
        journal = await select(JOURNAL_SELECT)
        for (body,) in journal:
            self._replay(bytes(body))
        if journal:
            log.info("rule journal replayed: %d entries since the last snapshot", len(journal))
        # The replayed state, and devices the site lists that no state covered yet (new, or never
        # heard from), are saved now as a fresh snapshot.
        await self.persist(self._snapshot(self.clock.now_ns()))
        return len(rows)

    def _replay(self, body: bytes) -> None:
        """One journal entry through the engine, as it ran; its transitions were committed then."""
        now, readings, statuses = orjson.loads(unpacked(body))
        if readings is None:
            self.engine.on_tick(now)
            return
        self._evaluate(
            [Reading(c, DeviceType(t), d, ts, fields, received_ns=rx) for c, t, d, ts, rx, fields in readings],
            [StatusUpdate(c, DeviceType(t), d, online, rx) for c, t, d, online, rx in statuses], now)

    def _evaluate(self, readings: list[Reading], statuses: list[StatusUpdate], now: int) -> list[Transition]:
        """A batch through the engine in the pieces prepare_async takes it in, all at once."""
        transitions: list[Transition] = []
        for i in range(0, len(readings), CHUNK):
            transitions += self.engine.on_batch(readings[i:i + CHUNK], [], now)
        return transitions + self.engine.on_batch([], statuses, now)

    def _durable(self, now: int, entry: Callable[[], bytes], inputs: int) -> list[Write]:
        """What makes the engine's state after this input durable: a journal row, or a snapshot."""
        if self._snapshot_next(now, inputs):
            return self._snapshot(now)
        self._snapshots.journal(inputs)
        return [(JOURNAL_APPEND, [(entry(),)])]

    def _snapshot(self, now: int, rows: list[tuple[str, str, str, bytes]] | None = None) -> list[Write]:
        """The devices changed since the last snapshot (rows, when made already), and an empty journal."""
        if rows is None:
            rows = self.engine.take_dirty()
        self._snapshots.taken(now)
        self._snapshot_due = False
        return ([(UPSERT, rows)] if rows else []) + [(JOURNAL_CLEAR, [()])]

    def _snapshot_next(self, now: int, inputs: int) -> bool:
        return self._snapshot_due or self._snapshots.due(now, inputs)

    # ---- pipeline stage --------------------------------------------------------------------------

    def prepare(self, readings: list[Reading], statuses: list[StatusUpdate], now_ns: int) -> list[Write]:
        """Evaluate a batch; its state goes into the batch's transaction, its transitions wait."""
        started = time.perf_counter()
        transitions = self._evaluate(readings, statuses, now_ns)
        self.m_eval.observe(time.perf_counter() - started)
        return self._prepared_writes(readings, statuses, now_ns, transitions)

    async def prepare_async(self, readings: list[Reading], statuses: list[StatusUpdate], now_ns: int) -> list[Write]:
        """prepare(), letting the event loop run between pieces of the batch (and of a snapshot).

        Nothing else touches the engine meanwhile: deadlines and a reload wait for the batch. The
        caller hands the writes to the database before it lets the loop run again, so the batch's
        transaction comes before any a deadline then makes."""
        self._preparing = True
        self._prepared.clear()
        try:
            spent = 0.0
            transitions: list[Transition] = []
            for i in range(0, len(readings), CHUNK):
                started = time.perf_counter()
                transitions += self.engine.on_batch(readings[i:i + CHUNK], [], now_ns)
                spent += time.perf_counter() - started
                await asyncio.sleep(0)
            started = time.perf_counter()
            transitions += self.engine.on_batch([], statuses, now_ns)
            self.m_eval.observe(spent + time.perf_counter() - started)
            if self._next_engine is not None:
                self._swap(self._next_engine)
            return self._prepared_writes(readings, statuses, now_ns, transitions, later=True)
        finally:
            self._preparing = False
            self._prepared.set()

    def _prepared_writes(self, readings: list[Reading], statuses: list[StatusUpdate], now_ns: int,
                         transitions: list[Transition], later: bool = False) -> list[Write]:
        self._held.extend(transitions)
        if not readings and not statuses:
            return []
        inputs = len(readings) + len(statuses)
        # The batch is journalled in its own transaction even when a snapshot is due: the snapshot
        # follows in one of its own (after_commit), so that the batch, and the alerts it carries,
        # do not wait for a thousand rows to be made and written.
        writes: list[Write] = [(JOURNAL_APPEND, [(Packed(_batch_entry(now_ns, readings, statuses)),)])]
        if self._snapshot_next(now_ns, inputs):
            if later:
                self._snapshot_owed = True
            else:
                self._after = self._snapshot(now_ns, self.engine.take_dirty())
        else:
            self._snapshots.journal(inputs)
        if self.sink is not None and transitions:
            writes += self.sink.prepare(transitions, now_ns)
        return writes

    async def after_commit(self) -> list[Write]:
        """The snapshot the last batch made due, for a transaction of its own right after the batch's
        (a crash in between keeps the journal, which the batch extended).

        After prepare_async, its rows are made here, once the batch is durable and committed() has
        let its transitions out: made in the batch's turn, the rows of a thousand devices (~20 ms)
        held up the batch's alerts. Nothing else touches the engine while they are made, so they are
        its state after the batch; the caller hands them to the database before the loop runs again,
        so no deadline's transaction comes in between."""
        after, self._after = self._after, []
        if not self._snapshot_owed:
            return after
        self._snapshot_owed = False
        self._preparing = True
        self._prepared.clear()
        keys = list(self.engine.dirty)
        self.engine.dirty.clear()
        made = False
        try:
            rows: list[tuple[str, str, str, bytes]] = []
            for i in range(0, len(keys), CHUNK):
                rows += self.engine.state_rows(keys[i:i + CHUNK])
                await asyncio.sleep(0)
            made = True
            return self._snapshot(self.clock.now_ns(), rows)
        finally:
            if not made:  # (cancelled, or failed: the next snapshot, which empties the journal, writes them)
                self.engine.dirty.update(keys)
                self._snapshot_owed = True
            self._preparing = False
            self._prepared.set()

    def committed(self) -> None:
        """The batch is durable: let its transitions out, and look again at the deadlines."""
        held, self._held = self._held, []
        self._emit(held)
        if self.sink is not None and held:
            self.sink.committed()
        self._deadlines.wake()

    # ---- deadlines -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run deadlines as they fall due on the service clock."""
        await self._deadlines.run()

    async def _before(self) -> bool:
        """At the top of every turn of the deadline loop; False starts the turn again."""
        if self._preparing:  # a batch is being evaluated: its deadlines come after it
            await self._prepared.wait()
            return False
        if self._snapshot_due:  # a reloaded engine: its state as a whole, the journal emptied
            await self.persist(self._snapshot(self.clock.now_ns()))
        return True

    async def _fire(self, now: int) -> None:
        """Deadlines due at now, their state made durable, then their transitions handed on."""
        transitions, writes = self.tick(now)
        if self.sink is not None and transitions:
            writes += self.sink.prepare(transitions, now)
        await self.persist(writes)
        self._emit(transitions)
        if self.sink is not None and transitions:
            self.sink.committed()
        await asyncio.sleep(0)  # many deadlines at once must not keep ingest and the API waiting

    def tick(self, now: int) -> tuple[list[Transition], list[Write]]:
        """Deadlines due at now: their transitions, and the writes that make the state after them durable."""
        transitions = self.engine.on_tick(now)
        return transitions, self._durable(now, lambda: orjson.dumps([now, None, None]), 1)

    def reload(self, engine: Engine) -> None:
        """Swap in an engine for a changed rules file, carrying every state over (once the batch
        being evaluated, if one is, is done)."""
        if self._preparing:
            self._next_engine = engine
            return
        self._swap(engine)

    def _swap(self, engine: Engine) -> None:
        self._next_engine = None
        everything = [(*key, blob) for key, blob in self._dump_all()]
        engine.restore(everything, self.clock.now_ns())
        # The journal holds inputs the old rules saw: the next write is a snapshot of every state.
        engine.dirty.update(engine.watched)
        self.engine = engine
        self._snapshot_due = True
        self._deadlines.wake()

    def _dump_all(self) -> list[tuple[tuple[str, str, str], bytes]]:
        self.engine.dirty.update(self.engine.watched)
        return [((c, t, d), s) for c, t, d, s in self.engine.take_dirty()]

    def _emit(self, transitions: list[Transition]) -> None:
        for tr in transitions:
            self.m_transitions.inc(1, tr.rule, tr.kind.value, tr.level.value if tr.level else "none")
            log.info("%s %s %s at %s/%s (%s)", tr.kind.value, tr.rule, tr.level.value if tr.level else "",
                     tr.community, tr.device_id, tr.episode)


def _batch_entry(now: int, readings: list[Reading], statuses: list[StatusUpdate]) -> bytes:
    """A batch as the journal keeps it: what the engine reads of each reading and status."""
    return orjson.dumps([
        now,
        [(r.community, r.device_type.value, r.device_id, r.ts_ns, r.received_ns, r.fields) for r in readings],
        [(s.community, s.device_type.value, s.device_id, s.online, s.received_ns) for s in statuses],
    ])
