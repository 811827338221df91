"""Webhook channel configuration: a signed HTTP POST (docs/alerts.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kernel.channels import ChannelConfig, HttpUrl, register


@register
class WebhookConfig(ChannelConfig):
    """`url` and `secret`; during a rotation `previous_secret` signs too (X-CB-Signature-Previous)."""

    type: Literal["webhook"] = "webhook"
    url: HttpUrl
    secret: str = Field(min_length=1)
    previous_secret: str | None = Field(default=None, min_length=1)
