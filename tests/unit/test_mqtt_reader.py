"""PacketReader, the MQTT source's replacement for paho's packet reader: it must hand on exactly what
paho's own reader would, whatever the chunks the socket returns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from device_sim.mqtt import encode_varint
from ingest.mqtt_packets import AckToken, Delivery, PacketReader
from ingest.mqtt_source import MqttSource
from kernel.settings import MqttSettings

Message = tuple[str, bytes, int, int]  # topic, payload, mid, qos


def publish(topic: bytes, payload: bytes, mid: int, qos: int, *, v5: bool, props: bytes = b"\x00",
            flags: int = 0) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic + (mid.to_bytes(2, "big") if qos else b"")
    body += (props if v5 else b"") + payload
    return bytes([0x30 | (qos << 1) | flags]) + encode_varint(len(body)) + body


def properties(user: list[tuple[str, str]], content_type: str | None) -> bytes:
    p = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if user:
        p.UserProperty = user
    if content_type is not None:
        p.ContentType = content_type
    return bytes(p.pack())  # type: ignore[no-untyped-call]


class Feed:
    """Stands in for the socket: hands out the stream in the given chunk sizes, then would block."""

    def __init__(self, stream: bytes, sizes: list[int]) -> None:
        self.stream = stream
        self.sizes = sizes
        self.pos = 0

    def recv(self, n: int) -> bytes:
        if self.pos >= len(self.stream):
            raise BlockingIOError
        size = self.sizes[self.pos % len(self.sizes)] if self.sizes else n
        got = self.stream[self.pos:self.pos + min(n, max(1, size))]
        self.pos += len(got)
        return got


class Unwritable:
    """A connected socket that never takes a write (what paho sends is of no interest here)."""

    def send(self, _data: bytes) -> int:
        raise BlockingIOError

    def close(self) -> None:
        pass


def client(v5: bool) -> paho.Client:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="t", manual_ack=True,
                    protocol=paho.MQTTv5 if v5 else paho.MQTTv311)
    c._sock = Unwritable()  # type: ignore[assignment]
    return c


def read_with(stream: bytes, sizes: list[int], v5: bool,
              setup: Callable[[paho.Client], None] | None = None) -> tuple[list[Message], MQTTErrorCode, paho.Client]:
    """Everything PacketReader hands on (and what it left to paho's on_message) for a stream."""
    c = client(v5)
    feed = Feed(stream, sizes)
    c._sock_recv = feed.recv  # type: ignore[method-assign,assignment]
    got: list[Message] = []

    def deliver(ds: list[Delivery]) -> None:
        got.extend((d.topic, d.payload, d.mid, d.qos) for d in ds)

    def on_message(_c: Any, _u: Any, m: paho.MQTTMessage) -> None:
        got.append((m._topic.decode("utf-8", errors="replace"), bytes(m.payload), m.mid, m.qos))

    c.on_message = on_message
    if setup is not None:
        setup(c)
    reader = PacketReader(c, v5, 7, deliver)
    rc = MQTTErrorCode.MQTT_ERR_SUCCESS
    for _ in range(len(stream) + 2):
        rc = reader()
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            break
    return got, rc, c


def read_with_paho(stream: bytes, sizes: list[int], v5: bool) -> list[Message]:
    """The same stream through paho's own reader."""
    c = client(v5)
    feed = Feed(stream, sizes)
    c._sock_recv = feed.recv  # type: ignore[method-assign,assignment]
    got: list[Message] = []
    c.on_message = lambda _c, _u, m: got.append(
        (m._topic.decode("utf-8", errors="replace"), bytes(m.payload), m.mid, m.qos))
    for _ in range(len(stream) + 2):
        if c._packet_read() != MQTTErrorCode.MQTT_ERR_SUCCESS:
            break
    return got


topics = st.binary(min_size=1, max_size=300).filter(lambda t: b"\x00" not in t)
# valid MQTT UTF-8 strings: no NUL, no surrogates, no U+FEFF (paho refuses a packet with one:
# MQTT-1.5.4-3, so neither reader would hand it on)
texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00\ufeff"), max_size=6)
messages = st.lists(st.tuples(topics, st.binary(max_size=20_000), st.integers(1, 65535), st.integers(0, 1),
                              st.lists(st.tuples(texts, texts), max_size=2), st.one_of(st.none(), texts),
                              st.integers(0, 1)),
                    min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(messages, st.lists(st.integers(1, 70_000), max_size=5), st.booleans())
def test_same_messages_as_paho_in_any_chunks(msgs: list[Any], sizes: list[int], v5: bool) -> None:
    stream = b"".join(publish(t, p, mid, qos, v5=v5, props=properties(user, ct), flags=retain)
                      for t, p, mid, qos, user, ct, retain in msgs)
    got, rc, _c = read_with(stream, sizes, v5)
    expected = read_with_paho(stream, sizes, v5)
    assert got == expected
    assert [(m[1], m[2] if m[3] else 0, m[3]) for m in got] == [(p, mid if qos else 0, qos)
                                                                 for _t, p, mid, qos, *_ in msgs]
    assert rc == MQTTErrorCode.MQTT_ERR_AGAIN


def test_deliveries_carry_the_connection_generation() -> None:
    c = client(True)
    c._sock_recv = Feed(publish(b"cb/a/b/c/telemetry", b"{}", 9, 1, v5=True), []).recv  # type: ignore[method-assign,assignment]
    got: list[Delivery] = []
    assert PacketReader(c, True, 42, got.extend)() == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert got == [Delivery("cb/a/b/c/telemetry", b"{}", 9, 1, 42)]


def test_other_packets_go_to_paho_in_order() -> None:
    first = publish(b"t/1", b"a", 1, 1, v5=False)
    second = publish(b"t/2", b"b", 2, 1, v5=False)
    pingresp = b"\xd0\x00"

    def waiting_for_ping(c: paho.Client) -> None:
        c._ping_t = 123.0

    got, rc, c = read_with(first + pingresp + second, [], False, waiting_for_ping)
    assert [m[0] for m in got] == ["t/1", "t/2"]
    assert c._ping_t == 0  # paho's PINGRESP handler ran
    assert rc == MQTTErrorCode.MQTT_ERR_AGAIN


def test_qos2_and_empty_topics_are_left_to_paho() -> None:
    qos2 = publish(b"t/q2", b"x", 5, 2, v5=True)
    got, _rc, c = read_with(qos2 + publish(b"t/1", b"y", 6, 1, v5=True), [], True)
    assert 5 in c._in_messages  # paho keeps a QoS 2 message until PUBREL, as it would have
    assert got == [("t/1", b"y", 6, 1)]
    _got, rc, _c = read_with(publish(b"", b"y", 6, 1, v5=False), [], False)
    assert rc == MQTTErrorCode.MQTT_ERR_PROTOCOL  # paho: "topic can't be empty in MQTTv3"


def test_invalid_utf8_topic_is_handed_on_replaced() -> None:
    got, _rc, _c = read_with(publish(b"cb/\xff/x", b"p", 3, 1, v5=False), [], False)
    assert got == [("cb/\ufffd/x", b"p", 3, 1)]


def test_a_remaining_length_of_five_bytes_is_a_protocol_error() -> None:
    _got, rc, _c = read_with(b"\x30\xff\xff\xff\xff\x01", [], False)
    assert rc == MQTTErrorCode.MQTT_ERR_PROTOCOL


def test_end_of_stream_is_a_lost_connection() -> None:
    c = client(False)
    c._sock_recv = lambda _n: b""  # type: ignore[method-assign,assignment]
    assert PacketReader(c, False, 0, lambda _d: None)() == MQTTErrorCode.MQTT_ERR_CONN_LOST


def test_a_socket_error_is_a_lost_connection() -> None:
    c = client(False)

    def broken(_n: int) -> bytes:
        raise ConnectionResetError(104, "Connection reset by peer")

    c._sock_recv = broken  # type: ignore[method-assign,assignment]
    assert PacketReader(c, False, 0, lambda _d: None)() == MQTTErrorCode.MQTT_ERR_CONN_LOST


class Capture:
    """A connected socket that takes every write whole and keeps it."""

    def __init__(self) -> None:
        self.sent = b""

    def send(self, data: bytes) -> int:
        self.sent += bytes(data)
        return len(data)

    def close(self) -> None:
        pass


def sent_by(ack: Callable[[paho.Client], None]) -> bytes:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="t", manual_ack=True, protocol=paho.MQTTv5)
    sock = Capture()
    c._sock = sock  # type: ignore[assignment]
    ack(c)
    return sock.sent


tokens = st.lists(st.tuples(st.integers(4, 6), st.integers(1, 65535), st.sampled_from([0, 1, 1, 1, 2])), max_size=40)


@settings(max_examples=300, deadline=None)
@given(tokens)
def test_acks_are_the_bytes_paho_would_send_for_this_connections_messages_in_order(batch: list[AckToken]) -> None:
    """One write for a batch of QoS 1 acknowledgements (packed as words), paho's own acks with a QoS 2
    message among them; either way exactly what paho's ack() of each message of this connection
    (generation 5) would have sent, in order, and how many."""
    source = MqttSource(MqttSettings())
    source.connected, source._generation = True, 5

    def batched(c: paho.Client) -> None:
        source._client = c
        assert source.ack(batch) == sum(1 for gen, _, qos in batch if gen == 5 and qos)

    def one_by_one(c: paho.Client) -> None:
        for gen, mid, qos in batch:
            if gen == 5 and qos:
                c.ack(mid, qos)

    assert sent_by(batched) == sent_by(one_by_one)
