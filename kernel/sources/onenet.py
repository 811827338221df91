"""OneNET (China Mobile): devices' messages pushed over HTTP, signed with the push token."""

from __future__ import annotations

import base64
import hashlib
from typing import ClassVar, Literal

from kernel.sources import PushSourceConfig, register


@register
class OnenetConfig(PushSourceConfig):
    """`token`: the token set in OneNET's data push (it signs every push: Base64(MD5(token + nonce + msg)))."""

    # Its devices' expected interval unless the site file gives one:
    # NB-IoT detectors report on change and with a daily heartbeat.
    default_interval_s: ClassVar[float | None] = 86400.0
    type: Literal["onenet"] = "onenet"


def signature(token: str, nonce: str, msg: str) -> str:
    """OneNET's signature of a push: Base64(MD5(token + nonce + msg)), over `msg` as the exact text sent."""
    return base64.b64encode(hashlib.md5((token + nonce + msg).encode("utf-8")).digest()).decode("ascii")
