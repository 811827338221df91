"""Zigbee2MQTT: a hub publishing each device's state on `{base_topic}/{friendly_name}` as the converters
expose it, keys sorted (json-stable-stringify), and `{base_topic}/{friendly_name}/availability`
(`{"state":"online"}`, retained). A smoke detector says smoke, test, tamper, battery, battery_low
(and temperature where it has a thermistor); a metered plug current, voltage, power, energy (kWh) and
its relay's state; both their link quality (LQI, 0-255). No time and no counter: the service takes
the time of receipt."""

from __future__ import annotations

from typing import Any

import orjson

from device_sim.sources import Body, Encoder, Out, Registration, need_profile, need_type, register
from kernel.ids import DeviceType
from kernel.sources.zigbee2mqtt import Zigbee2MqttConfig

# section 1 -> the converters' expose, for a smoke detector and for a metered plug
SMOKE = {"alarm": "smoke", "self_test": "test", "tamper": "tamper", "temperature_c": "temperature"}
_LOW_BATTERY_PCT = 20.0  # the Heiman converter's battery_low threshold


@register
class Zigbee2Mqtt(Encoder):
    """A Zigbee2MQTT hub; the address is the device's friendly name."""

    type = "zigbee2mqtt"

    def __init__(self, source: Any, *, timezone: str = "Asia/Shanghai") -> None:
        super().__init__(source, timezone=timezone)
        assert isinstance(source, Zigbee2MqttConfig)
        self.base = source.base_topic.rstrip("/")

    def check(self, reg: Registration) -> None:
        need_profile(reg, {None: None})
        need_type(reg, DeviceType.SMOKE_DETECTOR, DeviceType.EBIKE_CHARGER)

    def reading(self, reg: Registration, body: Body) -> list[Out]:
        state: dict[str, Any] = {"linkquality": _lqi(body.get("rssi_dbm"))}
        if reg.device_type is DeviceType.SMOKE_DETECTOR:
            for name, key in SMOKE.items():
                if body.get(name) is not None:
                    state[key] = body[name]
            state.setdefault("test", False)
            state.setdefault("tamper", False)
        else:  # a metered plug (TS011F-like): its precision
            state["state"] = "ON"
            for name, key, places in (("current_a", "current", 2), ("voltage_v", "voltage", 0),
                                      ("power_w", "power", 0)):
                if body.get(name) is not None:
                    state[key] = _rounded(body[name], places)
            if body.get("energy_wh") is not None:
                state["energy"] = round(body["energy_wh"] / 1000.0, 2)
        battery = body.get("battery_pct")
        if battery is not None and reg.device_type is DeviceType.SMOKE_DETECTOR:
            state["battery"] = round(battery)
            state["battery_low"] = battery < _LOW_BATTERY_PCT
        return [Out(f"{self.base}/{reg.address}", orjson.dumps(state, option=orjson.OPT_SORT_KEYS))]

    def status(self, reg: Registration, online: bool) -> list[Out]:
        state = b'{"state":"online"}' if online else b'{"state":"offline"}'
        return [Out(f"{self.base}/{reg.address}/availability", state, retain=True)]


def _lqi(rssi: Any) -> int:
    """A link quality (0-255) for a signal strength in dBm: -100 dBm is 0, -30 dBm and above 255."""
    if not isinstance(rssi, int | float):
        return 120
    return max(0, min(255, round((rssi + 100.0) * 255.0 / 70.0)))


def _rounded(value: float, places: int) -> float | int:
    return round(value) if places == 0 else round(value, places)
