"""Zigbee2MQTT: a Zigbee hub publishing each device's state as JSON on `{base_topic}/{friendly_name}`."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from kernel.sources import SourceConfig, register


@register
class Zigbee2MqttConfig(SourceConfig):
    """`base_topic` as set in the hub's configuration.yaml (`mqtt.base_topic`)."""

    # Its devices' expected interval unless the site file gives one:
    # battery Zigbee sensors report on change and about hourly
    # (Zigbee2MQTT's availability says sooner when a mains device drops).
    default_interval_s: ClassVar[float | None] = 3600.0
    type: Literal["zigbee2mqtt"] = "zigbee2mqtt"
    base_topic: str = Field(default="zigbee2mqtt", pattern=r"^[^#+]+$")
