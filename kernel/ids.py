"""Identifiers and device types (docs/devices.md)."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import StringConstraints

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
ID_RE = re.compile(ID_PATTERN)

Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]

UNKNOWN = "unknown"


class DeviceType(StrEnum):
    """The four kinds of sensor; the value is also the InfluxDB measurement name."""

    SMOKE_DETECTOR = "smoke_detector"
    EBIKE_CHARGER = "ebike_charger"
    WATER_LEVEL = "water_level"
    FIRE_LANE = "fire_lane"


DEVICE_TYPES: frozenset[str] = frozenset(t.value for t in DeviceType)


def is_identifier(value: str) -> bool:
    """True when value is a valid community, device, grid or building id."""
    return ID_RE.match(value) is not None and not value.endswith("\n")
