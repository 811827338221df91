"""DingTalk (钉钉) custom robot configuration: its webhook URL and, if set, its signing secret."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kernel.channels import ChannelConfig, HttpUrl, register


@register
class DingTalkConfig(ChannelConfig):
    """The robot's webhook `url`, and `secret` when the robot signs ("加签")."""

    type: Literal["dingtalk"] = "dingtalk"
    url: HttpUrl
    secret: str | None = Field(default=None, min_length=1)
