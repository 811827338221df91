"""What every rule kind's machine is built on: the device it watches, the episode (the alert side),
the hooks the engine calls, and what a machine may ask of the engine.

Machines are pure, one per (rule, device) or (rule, building): readings and deadlines in,
transitions out. No I/O and no clock of their own: every call says what time it is. Each kind's
machine lives in its module of rules.kinds.

Times: `t` is in the readings' own time (the device's `ts`); a device's readings fix the offset
between its time and the service clock, so a deadline in reading time can be met on the service
clock when the device goes quiet.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from kernel.alerting import Level, Measure, Transition, TransitionKind
from kernel.reading import FieldValue

# A reading time no reading reaches (int64's largest): a machine asleep wakes only for its fields.
NEVER = 2**63 - 1


class Context(Protocol):
    """What a machine may ask of the engine about other rules."""

    def level_of(self, rule: str, community: str, device_id: str) -> Level | None: ...

    def firing(self, rules: list[str], community: str, building: str | None, exclude: str) -> bool: ...


@dataclass(slots=True)
class Device:
    """The device a machine watches: its place, latest values and clock offset."""

    community: str
    device_type: str
    device_id: str
    building: str
    grid: str
    values: dict[str, FieldValue]
    values_ts: int = 0  # reading time of the newest reading applied
    last_received: int = 0  # service time it arrived
    stale_ns: int = 0  # how long a latest value stands
    last_heard: int = 0  # service time the last reading arrived, a late one too (device.offline's silence)
    early: int = 0  # how far ahead of what the clock offset needs its deadline entry is (rules.engine)

    def offset(self) -> int:
        """Service time minus reading time, as the newest reading showed; 0 before any reading."""
        return self.last_received - self.values_ts if self.values_ts else 0

    def reading_time(self, now: int) -> int:
        """The service time `now` in this device's reading time."""
        return now - self.offset()

    def service_time(self, t: int) -> int:
        """A reading time of this device on the service clock."""
        return t + self.offset()

    def fresh(self, now: int) -> bool:
        """Whether the latest values still stand at service time now."""
        return now < self.last_received + self.stale_ns

    def stale_at(self) -> int:
        """Reading time the latest values stop standing."""
        return self.values_ts + self.stale_ns


def episode_id(rule: str, community: str, device_id: str, started_ns: int) -> str:
    """A stable id for one episode of one rule at one place."""
    return hashlib.sha1(f"{rule}|{community}|{device_id}|{started_ns}".encode()).hexdigest()[:20]


class Episode:
    """The alert side of a machine: current level, and the clear timer (one episode is one alert)."""

    __slots__ = ("clear_since", "id", "level", "measure", "started")

    def __init__(self, measure: Measure | None = None) -> None:
        self.measure = measure
        self.level: Level | None = None
        self.id: str | None = None
        self.started = 0
        self.clear_since: int | None = None

    def update(self, rule: str, dev: Device, target: Level | None, t: int, clear_for: int,
               value: float | None, reached: int | None = None) -> Transition | None:
        """Move towards target at reading time t: up at once (dated `reached`, when the level was
        reached, if earlier), down once the lower target held for clear_for."""
        cur = self.level
        if target is not None and (cur is None or target.rank > cur.rank):
            at = t if reached is None else reached
            self.clear_since = None
            if cur is None:
                self.started, self.id = at, episode_id(rule, dev.community, dev.device_id, at)
            self.level = target
            return self._transition(TransitionKind.FIRE if cur is None else TransitionKind.RAISE, rule, dev,
                                    cur, at, value)
        if cur is None:
            return None
        if target is not None and target.rank == cur.rank:
            self.clear_since = None
            return None
        if self.clear_since is None:
            self.clear_since = t
        if t - self.clear_since < clear_for:
            return None
        at = self.clear_since + clear_for
        self.clear_since = None
        self.level = target
        kind = TransitionKind.CLEAR if target is None else TransitionKind.LOWER
        tr = self._transition(kind, rule, dev, cur, at, value)
        if target is None:
            self.id = None
        return tr

    def clear_due(self, clear_for: int) -> int | None:
        """Reading time the pending clear completes, if one is pending."""
        return None if self.clear_since is None or self.level is None else self.clear_since + clear_for

    def expire_clear(self, dev: Device, now: int, clear_for: int) -> None:
        """A device gone quiet before its pending clear completed: the alert stays (the condition
        was not seen false for the whole clear time); the next reading starts the clear afresh."""
        due = self.clear_due(clear_for)
        if due is not None and not dev.fresh(now) and due > dev.stale_at():
            self.clear_since = None

    def clear_deadline(self, dev: Device, clear_for: int) -> int | None:
        """Service time the pending clear completes or expires."""
        due = self.clear_due(clear_for)
        return None if due is None else min(dev.service_time(due), dev.last_received + dev.stale_ns)

    def _transition(self, kind: TransitionKind, rule: str, dev: Device, previous: Level | None, at: int,
                    value: float | None) -> Transition:
        assert self.id is not None
        return Transition(kind, rule, self.id, self.level, previous, dev.community, dev.building, dev.grid,
                          dev.device_id, dev.device_type, value, at, self.started, self.measure)

    def dump(self) -> list[Any]:
        """For the state store."""
        return [self.level.value if self.level else None, self.id, self.started, self.clear_since]

    def load(self, data: list[Any]) -> None:
        """From the state store."""
        level, self.id, self.started, self.clear_since = data
        self.level = Level(level) if level else None


