"""Each channel against a real peer: chat robots against a real HTTP server, MQTT against Mosquitto."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import urllib.parse

import httpx
import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from device_sim.receiver import Answer, Receiver
from device_sim.receiver import signed_by as verify
from notify.channels.mqtt import MqttChannel, MqttPublisher
from notify.channels.robot import PER_MINUTE, DingTalkRobot, WeComRobot
from notify.channels.webhook import Webhook
from notify.notification import Notification
from tests.servers import Mosquitto, MosquittoFactory

pytestmark = pytest.mark.integration

OK = b'{"errcode": 0, "errmsg": "ok"}'
NOTIFICATION = orjson.dumps({
    "event_id": "e1", "event": "fired", "recipient": "worker-g1",
    "alert": {"id": "a1", "rule": "smoke.alarm", "level": "orange", "status": "firing", "community": "yicun",
              "building": "b01", "grid": "g1", "device_id": "sd-1", "device_type": "smoke_detector", "value": 12.5,
              "started_at": "2026-11-21T03:00:00.000Z", "updated_at": "2026-11-21T03:00:00.000Z",
              "summary": "【橙色预警（II级）】临汾一村 1号楼 烟感 sd-1：烟感报警"}})


def note(event_id: str, payload: bytes) -> Notification:
    """A notification as the outbox would load it."""
    body = orjson.loads(payload)
    return Notification.from_outbox(event_id, body["alert"]["id"], body["recipient"], body["event"], payload, 0)


async def test_dingtalk_robot_signs_each_request_and_sends_the_summary_and_the_object(receiver: Receiver) -> None:
    secret = "SEC-test-secret"
    receiver.script["/robot/send"] = [Answer(body=OK)]
    async with httpx.AsyncClient(timeout=5) as client:
        robot = DingTalkRobot(f"{receiver.base}/robot/send?access_token=abc", secret, client)
        outcome = await robot.send(note("e1", NOTIFICATION))
    assert outcome.ok
    (req,) = receiver.requests
    path, _, query = req.path.partition("?")
    q = urllib.parse.parse_qs(query)
    assert path == "/robot/send" and q["access_token"] == ["abc"]
    mac = hmac.new(secret.encode(), f"{q['timestamp'][0]}\n{secret}".encode(), hashlib.sha256).digest()
    assert q["sign"] == [base64.b64encode(mac).decode()]
    msg = req.json
    assert msg["msgtype"] == "markdown"
    assert msg["markdown"]["title"].startswith("新告警：【橙色预警")
    assert "临汾一村 1号楼" in msg["markdown"]["text"] and '"event_id": "e1"' in msg["markdown"]["text"]


@pytest.mark.parametrize(("answer", "ok", "retryable"), [
    (Answer(body=b'{"errcode": 310000, "errmsg": "keywords not in content"}'), False, False),
    (Answer(body=b'{"errcode": 130101, "errmsg": "send too fast"}'), False, True),
    (Answer(status=502), False, True),
    (Answer(status=404), False, False),
    (Answer(body=b"<html>"), False, False),
])
async def test_robot_answers_are_read_as_the_robots_document_them(receiver: Receiver, answer: Answer, ok: bool,
                                                                   retryable: bool) -> None:
    receiver.script["/cgi-bin/webhook/send"] = [answer]
    async with httpx.AsyncClient(timeout=5) as client:
        outcome = await WeComRobot(f"{receiver.base}/cgi-bin/webhook/send?key=k", client).send(note("e1", NOTIFICATION))
    assert (outcome.ok, outcome.retryable) == (ok, retryable), outcome
    assert receiver.requests[0].json["msgtype"] == "markdown"


async def test_a_robot_keeps_within_twenty_messages_a_minute(receiver: Receiver) -> None:
    receiver.script["/r"] = [Answer(body=OK) for _ in range(PER_MINUTE + 5)]
    async with httpx.AsyncClient(timeout=5) as client:
        robot = WeComRobot(f"{receiver.base}/r", client)
        outcomes = [await robot.send(note(f"e{i}", NOTIFICATION)) for i in range(PER_MINUTE + 1)]
    assert all(o.ok for o in outcomes[:PER_MINUTE])
    last = outcomes[-1]
    assert not last.ok and last.retryable and last.retry_after_s is not None and 50 < last.retry_after_s <= 61
    assert len(receiver.requests) == PER_MINUTE, "the 21st message waits instead of being sent"


def _notification(i: int) -> tuple[str, bytes]:
    body = orjson.loads(NOTIFICATION)
    body["event_id"], body["alert"]["id"] = f"e{i}", f"a{i}"
    body["alert"]["summary"] = f"【橙色预警（II级）】临汾一村 1号楼 烟感 sd-{i}：烟感报警"
    return f"e{i}", orjson.dumps(body)


@pytest.mark.parametrize(("robot_type", "per_message"), [(DingTalkRobot, 10), (WeComRobot, 5)])
async def test_what_the_quota_holds_back_goes_out_grouped_in_the_next_message(
        receiver: Receiver, robot_type: type[DingTalkRobot] | type[WeComRobot], per_message: int) -> None:
    receiver.script["/r"] = [Answer(body=OK) for _ in range(PER_MINUTE + 10)]
    async with httpx.AsyncClient(timeout=5) as client:
        robot = DingTalkRobot(f"{receiver.base}/r", None, client) if robot_type is DingTalkRobot else \
            WeComRobot(f"{receiver.base}/r", client)
        for i in range(PER_MINUTE):
            assert (await robot.send(note(*_notification(100 + i)))).ok
        burst = [_notification(i) for i in range(10)]  # a burst of different alerts, past the quota
        held = [await robot.send(note(*n)) for n in burst]
        assert all(not o.ok and o.retryable and o.retry_after_s for o in held)
        assert len(receiver.requests) == PER_MINUTE
        # A minute later, the first retry carries the others that fit: one message for many.
        robot._sent.clear()
        outcomes = {e: await robot.send(note(e, p)) for e, p in burst}
        assert all(o.ok for o in outcomes.values()), outcomes
        grouped = receiver.requests[PER_MINUTE:]
        assert len(grouped) == -(-10 // per_message)  # ceil: as many messages as the size limit needs
        texts = [r.json["markdown"].get("text") or r.json["markdown"]["content"] for r in grouped]
        assert all(len(t.encode()) <= robot.max_bytes for t in texts)
        carried = [line for t in texts for line in t.splitlines() if line.startswith('{"event_id"')]
        assert sorted(orjson.loads(line)["event_id"] for line in carried) == sorted(e for e, _p in burst)
        assert "合并发送" in texts[0] and "sd-0：烟感报警" in texts[0]


async def test_mqtt_channel_publishes_to_the_community_alert_topic(mosquitto: Mosquitto, unique_prefix: str) -> None:
    got: list[tuple[str, bytes]] = []
    arrived = threading.Event()
    sub = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"sub-{unique_prefix}")

    def on_message(_c: paho.Client, _u: object, m: paho.MQTTMessage) -> None:
        got.append((m.topic, m.payload))
        arrived.set()

    subscribed = threading.Event()
    sub.on_message = on_message
    sub.on_subscribe = lambda *_a: subscribed.set()
    sub.connect(mosquitto.host, mosquitto.port)
    sub.subscribe(f"{unique_prefix}/+/alerts", qos=1)
    sub.loop_start()
    assert subscribed.wait(5)
    publisher = MqttPublisher(mosquitto.url, f"pub-{unique_prefix}")
    publisher.start()
    try:
        channel = MqttChannel(publisher, unique_prefix)
        for _ in range(50):
            outcome = await channel.send(note("e1", NOTIFICATION))
            if outcome.ok:
                break
            await __import__("asyncio").sleep(0.1)
        assert outcome.ok
        assert arrived.wait(5)
        assert got == [(f"{unique_prefix}/yicun/alerts", NOTIFICATION)]
    finally:
        publisher.stop()
        sub.loop_stop()
        sub.disconnect()


@pytest.mark.parametrize("previous", [None, "old-secret"])
async def test_a_webhook_in_rotation_signs_with_the_new_secret_and_the_previous_one(receiver: Receiver,
                                                                                    previous: str | None) -> None:
    receiver.script["/hook"] = [Answer()]
    async with httpx.AsyncClient(timeout=5) as client:
        hook = Webhook(f"{receiver.base}/hook", "new-secret", client, previous_secret=previous)
        assert (await hook.send(note("e1", NOTIFICATION))).ok
    (req,) = receiver.requests
    assert verify("new-secret", req) and not verify("old-secret", req)
    if previous is None:
        assert "X-CB-Signature-Previous" not in req.headers
    else:
        # A receiver that still holds the old secret checks the previous signature the same way.
        ts = req.headers["X-CB-Timestamp"]
        want = "sha256=" + hmac.new(b"old-secret", ts.encode() + b"." + req.body, hashlib.sha256).hexdigest()
        assert req.headers["X-CB-Signature-Previous"] == want


async def test_the_mqtt_publisher_reconnects_after_the_broker_comes_back(mosquitto_factory: MosquittoFactory,
                                                                          unique_prefix: str) -> None:
    import asyncio

    broker = mosquitto_factory(start=False)  # down when the service starts
    publisher = MqttPublisher(broker.url, f"pub-{unique_prefix}")
    channel = MqttChannel(publisher, unique_prefix, timeout_s=2)

    async def publish_within(seconds: float) -> bool:
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            if (await channel.send(note("e1", NOTIFICATION))).ok:
                return True
            await asyncio.sleep(0.1)
        return False

    try:
        outcome = await channel.send(note("e1", NOTIFICATION))
        assert not outcome.ok and outcome.retryable
        await asyncio.sleep(1.0)
        assert publisher.last_error is not None and "cannot connect" in publisher.last_error
        broker.start()
        # The next try comes after the backoff (from 1 s, doubling; the attempts so far are few).
        assert await publish_within(10), publisher.last_error
        broker.restart(hard=True)
        assert await publish_within(10), publisher.last_error
    finally:
        publisher.stop()
    assert publisher._thread is not None and not publisher._thread.is_alive()
