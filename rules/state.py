"""Pure state machines, one per (rule, device) or (rule, building): readings and deadlines in,
transitions out. No I/O and no clock of their own: every call says what time it is.

Times: `t` is in the readings' own time (the device's `ts`); a device's readings fix the offset
between its time and the service clock, so a deadline in reading time can be met on the service
clock when the device goes quiet.
"""

from __future__ import annotations

import hashlib
from bisect import insort
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Protocol

from kernel.alerting import Level, Measure, Transition, TransitionKind
from kernel.reading import FieldValue
from rules.conditions import Check, compile_condition, fields_of
from rules.spec import CorrelationRule, OfflineRule, RateRule, RelativeLevel, StateRule, WhileFiring

NS = 1_000_000_000


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
    """One rule watching one device (or one group); the engine calls every hook on every machine."""

    rule: str
    episode: Episode

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
    """The optional hooks of a machine, doing nothing: a kind overrides the ones it reacts to."""

    __slots__ = ()

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


# (level, strict check, relaxed check, for in ns, while_firing)
CompiledLevel = tuple[Level, Check, Check, int, "WhileFiring | None"]


def compile_levels(spec: StateRule) -> list[CompiledLevel]:
    """A state rule's levels as checks; shared by every machine of the same spec."""
    return [(lv.level, compile_condition(lv.when), compile_condition(lv.when, spec.hysteresis),
             int(lv.for_ * NS), lv.while_firing) for lv in spec.levels]


class StateMachine(Hooks):
    """Levels from conditions on the latest values, each with an optional `for` and `while_firing`."""

    __slots__ = ("clear_for", "episode", "levels", "reads", "rule", "settled", "since", "value_field")

    def __init__(self, spec: StateRule, levels: list[CompiledLevel] | None = None) -> None:
        self.rule = spec.id
        self.clear_for = int(spec.clear_for * NS)
        self.levels = levels if levels is not None else compile_levels(spec)
        first = spec.levels[0].when
        self.value_field = getattr(first, "field", None)
        self.since: list[int | None] = [None] * len(self.levels)
        self.episode = Episode(Measure(self.value_field) if self.value_field else None)
        # The fields the levels read; None when a level also depends on other rules (while_firing).
        self.reads: frozenset[str] | None = (
            None if any(lv.while_firing is not None for lv in spec.levels)
            else frozenset().union(*(fields_of(lv.when) for lv in spec.levels)))
        # True while the last look at the values found no level holding and nothing happened since
        # (see on_reading): a reading that leaves every field it reads as it was changes nothing.
        self.settled = False

    def _target(self, dev: Device, t: int, ctx: Context, *, observe: bool) -> tuple[Level | None, int]:
        """The level the values call for at reading time t, and when it was reached."""
        cur = self.episode.level
        target, reached = None, t
        for k, (level, strict, relaxed, for_ns, while_firing) in enumerate(self.levels):
            if observe:
                check = relaxed if cur is not None and level.rank <= cur.rank else strict
                holds = check(dev.values) is True
                if holds and while_firing is not None:
                    holds = ctx.firing(while_firing.rules, dev.community,
                                       dev.building if while_firing.within == "building" else None, dev.device_id)
                if holds:
                    if self.since[k] is None:
                        self.since[k] = t
                else:
                    self.since[k] = None
            since = self.since[k]
            if since is not None and t - since >= for_ns:
                target, reached = level, since + for_ns
        return target, reached

    def _value(self, dev: Device) -> float | None:
        v = dev.values.get(self.value_field) if self.value_field else None
        return float(v) if type(v) is float or type(v) is bool else None

    def on_reading(self, dev: Device, fields: dict[str, FieldValue], t: int, ctx: Context) -> Transition | None:
        """Evaluate the latest values at the reading's time."""
        if self.settled and self.episode.level is None and self.reads is not None and self.reads.isdisjoint(fields):
            # Quiet, and the values it reads are the ones it last found holding nothing: the same
            # checks would find the same (e.g. device.battery for a reading without battery_pct).
            return None
        target, reached = self._target(dev, t, ctx, observe=True)
        self.settled = self.since.count(None) == len(self.since)
        if target is None and self.episode.level is None:
            return None  # the usual quiet reading: nothing to fire or clear
        return self.episode.update(self.rule, dev, target, t, self.clear_for, self._value(dev), reached)

    def reevaluate(self, dev: Device, now: int, ctx: Context) -> Transition | None:
        """Evaluate again because another rule changed (e.g. a smoke alert in the community).
        Values gone stale start nothing and end nothing: the device is quiet (device.offline)."""
        if not dev.fresh(now):
            return None
        t = max(dev.reading_time(now), dev.values_ts)
        target, reached = self._target(dev, t, ctx, observe=True)
        self.settled = False  # called because another rule changed: the next reading looks again
        return self.episode.update(self.rule, dev, target, t, self.clear_for, self._value(dev), reached)

    def on_late(self, dev: Device, fields: dict[str, FieldValue], t: int) -> Transition | None:
        """An older reading says nothing about the present."""
        return None

    def on_deadline(self, dev: Device, now: int, ctx: Context) -> Transition | None:
        """A `for` completing or a clear completing on the service clock; pending `for`s expire when stale."""
        t = dev.reading_time(now)
        if not dev.fresh(now):
            t = min(t, dev.stale_at())
            self.episode.expire_clear(dev, now, self.clear_for)
            cur = self.episode.level
            for k, (level, *_rest) in enumerate(self.levels):
                since, for_ns = self.since[k], self.levels[k][3]
                if since is not None and (cur is None or level.rank > cur.rank) and since + for_ns > t:
                    self.since[k] = None  # the device went quiet before the duration completed
        target, reached = self._target(dev, t, ctx, observe=False)
        cur = self.episode.level
        if target is not None and (cur is None or target.rank > cur.rank):
            return self.episode.update(self.rule, dev, target, t, self.clear_for, self._value(dev), reached)
        due = self.episode.clear_due(self.clear_for)
        if due is not None and t >= due:
            return self.episode.update(self.rule, dev, target, due, self.clear_for, self._value(dev))
        return None

    def next_deadline(self, dev: Device) -> int | None:
        """Service time of the next thing that can happen without a reading."""
        cur = self.episode.level
        if cur is None and self.since.count(None) == len(self.since):
            return None  # no duration pending, no episode to clear
        times = []
        pending = False
        for k, (level, _s, _r, for_ns, _w) in enumerate(self.levels):
            since = self.since[k]
            if since is not None and for_ns and (cur is None or level.rank > cur.rank):
                times.append(dev.service_time(since + for_ns))
                pending = True
        clear = self.episode.clear_deadline(dev, self.clear_for)
        if clear is not None:
            times.append(clear)
        if pending:
            times.append(dev.last_received + dev.stale_ns)
        return min(times) if times else None

    def dump(self) -> Any:
        """For the state store."""
        return [self.episode.dump(), self.since]

    def load(self, data: Any) -> None:
        """From the state store."""
        episode, since = data
        self.episode.load(episode)
        self.settled = False
        if len(since) == len(self.since):
            self.since = since


