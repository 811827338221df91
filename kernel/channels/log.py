"""Log channel configuration: the notification as a line of the service's log."""

from __future__ import annotations

from typing import Literal

from kernel.channels import ChannelConfig, register


@register
class LogConfig(ChannelConfig):
    """No keys of its own."""

    type: Literal["log"] = "log"
