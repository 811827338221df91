"""The alert lifecycle: transitions in; alerts, their audit trail and notifications out.

Synchronous and clock-free like the rule engine: every call says what time it is and returns the
writes to commit. Each change comes back as `Changes`: the writes, and the messages to deliver
(kernel.outgoing), which the caller posts to delivery's outbox in the same transaction as the
writes. Nothing is sent that a crash could forget, and nothing is forgotten.

    transition ─► lifecycle (one episode = one alert) ─► stages (alerts/stages.py) ─► messages
    ack / resolve (API) ─┘          deadlines: escalate one tier up when not acknowledged, remind

Who is told of a change is the pipeline's: route (tiers of docs/alerts.md) ─► silence ─► inhibit
─► follow-up (acknowledgements and resolutions to those told) ─► outbox ─► call (叫应); each
`Changes` says, in `decisions`, who was told and who was withheld, and why.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from alerts.call_until_answered import CallStage
from alerts.drills import DrillBook
from alerts.route import BASE_TIER, Router
from alerts.stages import (
    WITHHOLDABLE,
    FollowUpStage,
    Inhibition,
    InhibitStage,
    MultiStage,
    OutboxStage,
    Pass,
    RouteStage,
    Silence,
    SilenceStage,
    Told,
    Withheld,
)
from alerts.store import INSERT_EVENT, UPSERT_ALERT, UPSERT_SILENCE, alert_row
from alerts.summary import summarise
from kernel.alerting import Alert, AlertStatus, Event, Level, Transition, TransitionKind
from kernel.clock import NS, rfc3339
from kernel.deadlines import earliest
from kernel.errors import Reason, Refused
from kernel.outgoing import Message
from kernel.site import Site
from kernel.writes import Write

__all__ = ["WITHHOLDABLE", "AlertManager", "Changes", "Decision", "Inhibition", "Message", "Silence",
           "alert_payload"]


@dataclass(slots=True)
class Changes:
    """What one change writes, and the messages to post to delivery's outbox in the same commit."""

    writes: list[Write]
    messages: list[Message]
    # (alert object of docs/alerts.md, event, when): what happened, told to anybody or not.
    events: list[tuple[dict[str, Any], str, int]] = field(default_factory=list)
    # Who each alert change told and who it withheld, and why (alerts/stages.py).
    decisions: list[Decision] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Decision:
    """What the stages decided for one alert change: who is told and who is withheld, and why."""

    alert_id: str
    event: Event
    at: int
    told: tuple[Told, ...]
    withheld: tuple[Withheld, ...]


# A red smoke.multi for a building speaks for its detectors (the issue of the alert pipeline).
DEFAULT_INHIBITIONS = (Inhibition(("smoke.multi",), ("smoke.alarm", "smoke.obscuration"), ("community", "building")),)


