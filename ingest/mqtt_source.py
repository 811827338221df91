"""The MQTT source: paho-mqtt 2.x with manual acknowledgement, bridged into asyncio.

paho runs its network loop in a thread of ours; messages cross into the event loop through a
deque and one wake-up per burst. paho keeps the session (connect, subscribe, keepalive, PUBACKs),
but its packet reader is replaced by `PacketReader`, which reads the socket in large chunks and
decodes PUBLISH packets itself (see there for why). A message is acknowledged (PUBACK) only when
the pipeline says its batch is durable, in the order messages arrived, and only on the connection
that delivered it: after a reconnect the broker redelivers whatever we had not acknowledged
(persistent session, `clean_start=False`). In-flight messages are bounded by Receive Maximum (MQTT 5).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from kernel.backoff import Backoff
from kernel.settings import MqttSettings
from kernel.topics import subscriptions

log = logging.getLogger("cbrain.mqtt")

PUBACK = 0x40
_PUBACK = struct.Struct("!BBH")


@dataclass(slots=True)
class Delivery:
    """One message as the broker delivered it; (generation, mid, qos) identify its acknowledgement."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int


AckToken = tuple[int, int, int]  # generation, mid, qos

PUBLISH = 0x30
# One read takes whatever the kernel holds, up to this; at a light load that is one message.
READ_CHUNK = 65536
# A read of at least this many bytes, or a read within GATHER_S of the one before, means messages
# are coming faster than one at a time: the network thread then lets the next ones gather in the
# socket for GATHER_S before it reads again. Each read wakes the thread (paho's loop: select, read,
# write, keepalive), takes the GIL from the event loop and signals it; at 15,000 messages/s unpaced
# reads came to ~5 µs of CPU a message, and a steady 5,000/s arriving a few at a time woke the thread
# for nearly every message. A reading waits at most GATHER_S more (under load the commit's flush
# interval is 25 ms); a light load, its reads further apart than GATHER_S, never waits.
GATHER_BYTES = 8192
GATHER_S = 0.002
_MAX_LENGTH_BYTES = 4  # a remaining length takes at most four bytes (MQTT 3.1.1 / 5, 2.2.3)


