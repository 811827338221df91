"""The `rate` kind: a field rising by at least `rise` within a window of reading time, at a fixed
level or one relative to another rule's level for the same device."""

from __future__ import annotations

from bisect import insort
from operator import itemgetter
from typing import Any, Literal

from pydantic import Field, field_validator

from kernel.alerting import Level, Measure, Transition
from kernel.clock import NS
from kernel.durations import parse_duration
from kernel.reading import FieldValue
from rules.conditions import Check, compile_condition
from rules.kinds import register
from rules.machine import Context, Device, Episode, Hooks, Setting
from rules.model import Condition, Duration, Named, RuleBase, Spec


class RelativeLevel(Spec):
    """A level `steps` above another rule's current level for the same device, at least `at_least`."""

    above_rule: str
    steps: int = Field(default=1, ge=0, le=3)
    at_least: Level = Level.YELLOW


class RateRule(RuleBase):
    """A field rising by at least `rise` within `within` (in the readings' time)."""

    kind: Literal["rate"]
    field: str
    rise: float = Field(gt=0)
    within: Duration
    while_: Condition | None = Field(default=None, alias="while")
    level: Level | RelativeLevel
    hysteresis: float = Field(default=0.0, ge=0)

    @field_validator("within", mode="before")
    @classmethod
    def _within(cls, v: Any) -> float:
        return parse_duration(v)

    def measure(self) -> Measure | None:
        """The rising field, over the window."""
        return Measure(self.field, self.within)

    def relative_to(self) -> str | None:
        """The rule a relative level builds on."""
        return self.level.above_rule if isinstance(self.level, RelativeLevel) else None

    def references(self) -> Named:
        """The rule a relative level builds on."""
        return [] if not isinstance(self.level, RelativeLevel) else [(("level", "above_rule"), self.level.above_rule)]

    def fields(self) -> Named:
        """The field watched, and those the `while` condition reads."""
        return [(("field",), self.field), *(self.while_.fields(("while",)) if self.while_ is not None else [])]


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
        self.episode = Episode(spec.measure())

    def _add(self, t: int, fields: dict[str, FieldValue]) -> None:
        v = fields.get(self.field)
        if type(v) is float:
            samples = self.samples
            low = v if not samples or v < self.low else self.low
            if len(samples) >= 2 and samples[-1][1] == v == samples[-2][1] and t >= samples[-1][0]:
                # A run of one value: its first samples tell the window nothing its last two do not
                # (the lowest value, the newest, and whether two samples are in the window at any
                # horizon are the same), so the older of the two goes. A device repeating a value
                # keeps a window of a few samples, not one per reading.
                samples[-2] = samples[-1]
                samples[-1] = (t, v)
            else:
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
        v, samples = fields.get(self.field), self.samples
        if (len(samples) >= 2 and samples[-1][1] == v == samples[-2][1] and type(v) is float
                and t >= samples[-1][0] and samples[0][0] >= t - self.within and v - self.low < self.rise
                and self.episode.level is None):
            # The run of one value goes on, and no sample leaves the window: the rise stays what it
            # was, short of `rise` whatever the `while` says (_add and _target, without the calls).
            samples[-2] = samples[-1]
            samples[-1] = (t, v)
            return None
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
        return None if self.episode.level is None else self.episode.clear_deadline(dev, self.clear_for)

    def dump(self) -> Any:
        """For the state store."""
        return [self.episode.dump(), self.samples]

    def load(self, data: Any) -> None:
        """From the state store."""
        episode, samples = data
        self.episode.load(episode)
        self.samples = [(int(t), float(v)) for t, v in samples]
        self.low = min(map(itemgetter(1), self.samples), default=0.0)


def _machine(spec: RateRule, device_type: str, setting: Setting) -> RateMachine:
    return RateMachine(spec)


register(RateRule, _machine)
