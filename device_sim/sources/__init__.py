"""What other systems send for a simulated device: one encoder per source type in this package.

A device the site file registers through a source (`source:`, `address:`, `port:`, `profile:`,
`vars:`; kernel.sources) is simulated as that system would report it: a Zigbee2MQTT hub's state
JSON, a ChirpStack uplink event, a Tasmota strip's SENSOR message, a Shelly's switch status, or a
carrier platform's push (CTWing, OneNET) to the service's HTTP endpoint. An encoder turns the
reading the device's model made (section 1 of the contract: `{"ts": ..., "seq": ..., "alarm": true,
"battery_pct": 90, ...}`) and the device's registration into those messages, and says the device's
availability as the system does. It is the inverse of the service's reading of that system
(ingest.sources.types and the built-in profiles of app/defaults/profiles): what it writes reads back
as the same fields, as far as the system can carry them (tests/unit/test_sim_sources.py).

Each module of this package defines its `Encoder` subclass and registers it with `register`; the
fleet (device_sim.routes) sends what they make on its broker connection, or over HTTP for a source
whose `transport` is http.
"""

from __future__ import annotations

import importlib
import pkgutil
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from kernel.ids import DeviceType
from kernel.sources import SourceConfig

# A reading as the fleet makes it: ts (epoch ms), seq and the model's fields.
Body = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Registration:
    """A device as the site file registers it through a source."""

    device_id: str
    device_type: DeviceType
    source: SourceConfig
    address: str
    port: int | None = None
    profile: str | None = None  # the device's own, else its source's
    vars: Mapping[str, float | str] = field(default_factory=dict)
    timezone: str = "Asia/Shanghai"  # the site's, for local times (a source's own `timezone` wins)


@dataclass(frozen=True, slots=True)
class Out:
    """One message: an MQTT publish (topic, payload, retained), or for a push source an HTTP POST
    (topic: the path and query under the service's URL)."""

    topic: str
    payload: bytes
    retain: bool = False


class Unsupported(ValueError):
    """The simulator cannot speak for this device through its source (a profile it does not know...)."""


class Encoder:
    """One source: how its messages look for the devices registered through it."""

    type: ClassVar[str] = ""
    # True when the devices of one address report in one message (a power strip's ports).
    groups: ClassVar[bool] = False

    def __init__(self, source: SourceConfig, *, timezone: str = "Asia/Shanghai") -> None:
        self.source = source
        self.timezone = source.timezone or timezone

    @property
    def transport(self) -> str:
        """mqtt (on the service's broker) or http (pushed to the service)."""
        return self.source.transport

    def check(self, reg: Registration) -> None:
        """Unsupported (saying why) when the device's type or profile is not one this encoder speaks."""

    def reading(self, reg: Registration, body: Body) -> list[Out]:
        """What the system sends for one reading of one device."""
        raise NotImplementedError

    def readings(self, regs: Sequence[Registration], bodies: Sequence[Body]) -> list[Out]:
        """What it sends for readings taken together (the ports of one address, when `groups`)."""
        return [out for reg, body in zip(regs, bodies, strict=True) for out in self.reading(reg, body)]

    def status(self, reg: Registration, online: bool) -> list[Out]:
        """What it says when the device (or its address) goes on or off the air."""
        raise NotImplementedError


ENCODERS: dict[str, type[Encoder]] = {}


def register(encoder: type[Encoder]) -> type[Encoder]:
    """Class decorator: add a source type's encoder (its `type` names it, as in kernel.sources)."""
    if not encoder.type or encoder.type in ENCODERS:
        raise ValueError(f"source encoder {encoder.__name__} needs a unique `type`")
    ENCODERS[encoder.type] = encoder
    return encoder


def make_encoder(source: SourceConfig, *, timezone: str = "Asia/Shanghai") -> Encoder:
    """The encoder of a source; Unsupported for a source type the simulator does not speak."""
    found = ENCODERS.get(source.type)
    if found is None:
        raise Unsupported(f"the simulator does not speak {source.type} (it speaks {', '.join(sorted(ENCODERS))})")
    return found(source, timezone=timezone)


def need_type(reg: Registration, *types: DeviceType, what: str = "") -> None:
    """Unsupported unless the device is of one of the types."""
    if reg.device_type not in types:
        names = " or ".join(t.value for t in types)
        raise Unsupported(f"a {reg.source.type} device{what} is simulated as a {names}, not a "
                          f"{reg.device_type.value}")


def need_profile(reg: Registration, known: Mapping[str | None, DeviceType | None]) -> None:
    """Unsupported unless the device's profile is one the encoder knows (None: without a profile), for
    its type (a None type: any)."""
    if reg.profile not in known:
        spoken = ", ".join(sorted(p for p in known if p is not None)) or "none"
        raise Unsupported(f"the simulator does not know how a device of profile {reg.profile!r} speaks "
                          f"through {reg.source.type} (profiles it speaks: {spoken})")
    wanted = known[reg.profile]
    if wanted is not None and reg.device_type is not wanted:
        raise Unsupported(f"profile {reg.profile!r} makes {wanted.value} readings, not {reg.device_type.value}")


def digits(seed: str, n: int) -> str:
    """n decimal digits that stay the same for the same seed (an IMEI, a product id)."""
    out, k = "", 0
    while len(out) < n:
        out += f"{zlib.crc32(f'{seed}/{k}'.encode()):010d}"
        k += 1
    return out[:n]


def utc(ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000.0, UTC)


def whole(value: Any) -> int | None:
    """A number rounded to a whole one (a battery percentage as devices count it), None if absent."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return round(value)


def smoke_state(body: Body) -> int:
    """A smoke detector's state as NB-IoT and LoRaWAN detectors code it (CTWing's Alarm_Status, the
    GS524N's event): 14 self-test, 1 alarm, 5 fault, 10 removed (tamper), 7 normal. One code a
    message: a test outranks the alarm it sounds, an alarm outranks trouble."""
    if body.get("self_test"):
        return 14
    if body.get("alarm"):
        return 1
    if body.get("fault"):
        return 5
    if body.get("tamper"):
        return 10
    return 7


def _load() -> None:
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{module.name}")


_load()
