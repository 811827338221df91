"""E-bike parking shed or charging cabinet environment sensor (车棚): gas, heat and smoke.

Batteries in thermal runaway vent gas (VOC, then H₂, then CO) minutes before visible smoke, so a
shed's sensor reports those gases as well as temperature and, where fitted, obscuration."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from kernel.alerting import Level
from kernel.devices import FieldInfo, Plot, register
from kernel.reading import ReadingPayload


class BatteryShedPayload(ReadingPayload):
    """A shed sensor's reading: temperature and at least one of CO and H₂."""

    temperature_c: float = Field(ge=-40, le=200)
    co_ppm: float | None = Field(default=None, ge=0, le=10_000)
    h2_ppm: float | None = Field(default=None, ge=0, le=40_000)
    voc_ppm: float | None = Field(default=None, ge=0, le=10_000)
    obscuration_pct_m: float | None = Field(default=None, ge=0, le=100)
    humidity_pct: float | None = Field(default=None, ge=0, le=100)

    @model_validator(mode="after")
    def _needs_a_gas(self) -> BatteryShedPayload:
        if "co_ppm" not in self.model_fields_set and "h2_ppm" not in self.model_fields_set:
            raise PydanticCustomError("missing_required", "at least one of co_ppm and h2_ppm is required")
        return self


KIND = register(
    "battery_shed", BatteryShedPayload, expected_interval_s=60.0, id_prefix="bs",
    zh="车棚传感器", en="bike shed sensor",
    fields={
        "temperature_c": FieldInfo("温度", "temperature", "°C"),
        "co_ppm": FieldInfo("一氧化碳浓度", "CO", "ppm"),
        "h2_ppm": FieldInfo("氢气浓度", "H₂", "ppm"),
        "voc_ppm": FieldInfo("挥发性有机物浓度", "VOC", "ppm"),
        "obscuration_pct_m": FieldInfo("烟雾浓度", "smoke obscuration", "%/m"),
        "humidity_pct": FieldInfo("湿度", "humidity", "%"),
    },
    plots=(
        # Gas comes minutes before smoke: shed.offgas's default early warnings (orange) on the wall too;
        # shed.fire's heat (red, with CO above 110 ppm).
        Plot("h2_ppm", "max", bands=((50.0, Level.ORANGE),), wall=True),
        Plot("co_ppm", "max", bands=((50.0, Level.ORANGE), (110.0, Level.RED)), wall=True),
        Plot("temperature_c", "max", bands=((60.0, Level.RED),)),
    ),
    rule_titles={
        "shed.offgas": ("车棚电池释放可燃气体（热失控预警）", "battery off-gassing in the bike shed (runaway warning)"),
        "shed.offgas_rising": ("车棚氢气快速上升（热失控预警）",
                               "hydrogen rising fast in the bike shed (runaway warning)"),
        "shed.fire": ("车棚起火", "fire in the bike shed"),
    },
)
