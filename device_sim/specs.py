"""Which devices a simulation runs, and how their network misbehaves."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from device_sim.types import device_mix
from kernel.devices import CATALOG
from kernel.ids import DeviceType

if TYPE_CHECKING:  # (a fleet of native devices loads neither the sources nor the settings)
    from device_sim.sources import Registration
    from kernel.settings import Settings


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """Which device to simulate; `via` the system it reports through (None: it speaks the contract
    on its own topics)."""

    community: str
    device_type: DeviceType
    device_id: str
    via: Registration | None = None


def site_devices(settings: Settings) -> tuple[list[DeviceSpec], dict[str, str]]:
    """The devices the site file registers, each through its source where it names one; and the devices
    the simulator cannot speak for through their source (left out), each with why."""
    from device_sim.sources import Registration, Unsupported, make_encoder

    out: list[DeviceSpec] = []
    left_out: dict[str, str] = {}
    for d in settings.devices:
        source = settings.source(d.source) if d.source is not None else None
        if source is None or d.address is None:
            out.append(DeviceSpec(d.community, d.type, d.id))
            continue
        via = Registration(d.id, d.type, source, d.address, d.port, d.profile or source.profile, dict(d.vars),
                           settings.timezone)
        try:
            make_encoder(source, timezone=settings.timezone).check(via)
        except Unsupported as exc:
            left_out[d.id] = f"source {source.id}: {exc}"
            continue
        out.append(DeviceSpec(d.community, d.type, d.id, via))
    return out, left_out


@dataclass(slots=True)
class Faults:
    """Imperfections of the devices' network, as probabilities per reading (and a clock skew).

    A dropped reading still takes its seq (the service sees a gap); a duplicate is the same payload
    sent twice; a reordered reading is held back and sent after the device's next one; each device
    draws a fixed clock offset uniformly in ±skew_s and adds it to its timestamps."""

    dropout: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    skew_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("dropout", "duplicate", "reorder"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability between 0 and 1, got {value:g}")
        if not 0.0 <= self.skew_s < math.inf:
            raise ValueError(f"skew must be a number of seconds >= 0, got {self.skew_s:g}")

    @property
    def any(self) -> bool:
        """True when some reading may be dropped, duplicated or reordered."""
        return bool(self.dropout or self.duplicate or self.reorder)

    @classmethod
    def parse(cls, text: str) -> Faults:
        """Faults from `dropout=0.01,duplicate=0.01,reorder=0.01,skew=30`; ValueError says what is wrong."""
        names = {"dropout": "dropout", "duplicate": "duplicate", "reorder": "reorder", "skew": "skew_s",
                 "skew_s": "skew_s"}
        values: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep or key not in names:
                raise ValueError(f"{item!r}: expected one of dropout=P, duplicate=P, reorder=P, skew=SECONDS")
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"{item!r}: {raw.strip()!r} is not a number") from None
            if not math.isfinite(value):
                raise ValueError(f"{item!r}: not a finite number")
            values[names[key]] = value
        return cls(**values)


def generate_devices(n: int, communities: list[str], *, taken: Iterable[str] = ()) -> list[DeviceSpec]:
    """n generated devices (ids like `sd-sim-000123`) spread round-robin over the communities."""
    if not communities:
        raise ValueError("no communities to place devices in")
    used = set(taken)
    out: list[DeviceSpec] = []
    # The mix of a residential street (each simulator model's share): mostly smoke detectors, a few
    # charging ports, some gauges, lanes and leak sensors.
    mix = device_mix()
    i = 0
    while len(out) < n:
        dtype = mix[i % len(mix)]
        device_id = f"{CATALOG[dtype].id_prefix}-sim-{i:06d}"
        if device_id not in used:
            out.append(DeviceSpec(communities[len(out) % len(communities)], dtype, device_id))
        i += 1
    return out
