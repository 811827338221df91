"""Tasmota: a metering socket or power strip publishing `{telemetry_prefix}/{topic}/SENSOR` every
TelePeriod, and `{telemetry_prefix}/{topic}/LWT` (`Online` / `Offline`, retained). A strip's ports
report together in one message: each ENERGY value is an array with one element per relay (a
single-relay socket's are plain numbers), at Tasmota's default resolutions (VoltRes 0, AmpRes 3,
WattRes 0, EnergyRes 3: Total in kWh). `Time` is local time without an offset, in the source's
time zone (the site's unless the source names one). No counter."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from device_sim.sources import Body, Encoder, Out, Registration, need_profile, need_type, register
from kernel.ids import DeviceType
from kernel.sources.tasmota import TasmotaConfig

# ENERGY key, section-1 field, decimals (Total: kWh from Wh)
_VALUES = (("Power", "power_w", 0), ("Voltage", "voltage_v", 0), ("Current", "current_a", 3))


@register
class Tasmota(Encoder):
    """A Tasmota device; its address is its `%topic%`, a device's port its relay (from 1)."""

    type = "tasmota"
    groups = True

    def __init__(self, source: Any, *, timezone: str = "Asia/Shanghai") -> None:
        super().__init__(source, timezone=timezone)
        assert isinstance(source, TasmotaConfig)
        self.prefix = source.telemetry_prefix
        self.zone = ZoneInfo(self.timezone)

    def check(self, reg: Registration) -> None:
        need_profile(reg, {None: None})
        need_type(reg, DeviceType.EBIKE_CHARGER, what=" (a metering socket)")

    def reading(self, reg: Registration, body: Body) -> list[Out]:
        return self.readings([reg], [body])

    def readings(self, regs: Sequence[Registration], bodies: Sequence[Body]) -> list[Out]:
        ports = {(reg.port or 1): body for reg, body in zip(regs, bodies, strict=True)}
        relays = max(ports)
        energy: dict[str, Any] = {}

        def column(field: str, places: int, scale: float = 1.0) -> list[Any]:
            out: list[Any] = []
            for port in range(1, relays + 1):
                value = ports.get(port, {}).get(field) or 0.0
                out.append(round(value * scale) if places == 0 else round(value * scale, places))
            return out

        totals = column("energy_wh", 3, 0.001)
        powers = column("power_w", 0)
        energy["Total"] = totals
        for key, field, places in _VALUES:
            energy[key] = column(field, places)
        energy["ApparentPower"] = powers
        energy["ReactivePower"] = [0] * relays
        energy["Factor"] = [1.0 if p else 0.0 for p in powers]
        if relays == 1:
            energy = {k: v[0] for k, v in energy.items()}
        first = regs[0]
        when = datetime.fromtimestamp(bodies[0]["ts"] / 1000.0, self.zone).replace(tzinfo=None, microsecond=0)
        message = {"Time": when.isoformat(), "ENERGY": energy}
        return [Out(f"{self.prefix}/{first.address}/SENSOR", orjson.dumps(message))]

    def status(self, reg: Registration, online: bool) -> list[Out]:
        return [Out(f"{self.prefix}/{reg.address}/LWT", b"Online" if online else b"Offline", retain=True)]
