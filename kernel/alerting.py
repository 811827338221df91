"""Alert levels and rule transitions (docs/alerts.md): what the rule engine hands to alerts."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Level(StrEnum):
    """The national four-colour warning scale, least to most serious."""

    BLUE = "blue"  # IV 一般
    YELLOW = "yellow"  # III 较大
    ORANGE = "orange"  # II 重大
    RED = "red"  # I 特别重大

    @property
    def rank(self) -> int:
        """0 for blue up to 3 for red."""
        return _RANK[self]

    def above(self, steps: int = 1) -> Level:
        """The level `steps` higher, capped at red."""
        return LEVELS[min(len(LEVELS) - 1, self.rank + steps)]


LEVELS: tuple[Level, ...] = (Level.BLUE, Level.YELLOW, Level.ORANGE, Level.RED)
_RANK = {level: i for i, level in enumerate(LEVELS)}


@dataclass(frozen=True, slots=True)
class Measure:
    """What an alert's value is: a field's latest value, or (with `rise_within_s`) its rise within a window."""

    field: str
    rise_within_s: float | None = None


@dataclass(frozen=True, slots=True)
class Loss:
    """Readings lost before they reached the service, as a finding counts them (for the summary).

    `readings` is None where nobody can know how many (a broker that lost the service's session);
    `events` counts the gaps, or the sessions lost; the times are the first and last of them.
    """

    readings: int | None
    devices: int
    events: int
    first_ns: int
    last_ns: int


# The place of an alert about the service itself rather than a community (service.broker_session_lost):
# not an identifier, so it never names a real community.
SERVICE_WIDE = "-"


class TransitionKind(StrEnum):
    """What happened to one rule's condition at one place."""

    FIRE = "fire"  # a new episode starts
    RAISE = "raise"  # the episode's level goes up
    LOWER = "lower"  # the episode's level goes down
    CLEAR = "clear"  # the episode ends


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of one episode of one rule at one place; `episode` is stable for the whole episode."""

    kind: TransitionKind
    rule: str
    episode: str
    level: Level | None  # the level after the transition; None when cleared
    previous: Level | None
    community: str
    building: str
    grid: str
    device_id: str  # for a rule over a building, the building's key ("building:b01")
    device_type: str
    value: float | None
    at_ns: int  # when it happened, in the readings' time where a reading caused it
    started_ns: int  # when the episode started
    measure: Measure | None = None  # what `value` is, for the summary
    loss: Loss | None = None  # what a finding about lost readings counted, for the summary


class AlertStatus(StrEnum):
    """Where an alert is in its life."""

    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Event(StrEnum):
    """Why a notification is sent (docs/alerts.md)."""

    FIRED = "fired"
    ESCALATED = "escalated"
    LEVEL_RAISED = "level_raised"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    REMINDER = "reminder"
    CALL = "call"  # 叫应: one person called on one channel until they answer (alerts/call_until_answered.py)


# The tiers of docs/alerts.md (who is told), lowest first; an alert escalates one tier up.
ROLES: tuple[str, ...] = ("grid_worker", "community", "street_office", "bureau")


@dataclass(slots=True)
class Alert:
    """One episode of one rule at one place, as people see it."""

    id: str
    rule: str
    level: Level
    status: AlertStatus
    community: str
    building: str
    grid: str
    device_id: str
    device_type: str
    value: float | None
    started_ns: int
    updated_ns: int
    summary: str
    tier: int = 0  # the highest tier told so far (index into ROLES)
    acked_by: str | None = None
    acked_ns: int | None = None
    ack_note: str | None = None
    resolved_by: str | None = None
    resolved_ns: int | None = None
    resolve_note: str | None = None
    measure: Measure | None = None  # what `value` is (not stored: the summary already says it)
    loss: Loss | None = None  # what a finding about lost readings counted (not stored: the summary says it)