class PacketReader:
    """Stands in for paho's `Client._packet_read` on one connection.

    paho reads a packet with one recv() for the command byte, one per remaining-length byte and
    one for the rest, and its loop reads one packet per select(); each recv() releases and retakes
    the GIL, which the event loop thread is waiting for. It then builds an MQTTMessage with MQTT 5
    Properties, matches the topic against per-topic callbacks and takes three locks. That was
    ~45 µs of CPU per message here. This reader takes one recv() per chunk, splits it into
    packets, and turns each QoS 0/1 PUBLISH without MQTT 5 properties into a Delivery (~1 µs);
    every other packet (CONNACK, SUBACK, PINGRESP, DISCONNECT) and any other PUBLISH (QoS 2, with
    properties, an empty topic, a malformed one) goes to paho's own handler, as paho would have read
    it, so what reaches the pipeline is exactly what paho would have delivered.
    """

    __slots__ = ("_client", "_deliver", "_generation", "_rest", "_v5", "last_read")

    def __init__(self, client: paho.Client, v5: bool, generation: int,
                 deliver: Callable[[list[Delivery]], None]) -> None:
        self._client = client
        self._v5 = v5
        self._generation = generation
        self._deliver = deliver
        self._rest = b""  # the start of a packet the last chunk ended in
        self.last_read = 0  # bytes the last read took

    def __call__(self) -> MQTTErrorCode:
        client = self._client
        try:
            data = client._sock_recv(READ_CHUNK)
        except BlockingIOError:
            return MQTTErrorCode.MQTT_ERR_AGAIN
        except OSError as exc:  # TimeoutError and ConnectionError included, as in paho
            log.debug("MQTT: failed to receive on socket: %s", exc)
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        if not data:
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        self.last_read = len(data)
        with client._msgtime_mutex:  # paho's keepalive watches the time bytes last came in
            client._last_bytes_received = paho.time_func()
        buf = self._rest + data if self._rest else data
        n = len(buf)
        pos = 0
        out: list[Delivery] = []
        generation, v5 = self._generation, self._v5
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        while pos < n:
            # fixed header: command byte, remaining length (variable byte integer)
            i = pos + 1
            length = 0
            shift = 0
            while i < n:
                byte = buf[i]
                i += 1
                length |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
                if shift == 7 * _MAX_LENGTH_BYTES:
                    self._flush(out)
                    return MQTTErrorCode.MQTT_ERR_PROTOCOL
            else:
                break  # the remaining length is not complete yet
            end = i + length
            if end > n:
                break  # nor is the packet
            command = buf[pos]
            qos = (command >> 1) & 3
            if command & 0xF0 == PUBLISH and qos < 2 and length >= 2:
                topic_end = i + 2 + ((buf[i] << 8) | buf[i + 1])
                if qos:
                    mid = (buf[topic_end] << 8) | buf[topic_end + 1] if topic_end + 2 <= end else -1
                    start = topic_end + 2
                else:
                    mid, start = 0, topic_end
                if v5:
                    # No properties is the usual case; paho's reader decodes and checks any others.
                    start = start + 1 if start < end and buf[start] == 0 else end + 1
                if topic_end > i + 2 and start <= end and (mid > 0 or qos == 0):
                    # The raw topic: a device may send bytes that are not UTF-8, and the decoder rejects them.
                    out.append(Delivery(buf[i + 2:topic_end].decode("utf-8", errors="replace"), buf[start:end],
                                        mid, qos, generation))
                    pos = end
                    continue
            self._flush(out)
            out = []
            rc = self._paho_handle(command, buf[i:end])
            pos = end
            if rc or client._sock is None:
                return rc
        self._rest = buf[pos:]
        self._flush(out)
        return rc

    def _flush(self, out: list[Delivery]) -> None:
        if out:
            self._deliver(out)

    def _paho_handle(self, command: int, body: bytes) -> MQTTErrorCode:
        """One whole packet through paho's handler, with paho's reader state as it would have left it."""
        client = self._client
        client._in_packet = {"command": command, "have_remaining": 1, "remaining_count": [], "remaining_mult": 1,
                             "remaining_length": len(body), "packet": bytearray(body), "to_process": 0, "pos": 0}
        try:
            rc: MQTTErrorCode = client._packet_handle()
        except MalformedPacket as exc:
            log.warning("MQTT: malformed packet from the broker: %s", exc)
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        client._in_packet = {"command": 0, "have_remaining": 0, "remaining_count": [], "remaining_mult": 1,
                             "remaining_length": 0, "packet": bytearray(b""), "to_process": 0, "pos": 0}
        return rc


def broker_address(url: str) -> tuple[str, int, bool]:
    """The broker's host, port and whether it speaks TLS, from the mqtt url."""
    parts = urlsplit(url)
    tls = parts.scheme in ("mqtts", "ssl")
    return parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883), tls


