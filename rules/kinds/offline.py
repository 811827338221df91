"""The `offline` kind: no reading for `after_intervals` × the type's expected interval, or the
device's own `offline` status, on the service clock."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from kernel.alerting import Level, Transition
from kernel.clock import NS
from kernel.ids import DeviceType
from kernel.reading import FieldValue
from rules.kinds import register
from rules.machine import Context, Device, Episode, Hooks, Setting
from rules.model import RuleBase


class OfflineRule(RuleBase):
    """No reading for `after_intervals` × the type's expected interval, or a status `offline`."""

    kind: Literal["offline"]
    after_intervals: float = Field(default=3.0, gt=0)
    level: Level = Level.BLUE
    level_by_type: dict[DeviceType, Level] = Field(default_factory=dict)


class OfflineMachine(Hooks):
    """Silence beyond `after_intervals` expected intervals, or the device's own `offline`, on the service clock."""

    __slots__ = ("after_ns", "asleep", "episode", "level", "rule", "said_offline")

    timed_asleep = True  # asleep, its deadline is the silence's end (machine.Hooks)

    def __init__(self, spec: OfflineRule, device_type: str, interval_s: float) -> None:
        self.rule = spec.id
        self.level = spec.level_by_type.get(device_type, spec.level)  # type: ignore[call-overload]
        self.after_ns = int(spec.after_intervals * interval_s * NS)
        self.said_offline = False
        self.episode = Episode()
        # Asleep (machine.Hooks) while online with no episode: a reading then changes nothing here
        # (the silence counts from dev.last_heard, which the engine moves), and no field wakes it.
        self.asleep = False

    def on_reading(self, dev: Device, fields: dict[str, FieldValue], t: int, ctx: Context) -> Transition | None:
        """Any reading means it is back (a late one too: it is back now, not at the reading's time)."""
        self.said_offline = False
        tr = self.episode.update(self.rule, dev, None, max(t, dev.reading_time(dev.last_heard)), 0, None)
        self.asleep = self.episode.level is None
        return tr

    def on_status(self, dev: Device, online: bool, now: int) -> Transition | None:
        """The retained status topic: `offline` (the device's will) fires at once; `online` clears
        unless the silence holds too. A status is not a reading: the broker hands the retained
        `online` of a dead device to every new subscription, and it must not end a silence."""
        self.said_offline = not online
        self.asleep = False
        silent = now >= dev.last_heard + self.after_ns
        target = self.level if self.said_offline or silent else None
        return self.episode.update(self.rule, dev, target, dev.reading_time(now), 0, None)

    def on_late(self, dev: Device, fields: dict[str, FieldValue], t: int) -> Transition | None:
        """A late reading says the device is back too."""
        self.said_offline = self.asleep = False
        return self.episode.update(self.rule, dev, None, max(t, dev.reading_time(dev.last_heard)), 0, None)

    def on_deadline(self, dev: Device, now: int, ctx: Context) -> Transition | None:
        """Fire once the silence (since the last reading or status) is long enough."""
        self.asleep = False
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
        self.asleep = False
        self.episode.load(episode)


def _machine(spec: OfflineRule, device_type: str, setting: Setting) -> OfflineMachine:
    return OfflineMachine(spec, device_type, setting.interval_s(device_type))


register(OfflineRule, _machine)
