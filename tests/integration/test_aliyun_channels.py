"""The SMS and voice channels against the Alibaba Cloud stand-in (tests/aliyun_standin.py): signed as
documented, the parameters the actions need, and the provider's refusals told apart from its "later"."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest

from kernel.channels.sms import SmsConfig
from kernel.channels.voice import VoiceConfig
from notify.channels.aliyun import percent_encode, signature
from notify.channels.sms import Sms
from notify.channels.voice import Voice
from notify.notification import Notification
from tests.aliyun_standin import AliyunStandIn, expected_signature

KEY_ID, SECRET = "LTAI-test-key", "test-secret-of-the-key"


@pytest.fixture
def standin() -> Iterator[AliyunStandIn]:
    s = AliyunStandIn({KEY_ID: SECRET}).start()
    yield s
    s.close()


def payload(summary: str = "【红色预警（I级）】临汾一村 1号楼：烟感报警", event_id: str = "e1") -> Notification:
    """A call's notification as the outbox keeps it (parsed once, as delivery does)."""
    body = orjson.dumps({"event_id": event_id, "event": "call", "recipient": "worker-g1",
                         "alert": {"id": "a1", "level": "red", "rule": "smoke.alarm", "summary": summary},
                         "call": {"id": "c1", "duty": "网格员", "attempt": "a", "voice_key": "1"},
                         "link": "http://127.0.0.1:8000/r/abc.def"})
    return Notification.from_outbox(event_id, "a1", "worker-g1#0", "call", body, 0)


def sms(standin: AliyunStandIn, **kw: str) -> SmsConfig:
    base = {"type": "sms", "phone": "13800000001", "sign_name": "社区大脑", "template_code": "SMS_123456",
            "access_key_id": KEY_ID, "access_key_secret": SECRET, "endpoint": standin.url}
    return SmsConfig.model_validate(base | kw)


def test_the_signature_matches_the_documented_recipe() -> None:
    params = {"B": "a b*c~", "A": "中文/+=&", "Timestamp": "2026-12-01T00:00:00Z"}
    assert percent_encode("a b*c~") == "a%20b%2Ac~"
    assert signature("s", "POST", params) == expected_signature("s", "POST", params)


async def test_an_sms_goes_with_its_template_and_link(standin: AliyunStandIn) -> None:
    async with httpx.AsyncClient() as client:
        outcome = await Sms(sms(standin), client).send(payload("很长" * 40, event_id="e1"))
    assert outcome.ok, standin.refused
    sent = standin.wait_for("SendSms", 1)[0]
    assert sent.params["PhoneNumbers"] == "13800000001" and sent.params["OutId"] == "e1"
    param = sent.json_param("TemplateParam")
    assert param["level"] == "红色" and param["link"] == "http://127.0.0.1:8000/r/abc.def"
    assert len(param["summary"]) <= 35


async def test_a_wrong_secret_is_refused_with_the_providers_code(standin: AliyunStandIn) -> None:
    async with httpx.AsyncClient() as client:
        outcome = await Sms(sms(standin, access_key_secret="not-the-secret"), client).send(payload(event_id="e1"))
        unknown = await Sms(sms(standin, access_key_id="LTAI-nobody"), client).send(payload(event_id="e2"))
    assert not outcome.ok and not outcome.retryable and "SignatureDoesNotMatch" in (outcome.error or "")
    assert not unknown.ok and "InvalidAccessKeyId.NotFound" in (unknown.error or "")
    assert standin.of("SendSms") == []


async def test_a_missing_parameter_is_named(standin: AliyunStandIn) -> None:
    from notify.channels.aliyun import call

    async with httpx.AsyncClient() as client:
        outcome = await call(client, standin.url, "SendSms", {"PhoneNumbers": "13800000001", "SignName": "x",
                                                              "TemplateCode": "SMS_1"},
                             access_key_id=KEY_ID, access_key_secret=SECRET, region_id="cn-hangzhou")
    assert not outcome.ok and "MissingTemplateParam" in (outcome.error or "")


async def test_a_voice_call_reads_the_summary_and_the_key(standin: AliyunStandIn) -> None:
    config = VoiceConfig.model_validate({"type": "voice", "phone": "13800000002", "tts_code": "TTS_100",
                                         "called_show_number": "057100000000", "access_key_id": KEY_ID,
                                         "access_key_secret": SECRET, "endpoint": standin.url})
    async with httpx.AsyncClient() as client:
        outcome = await Voice(config, client).send(payload(event_id="e9"))
    assert outcome.ok, standin.refused
    call = standin.wait_for("SingleCallByTts", 1)[0]
    assert call.params["CalledNumber"] == "13800000002" and call.params["OutId"] == "e9"
    assert call.json_param("TtsParam")["key"] == "1" and call.params["PlayTimes"] == "2"


async def test_flow_control_is_retried_and_an_unreachable_provider_too() -> None:
    async with httpx.AsyncClient() as client:
        down = await Sms(SmsConfig.model_validate({
            "type": "sms", "phone": "13800000001", "sign_name": "x", "template_code": "SMS_1",
            "access_key_id": KEY_ID, "access_key_secret": SECRET, "endpoint": "http://127.0.0.1:9/"}),
            client).send(payload(event_id="e1"))
    assert not down.ok and down.retryable
