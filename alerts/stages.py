"""The notification pipeline as stages (as Alertmanager's notify pipeline is a `MultiStage`).

An alert change becomes a `Pass`: the alert, the event, the people still to be told and why, and
the people withheld and why. Each stage is a small object with one method, `exec(p) -> p`, that
looks at who is still to be told and keeps, adds or withholds recipients, saying why; what a stage
records in the alert's audit trail (a silence, an inhibition) it says in `p.audit`.

    RouteStage ─► SilenceStage ─► InhibitStage ─► FollowUpStage ─► OutboxStage ─► CallStage
                                                                   (the manager, in the commit)

The first four decide; OutboxStage turns who is told into messages for delivery (kernel.outgoing);
CallStage (alerts/call_until_answered.py, 叫应) calls the duty roster of a serious alert until
somebody answers, adding its rows and its calls' messages to the pass. Delivery (notify/) puts the
messages in its outbox in the same transaction, and groups a storm's notifications after the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from alerts.route import Router
from kernel.alerting import ROLES, Alert, AlertStatus, Event
from kernel.ids import stable_id
from kernel.outgoing import Message, Subject
from kernel.writes import Row

# Notifications an inhibition or a silence may withhold; acknowledgements and resolutions always go.
WITHHOLDABLE = frozenset({Event.FIRED, Event.ESCALATED, Event.LEVEL_RAISED, Event.REMINDER})


# The notification's further keys for one recipient of an alert (the shelters and supplies on hand).
ExtraFor = Callable[[dict[str, Any], str], dict[str, Any]]

@dataclass(frozen=True, slots=True)
class Told:
    """A recipient to be told, and why."""

    recipient: str
    why: str


@dataclass(frozen=True, slots=True)
class Withheld:
    """A recipient not told, the stage that withheld them, and why."""

    recipient: str
    stage: str
    why: str


@dataclass(slots=True)
class Pass:
    """One alert change on its way through the stages."""

    alert: Alert
    event: Event
    now: int
    body: dict[str, Any]  # the `alert` object of docs/alerts.md, as it is after the change
    # What caused the change, in time: the reading's for a rule's transition, the deadline's for an
    # escalation or a reminder, now for a person's action. Messages' ids are made from it, so that
    # the same change made again (readings read again after a handover) makes the same ids.
    cause_ns: int = 0
    told: list[Told] = field(default_factory=list)
    withheld: list[Withheld] = field(default_factory=list)
    # (event, actor, note) rows for the alert's audit trail, in order.
    audit: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    # (statement, row) of the stages' own tables (叫应's calls), in order, after the alert's own rows.
    rows: list[tuple[str, Row]] = field(default_factory=list)

    def add(self, statement: str, row: Row) -> None:
        """A row a stage writes in the change's transaction."""
        self.rows.append((statement, row))

    def withhold(self, stage: str, why: str, keep: Callable[[Told], bool] = lambda _t: False) -> list[Withheld]:
        """Withhold everyone still to be told that `keep` does not keep; the ones withheld."""
        out = [Withheld(t.recipient, stage, why) for t in self.told if not keep(t)]
        self.told = [t for t in self.told if keep(t)]
        self.withheld += out
        return out


class Stage(Protocol):
    """One step of the pipeline: who is still to be told, and why, after it."""

    name: str

    def exec(self, p: Pass) -> Pass: ...


class MultiStage:
    """Stages run in order; each sees what the one before left."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = list(stages)

    def exec(self, p: Pass) -> Pass:
        """Run every stage."""
        for stage in self.stages:
            p = stage.exec(p)
        return p


class RouteStage:
    """Everyone of the tiers the alert has reached who covers its place, and the route's own recipients."""

    name = "route"

    def __init__(self, router: Router) -> None:
        self.router = router

    def exec(self, p: Pass) -> Pass:
        """Who the routing tree tells of the alert at its tier."""
        route = self.router.route(p.alert)
        tier = min(p.alert.tier, route.max_tier)
        path = "/".join(route.path)
        for r in self.router.tier_recipients(p.alert, p.alert.tier):
            rank = ROLES.index(r.role) if r.role in ROLES else len(ROLES)
            if rank <= tier:
                why = f"{r.role}: tier {tier + 1} ({ROLES[tier]}) reached, route {path}"
            elif tier == 0 and r.role == "community":
                why = f"no grid worker for the place: its community from the first tier, route {path}"
            else:
                why = f"named by route {path}"
            p.told.append(Told(r.id, why))
        return p


