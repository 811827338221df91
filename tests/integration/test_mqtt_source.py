"""The MQTT source on the event loop, against a real broker: a fault while reading is said and the
connection made again, and what was not acknowledged comes again."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

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
