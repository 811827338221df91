"""E-bike charging port or smart socket (充电口): current, voltage, power, temperature."""

from __future__ import annotations

from pydantic import Field

from kernel.alerting import Level
from kernel.devices import FieldInfo, Plot, register
from kernel.reading import ReadingPayload


class EbikeChargerPayload(ReadingPayload):
    """One charging port's reading."""

    current_a: float = Field(ge=0, le=100)
    voltage_v: float | None = Field(default=None, ge=0, le=400)
    power_w: float | None = Field(default=None, ge=0)
    temperature_c: float | None = Field(default=None, ge=-40, le=200)
    charging: bool | None = Field(default=None)
    energy_wh: float | None = Field(default=None, ge=0)


KIND = register(
    "ebike_charger", EbikeChargerPayload, expected_interval_s=30.0, id_prefix="ev",
    zh="充电口", en="charging port",
    fields={
        "current_a": FieldInfo("充电电流", "charging current", "A"),
        "voltage_v": FieldInfo("电压", "voltage", "V"),
        "power_w": FieldInfo("功率", "power", "W"),
        "temperature_c": FieldInfo("温度", "temperature", "°C"),
        "charging": FieldInfo("充电中", "charging"),
        "energy_wh": FieldInfo("累计电量", "energy", "Wh"),
    },
    plots=(
        # ebike.overcurrent (orange) and ebike.overheat (orange, red) by their default thresholds.
        Plot("current_a", "mean", bands=((10.0, Level.ORANGE),)),
        Plot("temperature_c", "max", bands=((60.0, Level.ORANGE), (80.0, Level.RED))),
    ),
    # The wall's charging load: the current of every online port of a community, summed.
    community_sums={"charging_a": "current_a"},
    rule_titles={
        "ebike.overcurrent": ("充电过流", "charging over-current"),
        "ebike.overheat": ("充电过热", "charging over-temperature"),
        "ebike.heating": ("充电温升过快", "battery heating fast while charging"),
        "ebike.overcharge": ("充电超时", "charging too long"),
    },
)
