"""The voice channel: Alibaba Cloud SingleCallByTts, the TTS template reading ${summary} and ${key} (the
key to press to answer); the provider's receipt of the key comes back to POST /api/v1/answer/voice/{secret}."""

from __future__ import annotations

import httpx
import orjson

from kernel.channels.voice import VoiceConfig
from notify.channels import ChannelContext, Outcome, register_factory
from notify.channels.aliyun import call
from notify.notification import Notification

# What the TTS template may read out (a call is short: the summary, cut).
SUMMARY_MAX = 60


def tts_param(n: Notification) -> str:
    """The TtsParam JSON of one notification."""
    summary = str(n.body.get("summary") or n.body.get("rule"))[:SUMMARY_MAX]
    key = str((n.call or {}).get("voice_key") or "1")
    return orjson.dumps({"summary": summary, "key": key}).decode()


class Voice:
    """A text-to-speech call to one number."""

    type = "voice"

    def __init__(self, config: VoiceConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self.client = client

    async def send(self, n: Notification) -> Outcome:
        """One attempt: the provider took the call (it rings on); OutId is the notification's id."""
        c = self.config
        params = {"CalledNumber": c.phone, "TtsCode": c.tts_code, "TtsParam": tts_param(n),
                  "PlayTimes": str(c.play_times), "OutId": n.event_id}
        if c.called_show_number is not None:
            params["CalledShowNumber"] = c.called_show_number
        return await call(self.client, c.endpoint, "SingleCallByTts", params, access_key_id=c.access_key_id,
                          access_key_secret=c.access_key_secret, region_id=c.region_id)


def make_voice(config: VoiceConfig, context: ChannelContext) -> Voice:
    """A voice channel on the service's HTTP client."""
    return Voice(config, context.http_client)


register_factory("voice", make_voice)
