"""The MQTT source on the event loop, against a real broker: a fault while reading is said and the
connection made again, and what was not acknowledged comes again."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

import orjson
import pytest

from ingest.mqtt_source import MqttSource
from kernel.settings import MqttSettings
from tests.servers import Mosquitto
from tests.service import DevicePublisher, telemetry

pytestmark = pytest.mark.integration


async def until(check: Any, seconds: float = 15.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def take(source: MqttSource, n: int) -> list[bytes]:
    got: list[Any] = []
    while len(got) < n:
        await asyncio.wait_for(source.wait(), 15)
        got += source.drain(100)
    return got


async def test_a_fault_while_reading_is_logged_and_the_connection_made_again(
        mosquitto: Mosquitto, unique_prefix: str, caplog: pytest.LogCaptureFixture) -> None:
    source = MqttSource(MqttSettings(url=mosquitto.url, prefix=unique_prefix, client_id=f"t-{secrets.token_hex(4)}"))
    source.start()
    publisher = DevicePublisher(mosquitto.url, f"dev-{secrets.token_hex(4)}")
    topic = telemetry(unique_prefix, "c", "ebike_charger", "eb-1")
    try:
        await until(lambda: source.subscribed)
        publisher.publish(topic, b'{"seq": 1}')
        first = await take(source, 1)
        assert [d.payload for d in first] == [b'{"seq": 1}']

        client = source._client
        assert client is not None
        reads = client.loop_read

        def fault(*_args: Any) -> Any:
            client.loop_read = reads  # type: ignore[method-assign]
            raise RuntimeError("a fault in the reader")

        client.loop_read = fault  # type: ignore[method-assign]
        with caplog.at_level(logging.ERROR, logger="cbrain.mqtt"):
            publisher.publish(topic, b'{"seq": 2}')
            await until(lambda: source.connects == 2 and source.subscribed)
        assert "reading from" in caplog.text and "a fault in the reader" in caplog.text
        # Neither was acknowledged: the broker hands both on again on the new connection, in order.
        again = await take(source, 2)
        assert [d.payload for d in again] == [b'{"seq": 1}', b'{"seq": 2}']
        assert source.ack([(d.generation, d.mid, d.qos) for d in first]) == 0  # (an earlier connection's)
        assert source.ack([(d.generation, d.mid, d.qos) for d in again]) == 2
    finally:
        publisher.close()
        await source.stop()


async def test_after_a_burst_read_on_the_timer_a_lone_message_still_comes_at_once(
        mosquitto: Mosquitto, unique_prefix: str) -> None:
    """Under load the socket is read on a timer, unwatched; once a timed read finds nothing the
    socket is watched again, so a message after a silence is read as soon as it comes (not at the
    next burst, nor never)."""
    source = MqttSource(MqttSettings(url=mosquitto.url, prefix=unique_prefix, client_id=f"t-{secrets.token_hex(4)}"))
    source.start()
    publisher = DevicePublisher(mosquitto.url, f"dev-{secrets.token_hex(4)}")
    topic = telemetry(unique_prefix, "c", "ebike_charger", "eb-1")
    filler = "x" * 200
    try:
        await until(lambda: source.subscribed)
        for rounds in range(3):
            for seq in range(400):  # ~100 KB at once: reads of 8 KB and more, so the timer reads the rest
                publisher.publish(topic, {"seq": seq, "pad": filler})
            got = await take(source, 400)
            assert [orjson.loads(d.payload)["seq"] for d in got] == list(range(400))  # all of it, in order
            await asyncio.sleep(0.3)  # silence: the timed read finds nothing, and the socket is watched
            publisher.publish(topic, {"seq": 1000 + rounds})
            sent = asyncio.get_running_loop().time()
            lone = await take(source, 1)
            waited = asyncio.get_running_loop().time() - sent
            assert [d.payload for d in lone] == [f'{{"seq":{1000 + rounds}}}'.encode()]
            assert waited < 2.0, f"a lone message after a burst took {waited:.3f} s"
    finally:
        publisher.close()
        await source.stop()
