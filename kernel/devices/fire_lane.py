"""Fire-lane occupancy sensor (消防通道): whether something stands in the lane, and what."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kernel.alerting import Level
from kernel.devices import FieldInfo, Plot, register
from kernel.reading import ReadingPayload


class FireLanePayload(ReadingPayload):
    """A fire-lane occupancy sensor's reading."""

    occupied: bool
    object: Literal["car", "ebike", "debris", "other", "unknown"] | None = Field(default=None)
    confidence: float | None = Field(default=None, ge=0, le=1)


KIND = register(
    "fire_lane", FireLanePayload, expected_interval_s=30.0, id_prefix="fl",
    zh="消防通道", en="fire lane sensor",
    fields={
        "occupied": FieldInfo("占用", "occupied"),
        "object": FieldInfo("占用物", "object"),
        "confidence": FieldInfo("置信度", "confidence"),
    },
    plots=(
        Plot("occupied", "last", states=(("true", "占用", "blocked", Level.YELLOW), ("false", "畅通", "clear", None))),
    ),
    rule_titles={
        "fire_lane.blocked": ("消防通道占用", "fire lane blocked"),
    },
)
