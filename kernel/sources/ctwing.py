"""CTWing (China Telecom's AEP): NB-IoT devices' messages pushed over HTTP."""

from __future__ import annotations

from typing import Literal

from kernel.sources import PushSourceConfig, register


@register
class CtwingConfig(PushSourceConfig):
    """`token`: the secret written into the push URL set in AEP (`?token=...`)."""

    type: Literal["ctwing"] = "ctwing"
