"""The `correlation` kind: another rule (`source`) firing for at least `at_least` devices of one
building (or community) within `within`; its machine watches the group, not a device."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from kernel.alerting import Level, Transition, TransitionKind
from kernel.clock import NS
from kernel.durations import parse_duration
from rules.kinds import register
from rules.machine import Context, Device, Episode, Hooks, Setting
from rules.model import Duration, Named, RuleBase


class CorrelationRule(RuleBase):
    """`source` firing for at least `at_least` devices of one building (or community) within `within`."""

    kind: Literal["correlation"]
    source: str
    group_by: Literal["building", "community"] = "building"
    at_least: int = Field(default=2, ge=2)
    within: Duration
    level: Level

    @field_validator("within", mode="before")
    @classmethod
    def _within(cls, v: Any) -> float:
        return parse_duration(v)

    def per_device(self) -> bool:
        """A correlation watches a building or community, not a device."""
        return False

    def follows(self) -> str | None:
        """The source rule."""
        return self.source

    def grouped_by(self) -> Literal["building", "community"]:
        """Its `group_by`."""
        return self.group_by

    def references(self) -> Named:
        """The source rule."""
        return [(("source",), self.source)]


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


def _machine(spec: CorrelationRule, device_type: str, setting: Setting) -> CorrelationMachine:
    return CorrelationMachine(spec)


register(CorrelationRule, _machine)