class AlertManager:
    """Open alerts in memory, their deadlines, and what each change writes and sends."""

    def __init__(self, site: Site, *, locale: str = "zh-CN", reminders_s: dict[str, float] | None = None,
                 ack_timeout_s: dict[Level, float] | None = None,
                 inhibitions: tuple[Inhibition, ...] = DEFAULT_INHIBITIONS, router: Router | None = None,
                 calls: CallStage | None = None) -> None:
        self.site = site
        self.inhibitions = inhibitions
        self._source_rules = {r for i in inhibitions for r in i.source}
        self.silences: dict[str, Silence] = {}
        self.router = router or Router(site.settings, ack_timeout_s)
        # Drills (alerts/drills.py): alerts of a community with an open drill are drill alerts, capped below
        # the bureau unless the drill asked for it.
        self.drills = DrillBook()
        self.router.caps.append(self.drills.max_tier)
        self.locale = locale
        self.reminders_s = reminders_s or {}
        self.open: dict[str, Alert] = {}
        # Who has been told of each open alert: its acknowledgement and resolution go to them alone
        # (an alert muted by a silence, or inhibited for some, ends quietly for those not told).
        self.told: dict[str, set[str]] = {}
        self.next_escalation: dict[str, int | None] = {}
        self.next_reminder: dict[str, int | None] = {}
        self._heap: list[tuple[int, str]] = []
        self.listeners: list[Callable[[list[Message]], None]] = []
        # A link to the alert's page for one recipient, added to each notification as `link` when set.
        self.link_for: Callable[[str, str], str | None] | None = None
        # Further keys of a notification to one recipient (app: the shelters and supplies on hand).
        self.extra_for: Callable[[dict[str, Any], str], dict[str, Any]] | None = None
        self.outbox = OutboxStage(lambda: self.link_for, lambda: self.extra_for)
        # 叫应 (alerts/call_until_answered.py): calls the duty roster until somebody answers; without
        # one given, a stage that calls nobody.
        self.calls = calls or CallStage(site.settings, self.router, calling=False)
        # Who is told of a change, stage by stage (alerts/stages.py).
        self.pipeline = MultiStage([RouteStage(self.router), SilenceStage(self.silences),
                                    InhibitStage(inhibitions, self.open, self.router), FollowUpStage(self.told),
                                    self.outbox, self.calls])

    # ---- inputs ----------------------------------------------------------------------------------

    def on_transitions(self, transitions: Iterable[Transition], now: int) -> Changes:
        """Apply rule transitions."""
        writes = _Writes(self.drills)
        # Inhibiting alerts first: a detector's alarm raised in the same moment as its building's
        # alarm is then already inhibited.
        for tr in sorted(transitions, key=lambda t: t.rule not in self._source_rules):
            alert = self.open.get(tr.episode)
            if tr.kind is TransitionKind.FIRE or (alert is None and tr.kind is TransitionKind.RAISE):
                if alert is not None:
                    continue  # the same episode again (a replay after a restart): one episode is one alert
                # A raise of an alert a person resolved while its condition stayed: it opens again at the
                # new level, or nobody would hear of it.
                assert tr.level is not None
                alert = Alert(tr.episode, tr.rule, tr.level, AlertStatus.FIRING, tr.community, tr.building, tr.grid,
                              tr.device_id, tr.device_type, tr.value, tr.started_ns, now, "",
                              tier=BASE_TIER[tr.level], measure=tr.measure, loss=tr.loss)
                self.open[alert.id] = alert
                drill_row = self.drills.mark(alert)
                if drill_row is not None:
                    writes.add(*drill_row)
                self._deadlines(alert, now, escalate=True, remind=True)
                self._notify(alert, Event.FIRED if tr.kind is TransitionKind.FIRE else Event.LEVEL_RAISED, now,
                             writes, cause_ns=tr.at_ns)
            elif alert is None:
                continue  # a change (lower, clear) to an alert already resolved by a person
            elif tr.kind is TransitionKind.RAISE:
                assert tr.level is not None
                alert.level, alert.value, alert.measure = tr.level, tr.value, tr.measure or alert.measure
                alert.tier = max(alert.tier, BASE_TIER[tr.level])
                # A more serious level needs a fresh acknowledgement.
                alert.status, alert.acked_by, alert.acked_ns, alert.ack_note = AlertStatus.FIRING, None, None, None
                # Reminders go on, or start again if an acknowledgement had stopped them.
                self._deadlines(alert, now, escalate=True, remind=self.next_reminder.get(alert.id) is None)
                self._notify(alert, Event.LEVEL_RAISED, now, writes, cause_ns=tr.at_ns)
            elif tr.kind is TransitionKind.LOWER:
                assert tr.level is not None
                alert.level, alert.value, alert.updated_ns = tr.level, tr.value, now
                alert.measure = tr.measure or alert.measure
                alert.summary = self._summary(alert)
                writes.event(alert, "level_lowered", now, None, None)
                writes.alert(alert, self)
                writes.events.append((alert_payload(alert), "level_lowered", now))
            else:
                alert.value, alert.measure = tr.value, tr.measure or alert.measure
                alert.loss = tr.loss or alert.loss
                self._resolve(alert, "system", None, now, writes, cause_ns=tr.at_ns)
        return writes.changes()

    def acknowledge(self, alert_id: str, actor: str, note: str | None, now: int, *,
                    via: str = "api") -> tuple[Alert, Changes]:
        """Someone took the alert on: escalation and reminders stop."""
        alert = self.open.get(alert_id)
        if alert is None:
            raise Refused(Reason.CONFLICT, "the alert is resolved" if alert_id else "no such alert")
        writes = _Writes(self.drills)
        # 叫应: the acknowledgement answers the actor's calls, even after somebody else acknowledged.
        answered = self.calls.answer(alert, actor, via, note, now, writes)
        if alert.status is AlertStatus.ACKNOWLEDGED:
            if answered:
                return alert, writes.changes()
            raise Refused(Reason.CONFLICT, f"already acknowledged by {alert.acked_by}")
        alert.status, alert.acked_by, alert.acked_ns, alert.ack_note = AlertStatus.ACKNOWLEDGED, actor, now, note
        self.next_escalation[alert.id] = self.next_reminder[alert.id] = None
        self._notify(alert, Event.ACKNOWLEDGED, now, writes, actor=actor, note=note)
        return alert, writes.changes()

    def resolve(self, alert_id: str, actor: str, note: str | None, now: int) -> tuple[Alert, Changes]:
        """Someone closed the alert."""
        alert = self.open.get(alert_id)
        if alert is None:
            raise Refused(Reason.CONFLICT, "the alert is already resolved")
        writes = _Writes(self.drills)
        self._resolve(alert, actor, note, now, writes)
        return alert, writes.changes()

    def hand_over(self, alert_id: str, actor: str, to: str, note: str | None, now: int) -> tuple[Alert, Changes]:
        """Someone passed the alert on to another recipient, who is told of it (as a reminder)."""
        alert = self.open.get(alert_id)
        if alert is None:
            raise Refused(Reason.CONFLICT, "the alert is resolved")
        target = self.router.recipients.get(to)
        if target is None:
            raise Refused(Reason.INVALID, f"no recipient {to!r}")
        writes = _Writes(self.drills)
        alert.updated_ns = now
        writes.event(alert, "handed_over", now, actor, f"{to}: {note}" if note else to)
        writes.alert(alert, self)
        body = alert_payload(alert)
        writes.events.append((body, "handed_over", now))
        self.told.setdefault(alert.id, set()).add(to)
        p = Pass(alert, Event.REMINDER, now, body, now, told=[Told(to, f"handed over by {actor}")])
        writes.outbox(self.outbox.exec(p))
        return alert, writes.changes()

    def on_tick(self, now: int) -> Changes:
        """Escalations and reminders due at now."""
        writes = _Writes(self.drills)
        while self._heap and self._heap[0][0] <= now:
            _due, alert_id = heapq.heappop(self._heap)
            alert = self.open.get(alert_id)
            if alert is None:
                continue
            esc, rem = self.next_escalation.get(alert_id), self.next_reminder.get(alert_id)
            if esc is not None and esc <= now and alert.status is AlertStatus.FIRING:
                route = self.router.route(alert)
                alert.tier = min(alert.tier + 1, route.max_tier)
                self.next_escalation[alert_id] = now + int(route.ack_timeout_s[alert.level] * NS)
                heapq.heappush(self._heap, (self.next_escalation[alert_id] or now, alert_id))
                self._notify(alert, Event.ESCALATED, now, writes, cause_ns=esc)
            elif rem is not None and rem <= now and alert.status is AlertStatus.FIRING:
                self.next_reminder[alert_id] = now + int(self.reminders_s[alert.rule] * NS)
                heapq.heappush(self._heap, (self.next_reminder[alert_id] or now, alert_id))
                self._notify(alert, Event.REMINDER, now, writes, cause_ns=rem)
        self.calls.on_tick(self.open, alert_payload, now, writes)  # 叫应: calls unanswered by their deadline
        return writes.changes()

    def next_deadline(self) -> int | None:
        """Service time of the next escalation, reminder or call deadline."""
        while self._heap and self._heap[0][1] not in self.open:
            heapq.heappop(self._heap)
        return earliest(self._heap[0][0] if self._heap else None, self.calls.next_deadline())

    def committed(self, messages: list[Message]) -> None:
        """The writes of a change and its messages are durable: tell the listeners (metrics, the wall)."""
        for listener in self.listeners:
            listener(messages)

    def restore(self, alerts: list[tuple[Alert, int | None, int | None]],
                told: Iterable[tuple[str, str]] = ()) -> None:
        """Open alerts and their deadlines as the store kept them, and who was told of them."""
        for alert_id, recipient in told:
            self.told.setdefault(alert_id, set()).add(recipient)
        for alert, esc, rem in alerts:
            self.open[alert.id] = alert
            self.next_escalation[alert.id], self.next_reminder[alert.id] = esc, rem
            for due in (esc, rem):
                if due is not None:
                    heapq.heappush(self._heap, (due, alert.id))

    # ---- inside --------------------------------------------------------------------------------

    def _deadlines(self, alert: Alert, now: int, *, escalate: bool, remind: bool) -> None:
        if escalate:
            due = now + int(self.router.route(alert).ack_timeout_s[alert.level] * NS)
            self.next_escalation[alert.id] = due
            heapq.heappush(self._heap, (due, alert.id))
        every = self.reminders_s.get(alert.rule)
        if remind and every:
            due = now + int(every * NS)
            self.next_reminder[alert.id] = due
            heapq.heappush(self._heap, (due, alert.id))

    def _resolve(self, alert: Alert, actor: str, note: str | None, now: int, writes: _Writes, *,
                 cause_ns: int | None = None) -> None:
        alert.status, alert.resolved_by, alert.resolved_ns, alert.resolve_note = (AlertStatus.RESOLVED, actor, now,
                                                                                    note)
        self.next_escalation.pop(alert.id, None)  # before the row is written: a resolved alert has no deadlines
        self.next_reminder.pop(alert.id, None)
        self._notify(alert, Event.RESOLVED, now, writes, actor=actor, note=note,  # 叫应: calls still waiting end
                     cause_ns=cause_ns)
        self.open.pop(alert.id, None)
        self.told.pop(alert.id, None)

    def _notify(self, alert: Alert, event: Event, now: int, writes: _Writes, *, actor: str | None = None,
                note: str | None = None, cause_ns: int | None = None) -> None:
        """The change's rows and messages; `cause_ns` (Pass.cause_ns) is now for a person's action."""
        alert.updated_ns = now
        alert.summary = self._summary(alert)
        writes.event(alert, event.value, now, actor, note)
        writes.alert(alert, self)
        body = alert_payload(alert)
        writes.events.append((body, event.value, now))
        p = self.pipeline.exec(Pass(alert, event, now, body, now if cause_ns is None else cause_ns))
        for audit_event, audit_actor, audit_note in p.audit:
            writes.event(alert, audit_event, now, audit_actor, audit_note)
        writes.outbox(p)

    def _summary(self, alert: Alert) -> str:
        """The alert's summary in the site's words (a drill alert's begins with 【演练】)."""
        return self.drills.summary(alert.id, summarise(self.site, alert, self.locale), self.locale)

    # ---- silences ------------------------------------------------------------------------------

    def add_silence(self, silence: Silence) -> list[Write]:
        """A new silence; its row joins the audit trail."""
        self.silences[silence.id] = silence
        return [(UPSERT_SILENCE, [silence_row(silence)])]

    def expire_silence(self, silence_id: str, actor: str, now: int) -> tuple[Silence, list[Write]]:
        """End a silence now."""
        silence = self.silences.get(silence_id)
        if silence is None or silence.ends_ns <= now:
            raise Refused(Reason.NOT_FOUND, "no such silence in force")
        silence.ends_ns = now
        silence.reason = f"{silence.reason} (ended by {actor})"
        return silence, [(UPSERT_SILENCE, [silence_row(silence)])]

    def restore_silences(self, silences: list[Silence]) -> None:
        """Silences as the store kept them."""
        for x in silences:
            self.silences[x.id] = x


