"""WeCom (企业微信) group robot configuration: its webhook URL, which carries the robot's key."""

from __future__ import annotations

from typing import Literal

from kernel.channels import ChannelConfig, HttpUrl, register


@register
class WeComConfig(ChannelConfig):
    """The robot's webhook `url`."""

    type: Literal["wecom"] = "wecom"
    url: HttpUrl
