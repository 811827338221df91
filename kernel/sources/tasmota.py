"""Tasmota: smart sockets and power strips publishing `tele/{topic}/SENSOR` every TelePeriod."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from kernel.sources import SourceConfig, register


@register
class TasmotaConfig(SourceConfig):
    """`telemetry_prefix`: Tasmota's `%prefix%` for telemetry (`Prefix3`, `tele` unless changed)."""

    has_ports: ClassVar[bool] = True
    type: Literal["tasmota"] = "tasmota"
    telemetry_prefix: str = Field(default="tele", pattern=r"^[^#+/]+$")
