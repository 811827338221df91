"""MQTT channel configuration: the notification on `{prefix}/{community}/alerts` of the service's broker."""

from __future__ import annotations

from typing import Literal

from kernel.channels import ChannelConfig, register


@register
class MqttChannelConfig(ChannelConfig):
    """No keys of its own: it uses the service's `mqtt` connection and prefix."""

    type: Literal["mqtt"] = "mqtt"
