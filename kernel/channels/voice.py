"""Voice channel configuration: Alibaba Cloud text-to-speech call (语音服务, dyvmsapi SingleCallByTts)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kernel.channels import HttpUrl, register
from kernel.channels.aliyun import PHONE_PATTERN, AliyunKeys


@register
class VoiceConfig(AliyunKeys):
    """`phone` called with the approved TTS template `tts_code` (variables ${summary} and ${key}: the key
    to press to answer), shown as `called_show_number` when the account has one, played `play_times`."""

    type: Literal["voice"] = "voice"
    phone: str = Field(pattern=PHONE_PATTERN)
    tts_code: str = Field(pattern=r"^TTS_[0-9]+$")
    called_show_number: str | None = Field(default=None, pattern=PHONE_PATTERN)
    play_times: int = Field(default=2, ge=1, le=3)
    endpoint: HttpUrl = "https://dyvmsapi.aliyuncs.com/"
