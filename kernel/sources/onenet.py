"""OneNET (China Mobile): devices' messages pushed over HTTP, signed with the push token."""

from __future__ import annotations

from typing import Literal

from kernel.sources import PushSourceConfig, register


@register
class OnenetConfig(PushSourceConfig):
    """`token`: the token set in OneNET's data push (it signs every push: Base64(MD5(token + nonce + msg)))."""

    type: Literal["onenet"] = "onenet"
