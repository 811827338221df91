"""The async side of the rule engine: it evaluates readings as the ingest takes them, keeps the
engine's state durable in the transaction of their batch, runs deadlines on the service clock, and
hands transitions on only once the state that produced them is durable.

A batch is evaluated while it is open (`observe`, as the pipeline takes deliveries), not after it
closes: a reading that changes a rule's level tells the pipeline to commit at once rather than
at the end of its flush window, and the commit itself no longer waits for the evaluation. Until
the batch is sealed and committed nothing else runs the engine: deadlines due meanwhile join the
batch (`seal`), a reload waits for it.

The state is kept as a snapshot (one row per device, `rule_state`) and a journal of what the
engine was given since (`rule_journal`: each batch's pieces, readings and statuses as the engine
took them and the deadline runs among them, each with the service time it ran at). A commit
appends one journal row; every SNAPSHOT_EVERY_NS (or after SNAPSHOT_AFTER inputs) the rows of the
devices changed since the last snapshot are written too and the journal emptied, in a transaction
right after the batch's (a deadline's commit does both in one). After a restart the snapshot is
loaded and the journal replayed through the same engine code, in order, with its transitions
dropped (they were committed, with the alerts they made, in the transaction that journalled them).
Writing every changed device's whole state with each commit cost about 5-10 µs per reading; a
journal row costs well under one.
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
# The engine takes a batch's readings this many at a time (the transitions of one call cascade
# together: the journal is replayed in the same pieces), and after_commit makes a snapshot's rows
# this many devices at a time, letting the event loop run between them.
CHUNK = 64

Persist = Callable[[list[Write]], Awaitable[None]]
# One piece of a batch as the engine took it: (service time, readings, statuses); a deadline's run
# at that time has neither.
Piece = tuple[int, list[Reading] | None, list[StatusUpdate] | None]


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
        # The open batch: what observe() evaluated since the last seal, in order (its journal
        # entry), the transitions that made, and the evaluation time spent.
        self._pieces: list[Piece] = []
        self._open: list[Transition] = []
        self._spent = 0.0
        self._held: list[Transition] = []  # the sealed batch's transitions, let out by committed()
        self._in_flight = False  # a batch is sealed and not yet committed
        # Inputs that came while a snapshot's rows were owed: (service time, readings, statuses).
        self._waiting: list[tuple[int, list[Reading], list[StatusUpdate]]] = []
        self._deadlines = DeadlineLoop(clock, lambda: self.engine.next_deadline(), self._fire, before=self._before)
        self._settled = asyncio.Event()  # set at each commit and snapshot: the deadline loop looks again
        self._snapshots = SnapshotSchedule(SNAPSHOT_EVERY_NS, SNAPSHOT_AFTER)
        self._snapshot_due = False  # a reloaded engine: the next write is a snapshot of every state
        self._next_engine: Engine | None = None  # a reload waiting for the batch
        self._snapshot_owed = False  # a snapshot whose rows after_commit makes, once the batch is durable
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
        """One journal entry through the engine, as it ran; its transitions were committed then.
        An entry is a batch's pieces in order (a deadline's run: no readings), or, as earlier
        versions wrote it and a deadline's own commit still does, one piece."""
        entry = orjson.loads(unpacked(body))
        for now, readings, statuses in (entry if isinstance(entry[0], list) else [entry]):
            if readings is None:
                self.engine.on_tick(now)
                continue
            self._evaluate(
                [Reading(c, DeviceType(t), d, ts, fields, received_ns=rx) for c, t, d, ts, rx, fields in readings],
                [StatusUpdate(c, DeviceType(t), d, online, rx) for c, t, d, online, rx in statuses], now)

    def _evaluate(self, readings: list[Reading], statuses: list[StatusUpdate], now: int) -> list[Transition]:
        """One piece of a batch through the engine, CHUNK readings at a time, then its statuses."""
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

    def observe(self, readings: list[Reading], statuses: list[StatusUpdate], now_ns: int) -> bool:
        """Evaluate inputs of the open batch as they arrive (the pipeline calls this as it takes
        deliveries); their transitions wait for the batch's commit. True when they changed a
        rule's level somewhere: the batch, and its alerts, should be committed soon.

        While a snapshot's rows are owed (sealed until after_commit made them) inputs wait: the
        rows are the state the durable batches left."""
        if self._snapshot_owed:
            self._waiting.append((now_ns, readings, statuses))
            return False
        changed = self._take_waiting()
        return self._observe(now_ns, readings, statuses) or changed

    def _observe(self, now: int, readings: list[Reading], statuses: list[StatusUpdate]) -> bool:
        if not readings and not statuses:
            return False
        started = time.perf_counter()
        transitions = self._evaluate(readings, statuses, now)
        self._spent += time.perf_counter() - started
        self._pieces.append((now, readings, statuses))
        self._open += transitions
        return bool(transitions)

    def _take_waiting(self) -> bool:
        waiting, self._waiting = self._waiting, []
        changed = False
        for now, readings, statuses in waiting:
            changed = self._observe(now, readings, statuses) or changed
        return changed

    def seal(self, now_ns: int) -> list[Write]:
        """The open batch goes to its commit: deadlines due by now join it (under load a batch is
        nearly always open, so this is where they run), then its journal entry, the snapshot if
        one is due (its rows made by after_commit), and the writes of its alerts."""
        self._take_waiting()
        if (due := self.engine.next_deadline()) is not None and due <= now_ns:
            self._open += self.engine.on_tick(now_ns)
            self._pieces.append((now_ns, None, None))
        if self._next_engine is not None:
            self._swap(self._next_engine)
        pieces, self._pieces = self._pieces, []
        transitions, self._open = self._open, []
        self._held += transitions
        if not pieces:
            return []
        self._in_flight = True
        self.m_eval.observe(self._spent)
        self._spent = 0.0
        inputs = sum(len(r) + len(s) if r is not None and s is not None else 1 for _n, r, s in pieces)
        # The batch is journalled in its own transaction even when a snapshot is due: the snapshot
        # follows in one of its own (after_commit), so that the batch, and the alerts it carries,
        # do not wait for a thousand rows to be made and written.
        writes: list[Write] = [(JOURNAL_APPEND, [(Packed(_batch_entry(pieces)),)])]
        if self._snapshot_next(now_ns, inputs):
            self._snapshot_owed = True
        else:
            self._snapshots.journal(inputs)
        if self.sink is not None and transitions:
            writes += self.sink.prepare(transitions, now_ns)
        return writes

    def prepare(self, readings: list[Reading], statuses: list[StatusUpdate], now_ns: int) -> list[Write]:
        """A whole batch at once: observe() and seal()."""
        self.observe(readings, statuses, now_ns)
        return self.seal(now_ns)

    async def after_commit(self) -> list[Write]:
        """The snapshot the last batch made due, for a transaction of its own right after the batch's
        (a crash in between keeps the journal, which the batch extended).

        Its rows are made here, once the batch is durable and committed() has let its transitions
        out: made in the batch's turn, the rows of a thousand devices (~20 ms) held up the batch's
        alerts. Inputs wait meanwhile (observe), so they are the engine's state after the batch; the
        caller hands them to the database before the loop runs again, so no deadline's transaction
        comes in between."""
        if not self._snapshot_owed:
            return []
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
            if not made:  # (cancelled, or failed: owed still; the next, which empties the journal, writes them)
                self.engine.dirty.update(keys)
            self._snapshot_owed = not made
            self._settle()

    def committed(self) -> None:
        """The batch is durable: let its transitions out, and look again at the deadlines."""
        held, self._held = self._held, []
        self._in_flight = False
        self._emit(held)
        if self.sink is not None and held:
            self.sink.committed()
        self._settle()

    def _busy(self) -> bool:
        """Whether a batch is open, or sealed and not yet through its commit and snapshot."""
        return bool(self._pieces or self._waiting or self._in_flight or self._snapshot_owed)

    def _settle(self) -> None:
        """A commit or a snapshot is done: a reload waiting for it goes in, and the deadline loop looks again."""
        if self._next_engine is not None and not self._busy():
            self._swap(self._next_engine)
        self._settled.set()
        self._deadlines.wake()

    # ---- deadlines -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run deadlines as they fall due on the service clock."""
        await self._deadlines.run()

    async def _before(self) -> bool:
        """At the top of every turn of the deadline loop; False starts the turn again."""
        if self._busy():  # what falls due meanwhile joins the open batch (seal): look again after its commit
            self._settled.clear()
            await self._settled.wait()
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
        """Swap in an engine for a changed rules file, carrying every state over (once a batch open
        or being committed, if one is, is sealed or through its commit)."""
        if self._busy():
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


def _batch_entry(pieces: list[Piece]) -> bytes:
    """A batch as the journal keeps it: its pieces in order, each with what the engine reads of each
    reading and status (a deadline's run: none)."""
    return orjson.dumps([
        [now, None, None] if readings is None or statuses is None else [
            now,
            [(r.community, r.device_type.value, r.device_id, r.ts_ns, r.received_ns, r.fields) for r in readings],
            [(s.community, s.device_type.value, s.device_id, s.online, s.received_ns) for s in statuses]]
        for now, readings, statuses in pieces])
