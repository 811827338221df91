"""Shelly Gen2/Gen3: `{prefix}/status/switch:N` status notifications and `{prefix}/online`."""

from __future__ import annotations

from typing import ClassVar, Literal

from kernel.sources import SourceConfig, register


@register
class ShellyConfig(SourceConfig):
    """Each device's `address` is its MQTT topic prefix (the Shelly's device id unless changed), and
    `port: N` its N-th switch counted from 1 (`switch:0` is port 1)."""

    has_ports: ClassVar[bool] = True
    type: Literal["shelly"] = "shelly"
