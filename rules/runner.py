"""The async side of the rule engine: it evaluates batches in the ingest's commit, keeps the
engine's state in the same SQLite transaction, runs deadlines on the service clock, and hands
transitions on only once the state that produced them is durable."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from kernel.alerting import Transition
from kernel.clock import Clock
from kernel.metrics import Registry
from kernel.reading import Reading, StatusUpdate
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

Write = tuple[str, list[tuple[Any, ...]]]
Persist = Callable[[list[Write]], Awaitable[None]]


class TransitionSink(Protocol):
    """Takes transitions with the rule state: its writes join the same transaction (the alerts)."""

    def prepare(self, transitions: list[Transition], now_ns: int) -> list[Write]: ...

    def committed(self) -> None: ...


class RulesRunner:
    """A pipeline stage (prepare / committed) plus the deadline task."""

    def __init__(self, engine: Engine, clock: Clock, metrics: Registry, persist: Persist) -> None:
        self.engine = engine
        self.clock = clock
        self.persist = persist
        self.sink: TransitionSink | None = None
        self._held: list[Transition] = []
        self._wake = asyncio.Event()
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
        await script(SCHEMA)
        rows = await select(SELECT)
        self.engine.restore([(str(c), str(t), str(d), bytes(s)) for c, t, d, s in rows], self.clock.now_ns())
        # Devices the site lists that no state covered yet (new, or never heard from) are saved now.
        fresh = self.engine.take_dirty()
        if fresh:
            await self.persist([(UPSERT, fresh)])
        return len(rows)

    # ---- pipeline stage --------------------------------------------------------------------------

    def prepare(self, readings: list[Reading], statuses: list[StatusUpdate], now_ns: int) -> list[Write]:
        """Evaluate a batch; its state goes into the batch's transaction, its transitions wait."""
        started = time.perf_counter()
        transitions = self.engine.on_batch(readings, statuses, now_ns)
        self._held.extend(transitions)
        self.m_eval.observe(time.perf_counter() - started)
        rows = self.engine.take_dirty()
        writes = [(UPSERT, rows)] if rows else []
        if self.sink is not None and transitions:
            writes += self.sink.prepare(transitions, now_ns)
        return writes

    def committed(self) -> None:
        """The batch is durable: let its transitions out, and look again at the deadlines."""
        held, self._held = self._held, []
        self._emit(held)
        if self.sink is not None and held:
            self.sink.committed()
        self._wake.set()

    # ---- deadlines -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run deadlines as they fall due on the service clock."""
        while True:
            due = self.engine.next_deadline()
            now = self.clock.now_ns()
            if due is None or due > now:
                wait = None if due is None else (due - now) / 1e9
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                continue
            transitions = self.engine.on_tick(now)
            rows = self.engine.take_dirty()
            writes = [(UPSERT, rows)] if rows else []
            if self.sink is not None and transitions:
                writes += self.sink.prepare(transitions, now)
            if writes:
                await self.persist(writes)
            self._emit(transitions)
            if self.sink is not None and transitions:
                self.sink.committed()
            await asyncio.sleep(0)  # many deadlines at once must not keep ingest and the API waiting

    def reload(self, engine: Engine) -> None:
        """Swap in an engine for a changed rules file, carrying every state over."""
        everything = [(*key, blob) for key, blob in self._dump_all()]
        engine.restore(everything, self.clock.now_ns())
        self.engine = engine
        self._wake.set()

    def _dump_all(self) -> list[tuple[tuple[str, str, str], bytes]]:
        self.engine.dirty.update(self.engine.watched)
        return [((c, t, d), s) for c, t, d, s in self.engine.take_dirty()]

    def _emit(self, transitions: list[Transition]) -> None:
        for tr in transitions:
            self.m_transitions.inc(1, tr.rule, tr.kind.value, tr.level.value if tr.level else "none")
            log.info("%s %s %s at %s/%s (%s)", tr.kind.value, tr.rule, tr.level.value if tr.level else "",
                     tr.community, tr.device_id, tr.episode)