class MqttSource:
    """Receives device messages; `drain()` them in the event loop, `ack()` them when durable.

    `on_session` is told in the event loop at every accepted connect: (session present, whether
    the service asked for one).
    """

    def __init__(self, settings: MqttSettings, *, client_id: str | None = None,
                 on_session: Callable[[bool, bool], None] | None = None, extra_topics: list[str] | None = None) -> None:
        self.settings = settings
        # The topics of other systems' devices on this broker (ingest.sources), besides the prefix's.
        self.extra_topics = list(extra_topics or [])
        self.client_id = client_id or settings.client_id
        self.host, self.port, self.tls = broker_address(settings.url)
        self.username, self.password = settings.credentials()
        self.connected = False
        self.subscribed = False
        self.last_error: str | None = "not connected yet"
        self.connects = 0
        self.protocol = "3.1.1" if settings.protocol == "3.1.1" else "5"
        self._inbox: deque[Delivery] = deque()
        self._signalled = False
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._generation = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: paho.Client | None = None
        self._connack_seen = False
        self.on_state: Callable[[bool, str | None], None] | None = None
        self.on_session = on_session
        self.session_present: bool | None = None

    # ---- event-loop side -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the network thread; deliveries wake the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="mqtt-source", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Disconnect (keeping the session on the broker) and join the thread."""
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10)

    async def wait(self) -> None:
        """Return once deliveries are waiting."""
        assert self._wake is not None
        if not self._inbox:
            await self._wake.wait()
        self._wake.clear()

    def drain(self, limit: int) -> list[Delivery]:
        """Take up to limit waiting deliveries, oldest first."""
        self._signalled = False
        inbox = self._inbox
        n = min(limit, len(inbox))
        out = [inbox.popleft() for _ in range(n)]
        if inbox:
            self._signalled = True
            assert self._wake is not None
            self._wake.set()
        return out

    def put(self, deliveries: list[Delivery]) -> None:
        """Deliveries from elsewhere (a platform's HTTP push), taken in turn with the broker's; their
        tokens' generation is never this source's, so ack() leaves them to whoever put them."""
        self._received(deliveries)

    def pending(self) -> int:
        """Deliveries received but not yet drained."""
        return len(self._inbox)

    def ack(self, tokens: list[AckToken]) -> int:
        """Acknowledge deliveries in order; those of an earlier connection are skipped (redelivered)."""
        with self._lock:
            client = self._client
            if client is None or not self.connected:
                return 0
            generation = self._generation
            mine = [(mid, qos) for gen, mid, qos in tokens if gen == generation and qos > 0]
            if not mine:
                return 0
            queue_packet = getattr(client, "_packet_queue", None)
            if queue_packet is not None and all(qos == 1 for _, qos in mine):
                # One write for the whole batch. paho's ack() costs a wake-up and a socket send per
                # message on the calling thread, which dominated ingest at high rates; these are the
                # same PUBACK bytes it would build (fixed header, remaining length 2, packet id).
                queue_packet(PUBACK, b"".join(map(_PUBACK.pack, repeat(PUBACK), repeat(2), (m for m, _ in mine))),
                             0, 1)
            else:
                for mid, qos in mine:
                    client.ack(mid, qos)
            return len(mine)

    # ---- network thread --------------------------------------------------------------------------

    def _new_client(self) -> paho.Client:
        v5 = self.protocol == "5"
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else False,
            manual_ack=True,
        )
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            # The CA of the broker's certificate (the system's CAs without one); a client certificate
            # when the broker asks for one (require_certificate true).
            client.tls_set(ca_certs=self.settings.ca_file, certfile=self.settings.cert_file,
                           keyfile=self.settings.key_file)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        # Deliveries carry the generation of the connection they came on (see ack()).
        client._packet_read = PacketReader(client, v5, self._generation, self._received)  # type: ignore[method-assign]
        return client

    def _run(self) -> None:
        backoff = Backoff(self.settings.reconnect_min_s, self.settings.reconnect_max_s)
        while not self._stopping.is_set():
            client = self._new_client()
            self._connack_seen = False
            try:
                if self.protocol == "5":
                    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                    props.SessionExpiryInterval = self.settings.session_expiry_s
                    props.ReceiveMaximum = self.settings.receive_maximum
                    rc = client.connect(self.host, self.port, self.settings.keepalive_s,
                                        clean_start=False, properties=props)
                else:
                    rc = client.connect(self.host, self.port, self.settings.keepalive_s)
                with self._lock:
                    self._client = client
                reader = client._packet_read
                assert isinstance(reader, PacketReader)
                last_read_at = 0.0
                while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and not self._stopping.is_set():
                    rc = client.loop(timeout=0.2)
                    if reader.last_read:
                        now = time.monotonic()
                        if reader.last_read >= GATHER_BYTES or now - last_read_at < GATHER_S:
                            time.sleep(GATHER_S)  # under load: let the next messages gather
                            now = time.monotonic()
                        reader.last_read = 0
                        last_read_at = now
                if self._stopping.is_set():
                    client.disconnect()
                    client.loop(timeout=0.5)
            except (OSError, ValueError, paho.WebsocketConnectionError) as exc:
                self._set_state(False, f"cannot connect to {self.host}:{self.port}: {exc}")
            self._lost()
            if self._stopping.is_set():
                break
            if self.connects == 0 and not self._connack_seen and self.settings.protocol == "auto":
                # A broker that closes an MQTT 5 CONNECT may speak only 3.1.1; try the other one next.
                self.protocol = "3.1.1" if self.protocol == "5" else "5"
            if self._connack_seen and self.connects:
                backoff.reset()
            self._stopping.wait(backoff.next())

    def _lost(self) -> None:
        with self._lock:
            self._generation += 1
            was = self.connected
            self.connected = False
            self.subscribed = False
        if was and not self._stopping.is_set():
            log.warning("MQTT connection to %s:%s lost; reconnecting", self.host, self.port)

    def _set_state(self, connected: bool, error: str | None) -> None:
        self.last_error = error
        if self.on_state is not None:
            self.on_state(connected, error)

    def _on_connect(self, client: paho.Client, _ud: Any, flags: Any, reason: Any, _props: Any) -> None:
        self._connack_seen = True
        if reason.is_failure:
            self._set_state(False, f"broker refused the connection: {reason}")
            log.error("MQTT broker %s:%s refused the connection: %s", self.host, self.port, reason)
            return
        with self._lock:
            self.connected = True
        self.connects += 1
        self.session_present = bool(flags.session_present)
        log.info("MQTT connected to %s:%s (MQTT %s, session present: %s)",
                 self.host, self.port, self.protocol, flags.session_present)
        if self.on_session is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self.on_session, self.session_present, self.asks_for_session)
        topics = subscriptions(self.settings.prefix, self.settings.communities) + self.extra_topics
        if self.protocol == "5":
            opts = SubscribeOptions(qos=1, noLocal=True, retainHandling=SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE)
            client.subscribe([(self._shared(t), opts) for t in topics])
        else:
            client.subscribe([(self._shared(t), 1) for t in topics])

    @property
    def asks_for_session(self) -> bool:
        """Whether the service asks the broker to keep its session (clean_session false, or a session expiry)."""
        return self.protocol == "3.1.1" or self.settings.session_expiry_s > 0

    def _shared(self, topic: str) -> str:
        group = self.settings.shared_group
        return f"$share/{group}/{topic}" if group else topic

    def _on_subscribe(self, _c: paho.Client, _ud: Any, _mid: int, reasons: Any, _props: Any) -> None:
        failed = [r for r in reasons if getattr(r, "is_failure", False)]
        if failed:
            self._set_state(False, f"subscription refused: {failed[0]}")
            log.error("MQTT subscription refused: %s", failed[0])
            return
        self.subscribed = True
        self._set_state(True, None)

    def _on_disconnect(self, _c: paho.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if not self._stopping.is_set():
            self._set_state(False, f"disconnected: {reason}")

    def _on_message(self, _c: paho.Client, _ud: Any, msg: paho.MQTTMessage) -> None:
        # Only what PacketReader leaves to paho comes this way (e.g. a QoS 2 message).
        topic = msg._topic.decode("utf-8", errors="replace")
        self._received([Delivery(topic, bytes(msg.payload), msg.mid, msg.qos, self._generation)])

    def _received(self, deliveries: list[Delivery]) -> None:
        self._inbox.extend(deliveries)
        if not self._signalled:
            self._signalled = True
            assert self._loop is not None and self._wake is not None
            self._loop.call_soon_threadsafe(self._wake.set)
