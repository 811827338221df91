"""The async side of alerts: a sink for the rule engine's transitions (committed with them), the
deadline task for escalations, reminders and 叫应 calls, and the actions people take through the API.
Every change's messages are posted to delivery's outbox (kernel.outgoing.Outbox, given by app) and
committed with the change; they go to delivery once the commit is durable."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from alerts import call_until_answered as calling
from alerts import drills
from alerts.manager import WITHHOLDABLE, AlertManager, Changes, Message, Silence
from alerts.store import SCHEMA, SELECT_ACTIVE, SELECT_SILENCES, alert_from_row
from kernel.alerting import Alert, Transition
from kernel.clock import Clock
from kernel.deadlines import DeadlineLoop
from kernel.errors import Reason, Refused
from kernel.metrics import Registry
from kernel.outgoing import Outbox
from kernel.reading import Point
from kernel.settings import Settings
from kernel.writes import Write

log = logging.getLogger("cbrain.alerts")
Persist = Callable[[list[Write]], Awaitable[None]]
AlertEvent = tuple[dict[str, Any], str, int]
WritePoints = Callable[[list[Point]], Coroutine[Any, Any, None]]


class AlertsRunner:
    """Wires the manager to the commit, the clock and delivery's outbox."""

    def __init__(self, manager: AlertManager, outbox: Outbox, clock: Clock, metrics: Registry,
                 persist: Persist, write_points: WritePoints | None = None) -> None:
        self.manager = manager
        self.write_points = write_points
        self._writing: set[asyncio.Task[None]] = set()
        self.outbox = outbox
        self.clock = clock
        self.persist = persist
        self.deadlines = DeadlineLoop(clock, manager.next_deadline, self._tick)
        self._lock = asyncio.Lock()
        self._held: list[Message] = []
        self._held_deliveries: list[Callable[[], None]] = []
        self._held_events: list[AlertEvent] = []
        self._roster_ids: set[str] = set()
        # Told of every committed alert change, whoever was notified (the pages' live stream).
        self.event_listeners: list[Callable[[list[AlertEvent]], None]] = []
        self.m_events = metrics.counter("cb_alert_events_total", "Alert events, by level and event",
                                        ["level", "event"])
        metrics.gauge("cb_alerts_open", "Open alerts, by level", ["level"], source=self._open_counts)
        manager.listeners.append(self._count)

    def _open_counts(self) -> dict[tuple[str, ...], float]:
        counts: dict[tuple[str, ...], float] = {}
        for a in self.manager.open.values():
            counts[(a.level.value,)] = counts.get((a.level.value,), 0) + 1
        return counts

    def _count(self, messages: list[Message]) -> None:
        seen = set()
        for m in messages:
            if (m.subject_id, m.event) not in seen:
                seen.add((m.subject_id, m.event))
                # The level the notification says (a resolved alert is no longer open).
                self.m_events.inc(1, str(m.body["level"]), m.event.value)

    async def recover(self, script: Callable[[str], Awaitable[None]],
                      select: Callable[[str], Awaitable[list[tuple[Any, ...]]]]) -> int:
        """Create the tables; load open alerts, who was told of them, and their 叫应 calls. How many are open."""
        await script(SCHEMA)
        alerts = [alert_from_row(r) for r in await select(SELECT_ACTIVE)]
        told = await self.outbox.told([a.id for a, _e, _r in alerts], sorted(e.value for e in WITHHOLDABLE))
        self.manager.restore(alerts, told)
        self.manager.restore_silences([Silence(*row) for row in await select(SELECT_SILENCES)])
        # 叫应: the calls of open alerts and their deadlines (alerts/call_until_answered.py).
        await script(calling.SCHEMA)
        self.manager.calls.restore(calling.call_from_row(r) for r in await select(calling.SELECT_OPEN_CALLS))
        self._roster_ids = {str(r[0]) for r in await select(calling.SELECT_ROSTER_ALERTS)}
        # Drills still open, and the drill alerts still open (alerts/drills.py).
        await script(drills.SCHEMA)
        known = {d.id: d for d in (drills.Drill.from_row(r) for r in await select(drills.SELECT_DRILLS))}
        self.manager.drills.restore([d for d in known.values() if d.ended_ns is None],
                                    [(str(a), str(d)) for a, d in await select(drills.SELECT_OPEN_DRILL_ALERTS)],
                                    known)
        return len(self.manager.open)

    # ---- the rule engine's sink: same transaction as the rule state ------------------------------

    def prepare(self, transitions: list[Transition], now_ns: int) -> list[Write]:
        """Alerts, events and outbox rows for these transitions."""
        changes = self.manager.on_transitions(transitions, now_ns)
        posting = self.outbox.post(changes.messages)
        self._held.extend(changes.messages)
        self._held_deliveries.append(posting.deliver)
        self._held_events.extend(changes.events)
        return changes.writes + posting.writes

    def committed(self) -> None:
        """The batch is durable: deliver its notifications, and look at the deadlines again."""
        held, self._held = self._held, []
        deliveries, self._held_deliveries = self._held_deliveries, []
        events, self._held_events = self._held_events, []
        self._release(held, deliveries, events)

    async def _commit(self, changes: Changes, also: list[Write] | None = None) -> None:
        """Commit a change with its outbox rows (and `also`), then release its messages."""
        posting = self.outbox.post(changes.messages)
        writes = changes.writes + posting.writes + (also or [])
        if writes:
            await self.persist(writes)
        self._release(changes.messages, [posting.deliver], changes.events)

    def _release(self, messages: list[Message], deliveries: list[Callable[[], None]],
                 events: list[AlertEvent]) -> None:
        self.manager.committed(messages)
        for deliver in deliveries:
            deliver()
        if events:
            for listener in self.event_listeners:
                listener(events)
        if self.write_points is not None and events:
            task = asyncio.create_task(self.write_points(alert_points(events)), name="alert-points")
            self._writing.add(task)
            task.add_done_callback(self._writing.discard)
        self.deadlines.wake()

    async def apply(self, transitions: list[Transition], *, unsaved_after_s: float | None = None,
                    also: list[Write] | None = None) -> None:
        """Transitions from outside a batch (the service's own findings, the resources' rules): commit, with
        `also` in the same transaction, then notify.

        With `unsaved_after_s` (a finding about the state database's own disk), notifications the
        commit has not taken within that time are sent anyway, best effort, and said so in the log;
        their rows are written once the database can be written (the commit is kept, not dropped)."""
        if not transitions and not also:
            return
        async with self._lock:
            changes = self.manager.on_transitions(transitions, self.clock.now_ns())
            if unsaved_after_s is None:
                await self._commit(changes, also)
                return
            posting = self.outbox.post(changes.messages)
            saving = asyncio.ensure_future(self.persist(changes.writes + posting.writes))
            done, _ = await asyncio.wait({saving}, timeout=unsaved_after_s)
            if not done:
                log.error("%d notifications of %s could not be written to the outbox within %g s (the state "
                          "database cannot be written): sent directly, best effort; their rows follow once it "
                          "can be written", len(changes.messages), ", ".join(sorted({t.rule for t in transitions})),
                          unsaved_after_s)
                self._release(changes.messages, [posting.deliver], changes.events)
                await saving
                return
            saving.result()
            self._release(changes.messages, [posting.deliver], changes.events)

    # ---- people ----------------------------------------------------------------------------------

    async def acknowledge(self, alert_id: str, actor: str, note: str | None, also: list[Write] | None = None, *,
                          via: str = "api") -> Alert:
        """Acknowledge (answering the actor's 叫应 calls, `via` saying how), commit with `also` (e.g. the
        audit log's row), notify."""
        async with self._lock:
            alert, changes = self.manager.acknowledge(alert_id, actor, note, self.clock.now_ns(), via=via)
            await self._commit(changes, also)
            return alert

    async def resolve(self, alert_id: str, actor: str, note: str | None, also: list[Write] | None = None) -> Alert:
        """Resolve, commit (with `also`), notify."""
        async with self._lock:
            alert, changes = self.manager.resolve(alert_id, actor, note, self.clock.now_ns())
            await self._commit(changes, also)
            return alert

    async def hand_over(self, alert_id: str, actor: str, to: str, note: str | None,
                        also: list[Write] | None = None) -> Alert:
        """Hand the alert over to another recipient, commit (with `also`), notify them."""
        async with self._lock:
            alert, changes = self.manager.hand_over(alert_id, actor, to, note, self.clock.now_ns())
            await self._commit(changes, also)
            return alert

    async def add_silence(self, silence: Silence, also: list[Write] | None = None) -> Silence:
        """Record a silence (it takes effect at once), committed with `also`."""
        async with self._lock:
            await self.persist(self.manager.add_silence(silence) + (also or []))
            return silence

    async def expire_silence(self, silence_id: str, actor: str, also: list[Write] | None = None) -> Silence:
        """End a silence now, committed with `also`."""
        async with self._lock:
            silence, writes = self.manager.expire_silence(silence_id, actor, self.clock.now_ns())
            await self.persist(writes + (also or []))
            return silence

    async def start_drill(self, drill: drills.Drill, also: list[Write] | None = None) -> drills.Drill:
        """Record a drill and open it: alerts of its community that fire from the commit on are drill alerts."""
        async with self._lock:
            if drill.community in self.manager.drills.open:
                raise Refused(Reason.CONFLICT, f"a drill of {drill.community} is already running "
                                               f"({self.manager.drills.open[drill.community].id})")
            await self.persist([(drills.INSERT_DRILL, [drill.row()])] + (also or []))
            self.manager.drills.start(drill)
            return drill

    async def stop_drill(self, drill_id: str) -> None:
        """Alerts that fire from now on are real again (the drill's row is ended by its report: end_drill)."""
        async with self._lock:
            self.manager.drills.end(drill_id)

    async def check_roster(self, settings: Settings) -> int:
        """Report each community's stale duty roster (service.roster_stale); clear those verified since."""
        async with self._lock:
            now = self.clock.now_ns()
            today = datetime.fromtimestamp(now / 1e9, tz=UTC).date()
            transitions = calling.roster_transitions(settings, today, list(self.manager.open.values()),
                                                    self._roster_ids, now)
            if not transitions:
                return 0
            self._roster_ids |= {t.episode for t in transitions}
            await self._commit(self.manager.on_transitions(transitions, now))
            return len(transitions)

    async def watch_roster(self, settings: Settings, every_s: float = 6 * 3600) -> None:
        """check_roster now and every `every_s`."""
        while True:
            await self.check_roster(settings)
            await asyncio.sleep(every_s)

    # ---- deadlines -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Escalations, reminders and 叫应 calls as they fall due."""
        await self.deadlines.run()

    async def _tick(self, now: int) -> None:
        async with self._lock:
            await self._commit(self.manager.on_tick(now))


def alert_points(events: list[AlertEvent]) -> list[Point]:
    """One `alert` point per alert event (docs/storage.md), whoever was told of it."""
    points: list[Point] = []
    for a, event, at in events:
        fields: dict[str, float | bool | str] = {"alert_id": a["id"], "summary": a["summary"]}
        if a["value"] is not None:
            fields["value"] = float(a["value"])
        started = a.get("started_at")
        if isinstance(started, str):
            # Seconds from the alert's start to this event: InfluxQL cannot join an alert's events,
            # so time to acknowledge and to resolve are read straight from this field.
            age_s = (at - int(datetime.fromisoformat(started).timestamp() * 1e9)) / 1e9
            fields["age_s"] = max(0.0, age_s)
        tags = {"community": a["community"], "level": a["level"], "rule": a["rule"], "event": event}
        # Events of one commit share a time: a nanosecond apart, so none replaces another.
        points.append(Point("alert", tags, fields, at + len(points)))
    return points
