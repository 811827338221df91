"""SMS channel configuration: Alibaba Cloud SMS (短信服务, dysmsapi SendSms) to one phone number."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kernel.channels import HttpUrl, register
from kernel.channels.aliyun import PHONE_PATTERN, AliyunKeys


@register
class SmsConfig(AliyunKeys):
    """`phone`, the approved `sign_name` (签名) and `template_code` (模板); the template's variables are
    ${level}, ${summary} and ${link} (the 叫应 answer link)."""

    type: Literal["sms"] = "sms"
    phone: str = Field(pattern=PHONE_PATTERN)
    sign_name: str = Field(min_length=1, max_length=40)
    template_code: str = Field(pattern=r"^SMS_[0-9]+$")
    endpoint: HttpUrl = "https://dysmsapi.aliyuncs.com/"
