"""The notification pipeline as stages (as Alertmanager's notify pipeline is a `MultiStage`).

An alert change becomes a `Pass`: the alert, the event, the people still to be told and why, and
the people withheld and why. Each stage is a small object with one method, `exec(p) -> p`, that
looks at who is still to be told and keeps, adds or withholds recipients, saying why; what a stage
records in the alert's audit trail (a silence, an inhibition) it says in `p.audit`.

    RouteStage ─► SilenceStage ─► InhibitStage ─► FollowUpStage ─► OutboxStage      (manager, in the commit)
                                                                  GroupStage       (delivery, after the commit)

The first four decide; OutboxStage turns who is told into notifications (serialised once, for the
outbox row). A storm's grouping needs time to pass (its members wait `group_wait_s`), so it runs
in delivery, on notifications already committed: GroupStage says which of them join a storm.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from alerts.notification import Notification
from alerts.route import Router
from kernel.alerting import ROLES, Alert, AlertStatus, Event

# Notifications an inhibition or a silence may withhold; acknowledgements and resolutions always go.
WITHHOLDABLE = frozenset({Event.FIRED, Event.ESCALATED, Event.LEVEL_RAISED, Event.REMINDER})
StormKey = tuple[str, str, str]


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
    told: list[Told] = field(default_factory=list)
    withheld: list[Withheld] = field(default_factory=list)
    # (event, actor, note) rows for the alert's audit trail, in order.
    audit: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)

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
    """One notification per recipient told, serialised once for its outbox row."""

    name = "outbox"

    def __init__(self, link_for: Callable[[], Callable[[str, str], str | None] | None]) -> None:
        # The manager's `link_for` is set after it is built; read it at each pass.
        self.link_for = link_for

    def exec(self, p: Pass) -> Pass:
        """The notifications of who is told."""
        link_for = self.link_for()
        for t in p.told:
            link = link_for(p.alert.id, t.recipient) if link_for is not None else None
            p.notifications.append(Notification(uuid.uuid4().hex, p.alert.id, t.recipient, p.event, p.body, p.now,
                                                link))
        return p


class GroupStage:
    """A storm: more than `threshold` new alerts of one rule in one community for one recipient
    within `window_ns`. Notifications of a storm are grouped in delivery, one message for many."""

    name = "group"

    def __init__(self, threshold: int, window_ns: int) -> None:
        self.threshold, self.window_ns = threshold, window_ns
        self._recent: dict[StormKey, deque[int]] = {}

    def exec(self, notifications: Iterable[Notification], now: int) -> list[tuple[Notification, StormKey | None]]:
        """Each notification with the storm it belongs to (None: it goes alone)."""
        return [(n, self._storm(n, now)) for n in notifications]

    def _storm(self, n: Notification, now: int) -> StormKey | None:
        if n.event is not Event.FIRED or self.threshold <= 0:
            return None
        key = (n.recipient, n.rule, n.community)
        recent = self._recent.setdefault(key, deque())
        while recent and recent[0] <= now - self.window_ns:
            recent.popleft()
        recent.append(now)
        if len(self._recent) > 10_000:  # forget storms that are over
            self._recent = {k: v for k, v in self._recent.items() if v and v[-1] > now - self.window_ns}
        return key if len(recent) > self.threshold else None