def alert_payload(a: Alert) -> dict[str, Any]:
    """The `alert` object of docs/alerts.md."""
    return {"id": a.id, "rule": a.rule, "level": a.level.value, "status": a.status.value, "community": a.community,
            "building": a.building, "grid": a.grid, "device_id": a.device_id, "device_type": a.device_type,
            "value": a.value, "started_at": rfc3339(a.started_ns), "updated_at": rfc3339(a.updated_ns),
            "summary": a.summary}


class _Writes:
    """Statements in the order they must run."""

    def __init__(self, drills: DrillBook | None = None) -> None:
        self.drills = drills
        self.list: list[Write] = []
        self.messages: list[Message] = []
        self.events: list[tuple[dict[str, Any], str, int]] = []
        self.decisions: list[Decision] = []

    def changes(self) -> Changes:
        """What was gathered; every notification of a drill alert (the alert's, its 叫应 calls') says `drill`."""
        drills = self.drills
        if drills is not None and drills.alerts:
            self.messages = [dataclasses.replace(m, extra=m.extra | {"drill": True})
                             if drills.drill_of(m.subject_id) is not None else m for m in self.messages]
        return Changes(self.list, self.messages, self.events, self.decisions)

    def outbox(self, p: Pass) -> None:
        """A pass's messages, its stages' rows, and what it decided."""
        for statement, row in p.rows:
            self.add(statement, row)
        self.messages += p.messages
        self.decisions.append(Decision(p.alert.id, p.event, p.now, tuple(p.told), tuple(p.withheld)))

    def add(self, statement: str, row: tuple[Any, ...]) -> None:
        if self.list and self.list[-1][0] == statement:
            self.list[-1][1].append(row)
        else:
            self.list.append((statement, [row]))

    def event(self, alert: Alert, event: str, at: int, actor: str | None, note: str | None) -> None:
        self.add(INSERT_EVENT, (alert.id, at, event, alert.level.value, actor, note))

    def alert(self, alert: Alert, m: AlertManager) -> None:
        self.add(UPSERT_ALERT, alert_row(alert, m.next_escalation.get(alert.id), m.next_reminder.get(alert.id)))


def silence_row(x: Silence) -> tuple[Any, ...]:
    """The row of a silence."""
    return (x.id, x.community, x.building, x.device_id, x.rule, x.starts_ns, x.ends_ns, x.reason, x.created_by,
            x.created_ns)