# A device reporting many times a second must not make the window (memory, and a scan per reading)
# grow with its rate: past this many samples, pairs merge (see _thin).
MAX_SAMPLES = 32


def _thin(samples: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """Halve a window: each pair of older samples becomes one, at the later time with the lower value.

    The newest sample stays exact. Keeping the lower value at the later time can only make a rise
    look as large or larger for a little longer: a dense device is judged conservatively, a sparse
    one (the usual 30 s or 60 s) exactly.
    """
    older, newest = samples[:-1], samples[-1]
    merged = [(older[i + 1][0], min(older[i][1], older[i + 1][1])) for i in range(0, len(older) - 1, 2)]
    if len(older) % 2:
        merged.append(older[-1])
    merged.append(newest)
    return merged


class RateMachine(Hooks):
    """A field rising by at least `rise` within a window of reading time."""

    __slots__ = ("clear_for", "episode", "field", "hysteresis", "level", "low", "rise", "rule", "samples", "while_",
                 "within")

    def __init__(self, spec: RateRule) -> None:
        self.rule = spec.id
        self.field = spec.field
        self.rise = spec.rise
        self.hysteresis = spec.hysteresis
        self.within = int(spec.within * NS)
        self.while_: Check | None = compile_condition(spec.while_) if spec.while_ is not None else None
        self.level: Level | RelativeLevel = spec.level
        self.clear_for = int(spec.clear_for * NS)
        self.samples: list[tuple[int, float]] = []
        self.low = 0.0  # the lowest value in samples (thinning keeps it; dropping old samples may not)
        self.episode = Episode(Measure(spec.field, spec.within))

    def _add(self, t: int, fields: dict[str, FieldValue]) -> None:
        v = fields.get(self.field)
        if type(v) is float:
            samples = self.samples
            low = v if not samples or v < self.low else self.low
            insort(samples, (t, v))
            horizon = samples[-1][0] - self.within
            if samples[0][0] < horizon:
                samples = self.samples = [s for s in samples if s[0] >= horizon]
                low = min(map(itemgetter(1), samples))
            if len(samples) > MAX_SAMPLES:
                self.samples = _thin(samples)
            self.low = low

    def _target(self, dev: Device, ctx: Context) -> tuple[Level | None, float | None]:
        if len(self.samples) < 2:
            return None, None
        newest = self.samples[-1][1]
        rise = newest - self.low
        need = self.rise - (self.hysteresis if self.episode.level is not None else 0.0)
        if rise < need or (self.while_ is not None and self.while_(dev.values) is not True):
            return None, rise
        if isinstance(self.level, Level):
            return self.level, rise
        base = ctx.level_of(self.level.above_rule, dev.community, dev.device_id)
        level = base.above(self.level.steps) if base is not None else self.level.at_least
        return (level if level.rank >= self.level.at_least.rank else self.level.at_least), rise

    def on_reading(self, dev: Device, fields: dict[str, FieldValue], t: int, ctx: Context) -> Transition | None:
        """Add the sample and compare the rise over the window."""
        self._add(t, fields)
        target, rise = self._target(dev, ctx)
        if target is None and self.episode.level is None:
            return None
        return self.episode.update(self.rule, dev, target, t, self.clear_for, rise)

    def reevaluate(self, dev: Device, now: int, ctx: Context) -> Transition | None:
        """The related rule's level changed: the relative level may too."""
        if self.episode.level is None:
            return None
        target, rise = self._target(dev, ctx)
        t = max(dev.values_ts, min(dev.reading_time(now), dev.stale_at()))
        return self.episode.update(self.rule, dev, target, t, self.clear_for, rise)

    def on_late(self, dev: Device, fields: dict[str, FieldValue], t: int) -> Transition | None:
        """A late sample still belongs in the window."""
        if self.samples and t >= self.samples[-1][0] - self.within:
            self._add(t, fields)
        return None

    def on_deadline(self, dev: Device, now: int, ctx: Context) -> Transition | None:
        """A pending clear completes on the service clock (or expires when the device went quiet first)."""
        self.episode.expire_clear(dev, now, self.clear_for)
        due = self.episode.clear_due(self.clear_for)
        if due is not None and dev.reading_time(now) >= due:
            target, rise = self._target(dev, ctx)
            return self.episode.update(self.rule, dev, target, due, self.clear_for, rise)
        return None

    def next_deadline(self, dev: Device) -> int | None:
        """Service time a pending clear completes or expires."""
        return self.episode.clear_deadline(dev, self.clear_for)

    def dump(self) -> Any:
        """For the state store."""
        return [self.episode.dump(), self.samples]

    def load(self, data: Any) -> None:
        """From the state store."""
        episode, samples = data
        self.episode.load(episode)
        self.samples = [(int(t), float(v)) for t, v in samples]
        self.low = min(map(itemgetter(1), self.samples), default=0.0)


class OfflineMachine(Hooks):
    """Silence beyond `after_intervals` expected intervals, or the device's own `offline`, on the service clock."""

    __slots__ = ("after_ns", "episode", "level", "rule", "said_offline")

    def __init__(self, spec: OfflineRule, device_type: str, interval_s: float) -> None:
        self.rule = spec.id
        self.level = spec.level_by_type.get(device_type, spec.level)  # type: ignore[call-overload]
        self.after_ns = int(spec.after_intervals * interval_s * NS)
        self.said_offline = False
        self.episode = Episode()

    def on_reading(self, dev: Device, fields: dict[str, FieldValue], t: int, ctx: Context) -> Transition | None:
        """Any reading means it is back (a late one too: it is back now, not at the reading's time)."""
        self.said_offline = False
        return self.episode.update(self.rule, dev, None, max(t, dev.reading_time(dev.last_heard)), 0, None)

    def on_status(self, dev: Device, online: bool, now: int) -> Transition | None:
        """The retained status topic: `offline` (the device's will) fires at once; `online` clears
        unless the silence holds too. A status is not a reading: the broker hands the retained
        `online` of a dead device to every new subscription, and it must not end a silence."""
        self.said_offline = not online
        silent = now >= dev.last_heard + self.after_ns
        target = self.level if self.said_offline or silent else None
        return self.episode.update(self.rule, dev, target, dev.reading_time(now), 0, None)

    def on_late(self, dev: Device, fields: dict[str, FieldValue], t: int) -> Transition | None:
        """A late reading says the device is back too."""
        self.said_offline = False
        return self.episode.update(self.rule, dev, None, max(t, dev.reading_time(dev.last_heard)), 0, None)

    def on_deadline(self, dev: Device, now: int, ctx: Context) -> Transition | None:
        """Fire once the silence (since the last reading or status) is long enough."""
        if self.episode.level is None and now >= dev.last_heard + self.after_ns:
            return self.episode.update(self.rule, dev, self.level, dev.reading_time(dev.last_heard + self.after_ns),
                                       0, None)
        return None

    def next_deadline(self, dev: Device) -> int | None:
        """When silence becomes offline."""
        return None if self.episode.level is not None else dev.last_heard + self.after_ns

    def dump(self) -> Any:
        """For the state store."""
        return [self.episode.dump(), self.said_offline]

    def load(self, data: Any) -> None:
        """From the state store."""
        episode, self.said_offline = data
        self.episode.load(episode)


class CorrelationMachine(Hooks):
    """`source` firing at `at_least` devices of one group whose episodes started within `within`."""

    __slots__ = ("active", "at_least", "clear_for", "episode", "level", "rule", "within")

    def __init__(self, spec: CorrelationRule) -> None:
        self.rule = spec.id
        self.at_least = spec.at_least
        self.within = int(spec.within * NS)
        self.level = spec.level
        self.clear_for = int(spec.clear_for * NS)
        self.active: dict[str, int] = {}
        self.episode = Episode()

    def on_source(self, group: Device, tr: Transition, received: int) -> Transition | None:
        """A transition of the source rule for a device of this group; `received` is tr.at_ns on the
        service clock (the group's clock follows its latest source transition)."""
        if tr.kind is TransitionKind.FIRE:
            self.active[tr.device_id] = tr.started_ns
        elif tr.kind is TransitionKind.CLEAR:
            self.active.pop(tr.device_id, None)
        else:
            return None
        if tr.at_ns >= group.values_ts:
            group.values_ts, group.last_received = tr.at_ns, received
        return self.episode.update(self.rule, group, self._target(), tr.at_ns, self.clear_for, float(len(self.active)))

    def _target(self) -> Level | None:
        starts = sorted(self.active.values())
        if self.episode.level is not None:
            return self.level if len(starts) >= self.at_least else None
        close = any(starts[i + self.at_least - 1] - starts[i] <= self.within
                    for i in range(len(starts) - self.at_least + 1))
        return self.level if close else None

    def on_deadline(self, dev: Device, now: int, ctx: Context) -> Transition | None:
        """A pending clear completes on the service clock."""
        due = self.episode.clear_due(self.clear_for)
        if due is not None and dev.reading_time(now) >= due:
            return self.episode.update(self.rule, dev, self._target(), due, self.clear_for, float(len(self.active)))
        return None

    def next_deadline(self, dev: Device) -> int | None:
        """Service time a pending clear completes."""
        due = self.episode.clear_due(self.clear_for)
        return None if due is None else dev.service_time(due)

    def dump(self) -> Any:
        """For the state store."""
        return [self.episode.dump(), self.active]

    def load(self, data: Any) -> None:
        """From the state store."""
        episode, self.active = data
        self.episode.load(episode)


class Setting(Protocol):
    """What a machine factory may ask of the engine that builds it."""

    def interval_s(self, device_type: str) -> float: ...

    def compiled(self, spec: StateRule) -> list[CompiledLevel]: ...


# The rule kinds' machines: kind -> factory(spec, device_type, setting). rules.spec.RULE_KINDS holds
# the same kinds' spec models; a new kind is one entry in each.
MachineFactory = Callable[[Any, str, Setting], Machine]
MACHINES: dict[str, MachineFactory] = {
    "state": lambda spec, device_type, setting: StateMachine(spec, setting.compiled(spec)),
    "rate": lambda spec, device_type, setting: RateMachine(spec),
    "offline": lambda spec, device_type, setting: OfflineMachine(spec, device_type, setting.interval_s(device_type)),
    "correlation": lambda spec, device_type, setting: CorrelationMachine(spec),
}
