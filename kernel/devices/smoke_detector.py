"""Smoke detector (烟感): optical smoke obscuration, its own alarm, a thermistor."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from kernel.alerting import Level
from kernel.devices import FieldInfo, Plot, register
from kernel.reading import ReadingPayload


class SmokeDetectorPayload(ReadingPayload):
    """A smoke detector's reading."""

    obscuration_pct_m: float | None = Field(default=None, ge=0, le=100)
    alarm: bool | None = Field(default=None)
    temperature_c: float | None = Field(default=None, ge=-40, le=150)
    fault: bool | None = Field(default=None)
    tamper: bool | None = Field(default=None)
    self_test: bool | None = Field(default=None)

    @model_validator(mode="after")
    def _needs_smoke_or_alarm(self) -> SmokeDetectorPayload:
        if "obscuration_pct_m" not in self.model_fields_set and "alarm" not in self.model_fields_set:
            raise PydanticCustomError(
                "missing_required", "at least one of obscuration_pct_m and alarm is required"
            )
        return self


KIND = register(
    "smoke_detector", SmokeDetectorPayload, expected_interval_s=60.0, id_prefix="sd",
    zh="烟感", en="smoke detector",
    fields={
        "obscuration_pct_m": FieldInfo("烟雾浓度", "smoke obscuration", "%/m"),
        "alarm": FieldInfo("本机报警", "own alarm"),
        "temperature_c": FieldInfo("温度", "temperature", "°C"),
        "fault": FieldInfo("故障", "fault"),
        "tamper": FieldInfo("被拆", "tampering"),
        "self_test": FieldInfo("自检", "self-test"),
    },
    plots=(
        # smoke.obscuration (yellow) and smoke.alarm (orange) by their default thresholds.
        Plot("obscuration_pct_m", "max", bands=((5.0, Level.YELLOW), (10.0, Level.ORANGE))),
    ),
    rule_titles={
        "smoke.obscuration": ("烟雾浓度升高", "smoke building up"),
        "smoke.alarm": ("烟感报警", "smoke alarm"),
        "smoke.multi": ("多个烟感同时报警", "several smoke alarms in one building"),
    },
)
