"""Zigbee2MQTT: a Zigbee hub publishing each device's state as JSON on `{base_topic}/{friendly_name}`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kernel.sources import SourceConfig, register


@register
class Zigbee2MqttConfig(SourceConfig):
    """`base_topic` as set in the hub's configuration.yaml (`mqtt.base_topic`)."""

    type: Literal["zigbee2mqtt"] = "zigbee2mqtt"
    base_topic: str = Field(default="zigbee2mqtt", pattern=r"^[^#+]+$")
