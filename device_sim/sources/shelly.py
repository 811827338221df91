"""Shelly Gen2/Gen3: a switch's status on `{prefix}/status/switch:{id}` ("Generic status update over
MQTT", its Switch.GetStatus: output, apower W, voltage V, current A, pf, freq, aenergy.total Wh,
temperature in °C and °F) and `{prefix}/online` (`true` / `false`, retained). No time and no counter:
the service takes the time of receipt."""

from __future__ import annotations

from typing import Any

import orjson

from device_sim.sources import Body, Encoder, Out, Registration, need_profile, need_type, register
from kernel.ids import DeviceType


@register
class Shelly(Encoder):
    """A Shelly; its address is its MQTT prefix, a device's port its switch (switch:0 is port 1)."""

    type = "shelly"

    def check(self, reg: Registration) -> None:
        need_profile(reg, {None: None})
        need_type(reg, DeviceType.EBIKE_CHARGER, what=" (a metered switch)")

    def reading(self, reg: Registration, body: Body) -> list[Out]:
        switch = (reg.port or 1) - 1
        power = body.get("power_w") or 0.0
        ts_s = body["ts"] // 1000
        status: dict[str, Any] = {
            "id": switch, "source": "init", "output": bool(body.get("charging", power > 0)),
            "apower": round(power, 1), "voltage": round(body.get("voltage_v") or 0.0, 1),
            "freq": 50.0, "current": round(body.get("current_a") or 0.0, 3), "pf": 1.0 if power else 0.0,
            "aenergy": {"total": round(body.get("energy_wh") or 0.0, 3), "by_minute": [0.0, 0.0, 0.0],
                        "minute_ts": ts_s - ts_s % 60},
        }
        temperature = body.get("temperature_c")
        if temperature is not None:
            status["temperature"] = {"tC": round(temperature, 1), "tF": round(temperature * 1.8 + 32.0, 1)}
        return [Out(f"{reg.address}/status/switch:{switch}", orjson.dumps(status))]

    def status(self, reg: Registration, online: bool) -> list[Out]:
        return [Out(f"{reg.address}/online", b"true" if online else b"false", retain=True)]
