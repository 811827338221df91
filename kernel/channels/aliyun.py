"""Alibaba Cloud (阿里云) keys and endpoints shared by the SMS and voice channels (kernel/channels/sms.py, voice.py)."""

from __future__ import annotations

from pydantic import Field

from kernel.channels import ChannelConfig, HttpUrl

# A mainland mobile or fixed number as the provider takes it ("13800000000", "+8613800000000").
PHONE_PATTERN = r"^\+?[0-9]{6,15}$"


class AliyunKeys(ChannelConfig):
    """The RAM user's AccessKey pair, the region and the API endpoint (override it for a private gateway)."""

    access_key_id: str = Field(min_length=1)
    access_key_secret: str = Field(min_length=1)
    region_id: str = Field(default="cn-hangzhou", pattern=r"^[a-z0-9-]+$")
    endpoint: HttpUrl
