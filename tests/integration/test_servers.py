"""The server fixtures start real, usable, restartable Mosquitto and influxd processes."""

from __future__ import annotations

import queue
import re
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.client import ConnectFlags, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.servers import InfluxD, InfluxDFactory, Mosquitto, MosquittoFactory, ServerError

pytestmark = pytest.mark.integration

TIMEOUT = 10.0


class Subscriber:
    """An MQTT v5 client that records received messages and its last CONNACK."""

    def __init__(self, client_id: str = "") -> None:
        """Create the paho client; nothing is connected yet."""
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
        )
        self.messages: queue.Queue[MQTTMessage] = queue.Queue()
        self.session_present: bool | None = None
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        """Record the CONNACK."""
        if not reason_code.is_failure:
            self.session_present = flags.session_present
            self._connected.set()

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        """Record the SUBACK."""
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: MQTTMessage) -> None:
        """Queue an incoming message."""
        self.messages.put(message)

    def connect(self, broker: Mosquitto, *, clean_start: bool = True, session_expiry: int = 0) -> None:
        """Connect, start the network thread and wait for the CONNACK."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = session_expiry
        self._connected.clear()
        self.client.connect(broker.host, broker.port, clean_start=clean_start, properties=props)
        self.client.loop_start()
        assert self._connected.wait(TIMEOUT), "no CONNACK"

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe and wait for the SUBACK."""
        self._subscribed.clear()
        self.client.subscribe(topic, qos=qos)
        assert self._subscribed.wait(TIMEOUT), "no SUBACK"

    def disconnect(self) -> None:
        """Disconnect cleanly and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()

    def receive(self, count: int, timeout: float = TIMEOUT) -> list[MQTTMessage]:
        """Return the next count messages; fail if they do not arrive in time."""
        deadline = time.monotonic() + timeout
        received: list[MQTTMessage] = []
        while len(received) < count:
            remaining = deadline - time.monotonic()
            try:
                received.append(self.messages.get(timeout=max(remaining, 0.001)))
            except queue.Empty:
                pytest.fail(f"received {len(received)} of {count} messages within {timeout} s")
        return received

    def assert_silent(self, seconds: float) -> None:
        """Fail if any message arrives within the given time."""
        try:
            message = self.messages.get(timeout=seconds)
        except queue.Empty:
            return
        pytest.fail(f"unexpected message on {message.topic}: {message.payload!r}")


@contextmanager
def subscriber(broker: Mosquitto, client_id: str = "", **connect_args: Any) -> Iterator[Subscriber]:
    """Yield a connected Subscriber that is disconnected afterwards."""
    sub = Subscriber(client_id)
    sub.connect(broker, **connect_args)
    try:
        yield sub
    finally:
        sub.disconnect()


def publish_all(broker: Mosquitto, topic: str, payloads: list[bytes], qos: int = 1) -> None:
    """Publish payloads with a fresh MQTT v5 client and wait until each is acknowledged."""
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=qos) for payload in payloads]
        for info in infos:
            info.wait_for_publish(TIMEOUT)
            assert info.is_published(), f"publish of mid {info.mid} not acknowledged"
    finally:
        client.disconnect()
        client.loop_stop()


def test_unique_prefix_is_a_valid_topic_segment(unique_prefix: str) -> None:
    """The prefix matches the topic-segment grammar used by the project."""
    assert re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", unique_prefix)
    assert unique_prefix.startswith("cbt")


def test_mosquitto_listens_on_loopback(mosquitto: Mosquitto) -> None:
    """The session broker is running and its URL names its loopback port."""
    assert mosquitto.running
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"
    with socket.create_connection((mosquitto.host, mosquitto.port), timeout=TIMEOUT):
        pass


def test_qos1_publish_reaches_subscriber(mosquitto: Mosquitto, unique_prefix: str) -> None:
    """A QoS 1 message published by one client is delivered to another."""
    topic = f"{unique_prefix}/sensor/temp"
    with subscriber(mosquitto) as sub:
        sub.subscribe(f"{unique_prefix}/#")
        publish_all(mosquitto, topic, [b"21.5"])
        (message,) = sub.receive(1)
        sub.assert_silent(0.2)
    assert message.topic == topic
    assert message.payload == b"21.5"
    assert message.qos == 1


def test_persistent_session_survives_broker_restart(
    mosquitto_factory: MosquittoFactory, unique_prefix: str
) -> None:
    """Messages queued for an offline persistent session are delivered after a broker restart."""
    broker = mosquitto_factory()
    client_id = f"{unique_prefix}-sub"
    with subscriber(broker, client_id, clean_start=False, session_expiry=3600) as sub:
        sub.subscribe(f"{unique_prefix}/#")

    payloads = [f"m{i}".encode() for i in range(200)]
    publish_all(broker, f"{unique_prefix}/queued", payloads)
    port = broker.port
    broker.restart()
    assert broker.port == port

    with subscriber(broker, client_id, clean_start=False, session_expiry=3600) as sub:
        assert sub.session_present is True
        received = sub.receive(len(payloads))
        sub.assert_silent(0.2)
    assert [m.payload for m in received] == payloads


def test_autosaved_session_survives_broker_kill(
    mosquitto_factory: MosquittoFactory, unique_prefix: str
) -> None:
    """After an autosave (every second), queued messages survive even a SIGKILL."""
    broker = mosquitto_factory()
    client_id = f"{unique_prefix}-sub"
    with subscriber(broker, client_id, clean_start=False, session_expiry=3600) as sub:
        sub.subscribe(f"{unique_prefix}/#")
    payloads = [f"m{i}".encode() for i in range(20)]
    publish_all(broker, f"{unique_prefix}/queued", payloads)
    time.sleep(2.5)
    broker.restart(hard=True)
    with subscriber(broker, client_id, clean_start=False, session_expiry=3600) as sub:
        assert sub.session_present is True
        received = sub.receive(len(payloads))
    assert [m.payload for m in received] == payloads


def test_clean_start_discards_queued_messages(
    mosquitto_factory: MosquittoFactory, unique_prefix: str
) -> None:
    """Control case: a clean-start reconnect gets neither the session nor its queue."""
    broker = mosquitto_factory()
    client_id = f"{unique_prefix}-sub"
    with subscriber(broker, client_id, clean_start=False, session_expiry=3600) as sub:
        sub.subscribe(f"{unique_prefix}/#")
    publish_all(broker, f"{unique_prefix}/queued", [b"lost"])
    broker.restart()
    with subscriber(broker, client_id, clean_start=True) as sub:
        assert sub.session_present is False
        sub.assert_silent(0.5)


def test_stopped_broker_refuses_connections(mosquitto_factory: MosquittoFactory) -> None:
    """stop() really ends the broker, kill() too, and start() brings it back on the same port."""
    broker = mosquitto_factory()
    broker.stop()
    assert not broker.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((broker.host, broker.port), timeout=TIMEOUT)
    broker.start()
    broker.kill()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((broker.host, broker.port), timeout=TIMEOUT)
    broker.start()
    assert broker.is_ready()


def test_bad_mosquitto_config_fails_with_log(mosquitto_factory: MosquittoFactory) -> None:
    """A broker that cannot start raises ServerError carrying its output."""
    with pytest.raises(ServerError, match="no_such_option"):
        mosquitto_factory(extra_conf="no_such_option 1")


def test_influxd_ping(influxdb: InfluxD) -> None:
    """The session influxd answers /ping with 204 on loopback."""
    assert influxdb.url == f"http://127.0.0.1:{influxdb.port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{influxdb.url}/ping", timeout=TIMEOUT) as response:
        assert response.status == 204


def test_influx_write_and_read_back(influxdb: InfluxD, influx_db: str) -> None:
    """A line-protocol point written over /write comes back from rows()."""
    assert influx_db in influxdb.databases()
    assert influxdb.rows("climate", influx_db) == []
    ts = 1_700_000_000_123_456_789
    influxdb.write(influx_db, f"climate,site=s1,sensor=t1 temp=21.5,ok=true,n=3i {ts}")
    rows = influxdb.rows("climate", influx_db)
    assert rows == [{"time": ts, "site": "s1", "sensor": "t1", "temp": 21.5, "ok": True, "n": 3}]
    assert influxdb.count("climate", influx_db) == 1


def test_influx_query_errors_raise(influxdb: InfluxD) -> None:
    """Query errors surface as ServerError instead of an empty result."""
    with pytest.raises(ServerError, match="database not found"):
        influxdb.rows("climate", "cbt_no_such_database")
    with pytest.raises(ServerError):
        influxdb.query("SELEKT nonsense")


@pytest.mark.parametrize("hard", [False, True], ids=["stop", "kill"])
def test_influxd_restart_keeps_data(influxd_factory: InfluxDFactory, hard: bool) -> None:
    """Written points survive a clean stop or a SIGKILL, on the same HTTP port."""
    server = influxd_factory()
    server.create_database("db")
    lines = [f"m,k=v x={i}i {1_700_000_000_000_000_000 + i}" for i in range(1000)]
    server.write("db", lines)
    port = server.port
    server.restart(hard=hard)
    assert server.port == port
    rows = server.rows("m", "db")
    assert [row["x"] for row in rows] == list(range(1000))
