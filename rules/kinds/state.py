"""The `state` kind: levels from conditions on a device's latest values, each with an optional `for`
(in reading time), hysteresis, and `while_firing` (another rule firing nearby)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from kernel.alerting import Level, Measure, Transition
from kernel.clock import NS
from kernel.durations import parse_duration
from kernel.reading import FieldValue
from rules.conditions import Check, compile_condition, fields_of
from rules.kinds import register
from rules.machine import NEVER, Context, Device, Episode, Hooks, Setting
from rules.model import Condition, Duration, Located, Named, RuleBase, Spec


class WhileFiring(Spec):
    """Holds while any of `rules` fires for another device in the same building or community."""

    rules: list[str] = Field(min_length=1)
    within: Literal["building", "community"] = "community"


class LevelSpec(Spec):
    """A level and what raises a place to it."""

    level: Level
    when: Condition
    for_: Duration = Field(default=0.0, alias="for")
    while_firing: WhileFiring | None = None

    @field_validator("for_", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)


class StateRule(RuleBase):
    """Levels from conditions on the latest readings, with `for` durations and hysteresis."""

    kind: Literal["state"] = "state"
    levels: list[LevelSpec] = Field(min_length=1)
    hysteresis: dict[str, float] = Field(default_factory=dict)

    def measure(self) -> Measure | None:
        """The field of the first level's condition, where it compares one."""
        field = getattr(self.levels[0].when, "field", None)
        return Measure(field) if isinstance(field, str) else None

    def while_rules(self) -> list[str]:
        """Rules named by the levels' `while_firing`."""
        return [ref for _where, ref in self.references()]

    def references(self) -> Named:
        """The rules named by the levels' `while_firing`."""
        return [(("levels", k, "while_firing", "rules", j), ref) for k, lv in enumerate(self.levels)
                if lv.while_firing for j, ref in enumerate(lv.while_firing.rules)]

    def fields(self) -> Named:
        """The fields the levels' conditions read, and those given a hysteresis."""
        read = [f for k, lv in enumerate(self.levels) for f in lv.when.fields(("levels", k, "when"))]
        return read + [(("hysteresis", name), name) for name in self.hysteresis]

    @model_validator(mode="after")
    def _ordered(self) -> StateRule:
        ranks = [(lv.level.rank, lv.for_) for lv in self.levels]
        if ranks != sorted(ranks):
            raise Located(("levels",), "levels must be listed from least to most serious")
        return self


# (level, strict check, relaxed check, for in ns, while_firing)
CompiledLevel = tuple[Level, Check, Check, int, "WhileFiring | None"]


def compile_levels(spec: StateRule) -> list[CompiledLevel]:
    """A state rule's levels as checks; shared by every machine of the same spec."""
    return [(lv.level, compile_condition(lv.when), compile_condition(lv.when, spec.hysteresis),
             int(lv.for_ * NS), lv.while_firing) for lv in spec.levels]


def compile_quiet(spec: StateRule) -> Check:
    """Whether any level's condition holds (True) on the values, as a level's strict check sees
    it: a machine with nothing pending and no episode stays so while this is False."""
    checks = tuple(compile_condition(lv.when) for lv in spec.levels)
    if len(checks) == 1:
        (only,) = checks
        return lambda values: only(values) is True
    if len(checks) == 2:  # (most rules have one or two levels: no generator per reading)
        first, second = checks
        return lambda values: first(values) is True or second(values) is True
    return lambda values: any(check(values) is True for check in checks)


class StateMachine(Hooks):
    """Levels from conditions on the latest values, each with an optional `for` and `while_firing`."""

    __slots__ = ("asleep", "clear_for", "episode", "levels", "quiet", "reads", "rule", "settled", "since",
                 "timed_asleep", "value_field", "wake_at", "wakes")

    def __init__(self, spec: StateRule, levels: list[CompiledLevel] | None = None,
                 quiet: Check | None = None) -> None:
        self.rule = spec.id
        self.clear_for = int(spec.clear_for * NS)
        self.levels = levels if levels is not None else compile_levels(spec)
        self.quiet = quiet if quiet is not None else compile_quiet(spec)
        measure = spec.measure()
        self.value_field = measure.field if measure is not None else None
        self.since: list[int | None] = [None] * len(self.levels)
        self.episode = Episode(measure)
        # The fields the levels read; None when a level also depends on other rules (while_firing).
        self.reads: frozenset[str] | None = (
            None if any(lv.while_firing is not None for lv in spec.levels)
            else frozenset().union(*(fields_of(lv.when) for lv in spec.levels)))
        # True while the last look at the values found no level holding and nothing happened since
        # (see on_reading): a reading that leaves every field it reads as it was changes nothing.
        self.settled = False
        # Asleep (machine.Hooks) while no episode is open and no level holds (only a change of a field
        # it reads wakes it), or while the `for` of levels holding runs: then the first of them to
        # complete wakes it too (wake_at, reading time), and it has that deadline (timed_asleep).
        self.asleep = self.timed_asleep = False
        self.wake_at = NEVER
        self.wakes = self.reads if self.reads is not None else frozenset()

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
        if self.settled and self.episode.level is None and self.reads is not None and (
                self.reads.isdisjoint(fields) or not self.quiet(dev.values)):
            # Quiet (nothing pending, no episode), and either the values it reads are the ones it
            # last found holding nothing (device.battery for a reading without battery_pct), or no
            # level's condition holds on them now: _target would only find every `since` unset
            # again. The usual reading ends here, without walking the levels.
            self.asleep, self.timed_asleep, self.wake_at = True, False, NEVER
            return None
        target, reached = self._target(dev, t, ctx, observe=True)
        self.settled = self.since.count(None) == len(self.since)
        if target is None and self.episode.level is None:
            # The usual quiet reading: nothing to fire or clear. Until a field it reads changes, the
            # next readings find the same levels holding, and none completes its `for` before the
            # first of them does.
            self.asleep = self.reads is not None
            self.timed_asleep = not self.settled
            self.wake_at = NEVER if self.settled else min(
                since + lv[3] for since, lv in zip(self.since, self.levels, strict=True) if since is not None)
            return None
        self.asleep = False
        return self.episode.update(self.rule, dev, target, t, self.clear_for, self._value(dev), reached)

    def reevaluate(self, dev: Device, now: int, ctx: Context) -> Transition | None:
        """Evaluate again because another rule changed (e.g. a smoke alert in the community).
        Values gone stale start nothing and end nothing: the device is quiet (device.offline)."""
        if not dev.fresh(now):
            return None
        t = max(dev.reading_time(now), dev.values_ts)
        target, reached = self._target(dev, t, ctx, observe=True)
        self.settled = self.asleep = False  # called because another rule changed: the next reading looks again
        return self.episode.update(self.rule, dev, target, t, self.clear_for, self._value(dev), reached)

    def on_late(self, dev: Device, fields: dict[str, FieldValue], t: int) -> Transition | None:
        """An older reading says nothing about the present."""
        return None

    def on_deadline(self, dev: Device, now: int, ctx: Context) -> Transition | None:
        """A `for` completing or a clear completing on the service clock; pending `for`s expire when stale."""
        self.asleep = False
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
        self.settled = self.asleep = False
        if len(since) == len(self.since):
            self.since = since



def _machine(spec: StateRule, device_type: str, setting: Setting) -> StateMachine:
    return StateMachine(spec, setting.shared(spec, compile_levels), setting.shared(spec, compile_quiet))


register(StateRule, _machine)
