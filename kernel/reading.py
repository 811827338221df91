"""Readings (docs/devices.md): the fields every payload has, and the validated record.

Each type's own payload model lives in its catalog module (kernel.devices)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

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
    # The reading's series in the store (line protocol's measurement and tags, escaped), when the
    # decoder knows it: the same for every reading of a device, so made once per topic.
    series: str = ""

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
