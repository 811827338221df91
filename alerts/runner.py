"""The async side of alerts: a sink for the rule engine's transitions (committed with them), the
deadline task for escalations and reminders, and the actions people take through the API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from alerts import answer
from alerts.deliver import Deliverer, Pending
from alerts.manager import AlertManager, Notification, Silence
from alerts.store import SCHEMA, SELECT_ACTIVE, SELECT_PENDING, SELECT_SILENCES, SELECT_TOLD, alert_from_row
from kernel.alerting import Alert, Transition
from kernel.clock import Clock
from kernel.metrics import Registry
from kernel.reading import Point
from kernel.settings import Settings

Write = tuple[str, list[tuple[Any, ...]]]
Persist = Callable[[list[Write]], Awaitable[None]]
AlertEvent = tuple[dict[str, Any], str, int]
WritePoints = Callable[[list[Point]], Coroutine[Any, Any, None]]


class AlertsRunner:
    """Wires the manager to the commit, the clock and delivery."""

    def __init__(self, manager: AlertManager, deliverer: Deliverer, clock: Clock, metrics: Registry,
                 persist: Persist, write_points: WritePoints | None = None) -> None:
        self.manager = manager
        self.write_points = write_points
        self._writing: set[asyncio.Task[None]] = set()
        self.deliverer = deliverer
        self.clock = clock
        self.persist = persist
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._held: list[Notification] = []
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

    def _count(self, notifications: list[Notification]) -> None:
        seen = set()
        for n in notifications:
            if (n.alert_id, n.event) not in seen:
                seen.add((n.alert_id, n.event))
                # The level the notification says (a resolved alert is no longer open).
                self.m_events.inc(1, n.level, n.event.value)

    async def recover(self, script: Callable[[str], Awaitable[None]],
                      select: Callable[[str], Awaitable[list[tuple[Any, ...]]]]) -> tuple[int, int]:
        """Create the tables; load open alerts and undelivered notifications."""
        await script(SCHEMA)
        self.manager.restore([alert_from_row(r) for r in await select(SELECT_ACTIVE)],
                             [(a, r) for a, r in await select(SELECT_TOLD)])
        self.manager.restore_silences([Silence(*row) for row in await select(SELECT_SILENCES)])
        # 叫应: the calls of open alerts and their deadlines (alerts/answer.py).
        await script(answer.SCHEMA)
        if self.manager.answer is not None:
            self.manager.answer.restore(answer.call_from_row(r) for r in await select(answer.SELECT_OPEN_CALLS))
        self._roster_ids = {str(r[0]) for r in await select(answer.SELECT_ROSTER_ALERTS)}
        pending = [Pending(Notification.from_outbox(event_id, alert_id, recipient, event, payload, created),
                           channel=channel, attempts=attempts, next_ns=next_ns)
                   for event_id, alert_id, recipient, event, payload, channel, attempts, created, next_ns
                   in await select(SELECT_PENDING)]
        self.deliverer.restore(pending)
        return len(self.manager.open), len(pending)

    # ---- the rule engine's sink: same transaction as the rule state ------------------------------

    def prepare(self, transitions: list[Transition], now_ns: int) -> list[Write]:
        """Alerts, events and outbox rows for these transitions."""
        changes = self.manager.on_transitions(transitions, now_ns)
        self._held.extend(changes.notifications)
        self._held_events.extend(changes.events)
        return changes.writes

    def committed(self) -> None:
        """The batch is durable: deliver its notifications, and look at the deadlines again."""
        held, self._held = self._held, []
        events, self._held_events = self._held_events, []
        self._release(held, events)

    def _release(self, notifications: list[Notification], events: list[AlertEvent]) -> None:
        self.deliverer.enqueue(self.manager.committed(notifications))
        if events:
            for listener in self.event_listeners:
                listener(events)
        if self.write_points is not None and events:
            task = asyncio.create_task(self.write_points(alert_points(events)), name="alert-points")
            self._writing.add(task)
            task.add_done_callback(self._writing.discard)
        self._wake.set()

    async def apply(self, transitions: list[Transition]) -> None:
        """Transitions from outside a batch (the service's own findings): commit, then notify."""
        if not transitions:
            return
        async with self._lock:
            changes = self.manager.on_transitions(transitions, self.clock.now_ns())
            await self.persist(changes.writes)
            self._release(changes.notifications, changes.events)

    # ---- people ----------------------------------------------------------------------------------

    async def acknowledge(self, alert_id: str, actor: str, note: str | None, also: list[Write] | None = None, *,
                          via: str = "api") -> Alert:
        """Acknowledge (answering the actor's 叫应 calls, `via` saying how), commit with `also` (e.g. the
        audit log's row), notify."""
        async with self._lock:
            alert, changes = self.manager.acknowledge(alert_id, actor, note, self.clock.now_ns(), via=via)
            await self.persist(changes.writes + (also or []))
            self._release(changes.notifications, changes.events)
            return alert

    async def resolve(self, alert_id: str, actor: str, note: str | None, also: list[Write] | None = None) -> Alert:
        """Resolve, commit (with `also`), notify."""
        async with self._lock:
            alert, changes = self.manager.resolve(alert_id, actor, note, self.clock.now_ns())
            await self.persist(changes.writes + (also or []))
            self._release(changes.notifications, changes.events)
            return alert

    async def hand_over(self, alert_id: str, actor: str, to: str, note: str | None,
                        also: list[Write] | None = None) -> Alert:
        """Hand the alert over to another recipient, commit (with `also`), notify them."""
        async with self._lock:
            alert, changes = self.manager.hand_over(alert_id, actor, to, note, self.clock.now_ns())
            await self.persist(changes.writes + (also or []))
            self._release(changes.notifications, changes.events)
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

    async def check_roster(self, settings: Settings) -> int:
        """Report each community's stale duty roster (service.roster_stale); clear those verified since."""
        async with self._lock:
            now = self.clock.now_ns()
            today = datetime.fromtimestamp(now / 1e9, tz=UTC).date()
            transitions = answer.roster_transitions(settings, today, list(self.manager.open.values()),
                                                    self._roster_ids, now)
            if not transitions:
                return 0
            self._roster_ids |= {t.episode for t in transitions}
            changes = self.manager.on_transitions(transitions, now)
            await self.persist(changes.writes)
            self._release(changes.notifications, changes.events)
            return len(transitions)

    async def watch_roster(self, settings: Settings, every_s: float = 6 * 3600) -> None:
        """check_roster now and every `every_s`."""
        while True:
            await self.check_roster(settings)
            await asyncio.sleep(every_s)

    # ---- deadlines -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Escalations and reminders as they fall due."""
        while True:
            due, now = self.manager.next_deadline(), self.clock.now_ns()
            if due is None or due > now:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), None if due is None else (due - now) / 1e9)
                continue
            async with self._lock:
                changes = self.manager.on_tick(now)
                if changes.writes:
                    await self.persist(changes.writes)
                self._release(changes.notifications, changes.events)


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