@dataclass(slots=True)
class Silence:
    """Mute alerts of a place or rule for a time window, with a reason (maintenance, a fire drill)."""

    id: str
    community: str | None
    building: str | None
    device_id: str | None
    rule: str | None
    starts_ns: int
    ends_ns: int
    reason: str
    created_by: str
    created_ns: int

    def mutes(self, alert: Alert, now: int) -> bool:
        """Whether it is in force and every matcher it has matches the alert."""
        return (self.starts_ns <= now < self.ends_ns
                and all(m is None or m == v for m, v in ((self.community, alert.community),
                                                         (self.building, alert.building),
                                                         (self.device_id, alert.device_id), (self.rule, alert.rule))))


class SilenceStage:
    """A silence in force for the alert withholds everyone (acknowledgements and resolutions go on)."""

    name = "silence"

    def __init__(self, silences: Mapping[str, Silence]) -> None:
        self.silences = silences

    def exec(self, p: Pass) -> Pass:
        """Withhold all, when a silence mutes the alert."""
        if p.event not in WITHHOLDABLE:
            return p
        silence = next((x for x in self.silences.values() if x.mutes(p.alert, p.now)), None)
        if silence is not None:
            note = f"silence {silence.id}: {silence.reason}"
            p.withhold(self.name, note)
            p.audit.append(("silenced", silence.created_by, note))
        return p


@dataclass(frozen=True, slots=True)
class Inhibition:
    """While a `source` alert fires, `target` alerts with the same `equal` places say nothing to
    the recipients the source alert already tells (Alertmanager's inhibit rules)."""

    source: tuple[str, ...]
    target: tuple[str, ...]
    equal: tuple[str, ...]


class InhibitStage:
    """An open source alert of the same place withholds the target alert from those it tells."""

    name = "inhibit"

    def __init__(self, inhibitions: Iterable[Inhibition], open_alerts: Mapping[str, Alert], router: Router) -> None:
        self.inhibitions = tuple(inhibitions)
        self.open = open_alerts
        self.router = router

    def inhibitor(self, alert: Alert) -> Alert | None:
        """The open alert that inhibits this one, if any."""
        for inh in self.inhibitions:
            if alert.rule not in inh.target:
                continue
            for other in self.open.values():
                if other.rule in inh.source and other.status is not AlertStatus.RESOLVED and all(
                        getattr(other, k) == getattr(alert, k) for k in inh.equal):
                    return other
        return None

    def exec(self, p: Pass) -> Pass:
        """Withhold from the source alert's recipients."""
        if p.event not in WITHHOLDABLE or not p.told:
            return p
        source = self.inhibitor(p.alert)
        if source is None:
            return p
        theirs = {r.id for r in self.router.tier_recipients(source, source.tier)}
        why = f"by alert {source.id} ({source.rule})"
        withheld = p.withhold(self.name, why, keep=lambda t: t.recipient not in theirs)
        if withheld:
            p.audit.append(("inhibited", None, f"{why}; withheld from {', '.join(w.recipient for w in withheld)}"))
        return p


class FollowUpStage:
    """What follows an alert (its acknowledgement, its resolution) goes to those told of it alone;
    the others are remembered as told."""

    name = "follow_up"

    def __init__(self, told: dict[str, set[str]]) -> None:
        self.told = told

    def exec(self, p: Pass) -> Pass:
        """Remember who is told, or keep to them."""
        if p.event in WITHHOLDABLE:
            if p.told:
                self.told.setdefault(p.alert.id, set()).update(t.recipient for t in p.told)
            return p
        before = self.told.get(p.alert.id, set())
        p.withhold(self.name, "was not told of the alert", keep=lambda t: t.recipient in before)
        return p


class OutboxStage:
    """One message per recipient told, for delivery's outbox."""

    name = "outbox"

    def __init__(self, link_for: Callable[[], Callable[[str, str], str | None] | None],
                 extra_for: Callable[[], ExtraFor | None] = lambda: None) -> None:
        # The manager's `link_for` and `extra_for` are set after it is built; read them at each pass.
        self.link_for = link_for
        self.extra_for = extra_for

    def exec(self, p: Pass) -> Pass:
        """The messages of who is told."""
        link_for, extra_for = self.link_for(), self.extra_for()
        for t in p.told:
            link = link_for(p.alert.id, t.recipient) if link_for is not None else None
            extra: dict[str, Any] = {} if link is None else {"link": link}
            if extra_for is not None:
                extra |= extra_for(p.body, t.recipient)
            p.messages.append(Message(stable_id("alert", p.alert.id, p.event.value, p.cause_ns, t.recipient),
                                      Subject.ALERT, p.alert.id, t.recipient, p.event, p.body, p.now, extra))
        return p
