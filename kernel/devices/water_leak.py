"""Water-leak sensor (水浸传感器): probes on the floor of a basement, garage, pump room or distribution room."""

from __future__ import annotations

from pydantic import Field

from kernel.alerting import Level
from kernel.devices import FieldInfo, Plot, register
from kernel.reading import ReadingPayload


class WaterLeakPayload(ReadingPayload):
    """A leak sensor's reading: whether its probes are wet, and where fitted the room's temperature."""

    leak: bool
    temperature_c: float | None = Field(default=None, ge=-40, le=150)


KIND = register(
    # Leak sensors run for years on a battery (Zigbee, NB-IoT): they report at once when the probes get
    # wet or dry, and otherwise only a heartbeat, about hourly for the common Zigbee ones. An hour here:
    # device.offline says a sensor is silent after 3 h (a missed heartbeat or two is not yet an alert),
    # and a reported leak stands that long between heartbeats. Sensors with a 12 h or daily heartbeat
    # (many NB-IoT ones) need `expected_interval_s` in the rules file.
    "water_leak", WaterLeakPayload, expected_interval_s=3600.0, id_prefix="lk",
    zh="水浸传感器", en="leak sensor",
    fields={
        "leak": FieldInfo("漏水", "leak"),
        "temperature_c": FieldInfo("温度", "temperature", "°C"),
    },
    plots=(
        # water.leak (yellow) while the probes are wet.
        Plot("leak", "last", states=(("true", "漏水", "leak", Level.YELLOW), ("false", "无水", "dry", None))),
    ),
    rule_titles={
        "water.leak": ("漏水", "water leak"),
    },
)