class Machine(Protocol):
    """One rule watching one device (or one group); the engine calls every hook on every machine,
    except on_reading on a machine that is `asleep` for a reading that changes none of the values
    in its `wakes` (see Hooks)."""

    rule: str
    episode: Episode
    asleep: bool
    wakes: frozenset[str]
    timed_asleep: bool
    wake_at: int

    def on_reading(self, dev: Device, fields: dict[str, FieldValue], t: int, ctx: Context) -> Transition | None: ...

    def on_late(self, dev: Device, fields: dict[str, FieldValue], t: int) -> Transition | None: ...

    def on_status(self, dev: Device, online: bool, now: int) -> Transition | None: ...

    def on_source(self, group: Device, tr: Transition, received: int) -> Transition | None: ...

    def reevaluate(self, dev: Device, now: int, ctx: Context) -> Transition | None: ...

    def on_deadline(self, dev: Device, now: int, ctx: Context) -> Transition | None: ...

    def next_deadline(self, dev: Device) -> int | None: ...

    def dump(self) -> Any: ...

    def load(self, data: Any) -> None: ...


class Hooks:
    """The optional hooks of a machine, doing nothing: a kind overrides the ones it reacts to.

    `asleep` is a promise the machine makes about the next reading: while it holds, a reading that
    changes none of the values named in `wakes`, and whose reading time is before `wake_at`, would
    leave the machine as it is and return None, and its next_deadline is None or can only move
    later (the device's silence, the values going stale) but for the device's clock offset. The
    engine then does not call on_reading (most readings repeat most values: a charger reports
    `charging: true` every 30 s for hours). A kind that sets it resets it in every hook that
    changes its state. A machine asleep has no deadline unless it says `timed_asleep`
    (device.offline: the silence that would make the device offline; a state rule whose `for` is
    running: its end, which is also its `wake_at`).
    """

    __slots__ = ()

    asleep: bool = False
    wakes: frozenset[str] = frozenset()
    timed_asleep: bool = False
    wake_at: int = NEVER

    def on_reading(self, dev: Device, fields: dict[str, FieldValue], t: int, ctx: Context) -> Transition | None:
        """A reading in time order."""
        return None

    def on_late(self, dev: Device, fields: dict[str, FieldValue], t: int) -> Transition | None:
        """A reading older than the device's newest."""
        return None

    def on_status(self, dev: Device, online: bool, now: int) -> Transition | None:
        """The device's retained `online` / `offline`."""
        return None

    def on_source(self, group: Device, tr: Transition, received: int) -> Transition | None:
        """A transition of another rule this machine follows."""
        return None

    def reevaluate(self, dev: Device, now: int, ctx: Context) -> Transition | None:
        """A rule this machine's level depends on changed."""
        return None

    def on_deadline(self, dev: Device, now: int, ctx: Context) -> Transition | None:
        """Service time reached the machine's deadline."""
        return None

    def next_deadline(self, dev: Device) -> int | None:
        """Service time of the machine's next deadline, if any."""
        return None


S = TypeVar("S")
T = TypeVar("T")


class Setting(Protocol):
    """What a machine factory may ask of the engine that builds it."""

    def interval_s(self, device_type: str) -> float: ...

    def shared(self, spec: S, make: Callable[[S], T]) -> T: ...


# A kind's machine factory: (spec, device_type, setting) -> the machine for one device (or group).
MachineFactory = Callable[[Any, str, Setting], "Machine"]
