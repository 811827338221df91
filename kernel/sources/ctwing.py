"""CTWing (China Telecom's AEP): NB-IoT devices' messages pushed over HTTP."""

from __future__ import annotations

from typing import ClassVar, Literal

from kernel.sources import PushSourceConfig, register


@register
class CtwingConfig(PushSourceConfig):
    """`token`: the secret written into the push URL set in AEP (`?token=...`)."""

    # Its devices' expected interval unless the site file gives one:
    # NB-IoT detectors report on change and with a daily heartbeat.
    default_interval_s: ClassVar[float | None] = 86400.0
    type: Literal["ctwing"] = "ctwing"
