"""Readings (docs/devices.md): the payload models devices publish, and the validated record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from kernel.ids import UNKNOWN, DeviceType

MAX_PAYLOAD_BYTES = 4096
MAX_SEQ = 2**63 - 1

FieldValue = float | bool | str


class ReadingPayload(BaseModel):
    """Fields every device type may carry. Strict: a bool is not a number, a number is not a bool.

    None stands for "absent": the decoder rejects an explicit JSON `null` of a declared field.
    """

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="allow")

    # Names that are metadata, not measured fields.
    META: ClassVar[frozenset[str]] = frozenset({"ts", "seq"})

    ts: str | int | None = Field(default=None)
    seq: int | None = Field(default=None, ge=0, le=MAX_SEQ)
    battery_pct: float | None = Field(default=None, ge=0, le=100)
    rssi_dbm: float | None = Field(default=None, ge=-300, le=100)

    def measured(self) -> dict[str, FieldValue]:
        """The measured fields that were present, as stored (numbers as floats)."""
        values = self.__dict__  # declared fields only; unknown ones live in model_extra
        out: dict[str, FieldValue] = {}
        for name in self.model_fields_set:
            if name in values and name not in self.META:
                value = values[name]
                out[name] = float(value) if type(value) is int else value
        return out


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


class EbikeChargerPayload(ReadingPayload):
    """One charging port's reading."""

    current_a: float = Field(ge=0, le=100)
    voltage_v: float | None = Field(default=None, ge=0, le=400)
    power_w: float | None = Field(default=None, ge=0)
    temperature_c: float | None = Field(default=None, ge=-40, le=200)
    charging: bool | None = Field(default=None)
    energy_wh: float | None = Field(default=None, ge=0)


class WaterLevelPayload(ReadingPayload):
    """A water-level gauge's reading."""

    level_cm: float = Field(ge=-500, le=2000)
    rain_mm_h: float | None = Field(default=None, ge=0)


class FireLanePayload(ReadingPayload):
    """A fire-lane occupancy sensor's reading."""

    occupied: bool
    object: Literal["car", "ebike", "debris", "other", "unknown"] | None = Field(default=None)
    confidence: float | None = Field(default=None, ge=0, le=1)


PAYLOAD_MODELS: dict[DeviceType, type[ReadingPayload]] = {
    DeviceType.SMOKE_DETECTOR: SmokeDetectorPayload,
    DeviceType.EBIKE_CHARGER: EbikeChargerPayload,
    DeviceType.WATER_LEVEL: WaterLevelPayload,
    DeviceType.FIRE_LANE: FireLanePayload,
}


@dataclass(slots=True)
class Reading:
    """A validated reading, placed on the site, ready to store and to evaluate."""

    community: str
    device_type: DeviceType
    device_id: str
    ts_ns: int
    fields: dict[str, FieldValue]
    seq: int | None = None
    building: str = UNKNOWN
    grid: str = UNKNOWN
    received_ns: int = 0
    ignored_fields: int = 0

    def tags(self) -> dict[str, str]:
        """InfluxDB tags (docs/storage.md)."""
        return {"community": self.community, "device_id": self.device_id,
                "building": self.building, "grid": self.grid}


@dataclass(slots=True)
class StatusUpdate:
    """A device's `online` / `offline` announcement from its retained status topic."""

    community: str
    device_type: DeviceType
    device_id: str
    online: bool
    received_ns: int = 0


@dataclass(slots=True)
class Point:
    """One point for a time-series store: what InfluxDB line protocol carries."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    ts_ns: int

    @classmethod
    def of(cls, reading: Reading) -> Point:
        """The point a reading is stored as."""
        return cls(reading.device_type.value, reading.tags(), reading.fields, reading.ts_ns)
