"""The MQTT source: paho-mqtt 2.x with manual acknowledgement, bridged into asyncio.

The connection lives on the event loop (paho's "external loop" mode): the loop watches the socket,
and a read puts the deliveries straight into the inbox the pipeline drains, with no thread to hand
them over from (only the blocking connect runs in a worker thread). paho keeps the session
(connect, subscribe, keepalive, PUBACKs), but its packet reader is replaced by `PacketReader`,
which reads the socket in large chunks and decodes PUBLISH packets itself (see there for why).
A message is acknowledged (PUBACK) only when the pipeline says its batch is durable, in the order
messages arrived, and only on the connection that delivered it: after a reconnect the broker
redelivers whatever we had not acknowledged (persistent session, `clean_start=False`). In-flight
messages are bounded by Receive Maximum (MQTT 5).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from array import array
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest.mqtt_packets import AckToken, Delivery, PacketReader, SocketReads
from kernel.backoff import Backoff
from kernel.settings import MqttSettings
from kernel.topics import subscriptions

log = logging.getLogger("cbrain.mqtt")

PUBACK = 0x40
_PUBACK_HEAD = array("H", [PUBACK << 8 | 2, 0])  # a PUBACK's two words: 0x40 0x02, then the packet id
_LITTLE_ENDIAN = sys.byteorder == "little"

__all__ = ["AckToken", "Delivery", "MqttSource", "PacketReader", "SocketReads", "broker_address"]

# paho's keepalive (a PINGREQ when nothing was sent for keepalive_s, the connection closed when the
# broker stays silent past it) is looked at this often.
KEEPALIVE_CHECK_S = 1.0


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
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._generation = 0
        self._stopping = False
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: paho.Client | None = None
        self._connack_seen = False
        self.on_state: Callable[[bool, str | None], None] | None = None
        self.on_session = on_session
        self.session_present: bool | None = None

    # ---- the connection, on the event loop ---------------------------------------------------------

    def start(self) -> None:
        """Start connecting (and reconnecting) in the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task = self._loop.create_task(self._run(), name="mqtt-source")

    async def stop(self) -> None:
        """Disconnect (keeping the session on the broker) and end the connection's task."""
        self._stopping = True
        if self._stop is not None:
            self._stop.set()
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), 10)

    async def wait(self) -> None:
        """Return once deliveries are waiting."""
        assert self._wake is not None
        if not self._inbox:
            await self._wake.wait()
        self._wake.clear()

    def drain(self, limit: int) -> list[Delivery]:
        """Take up to limit waiting deliveries, oldest first."""
        inbox = self._inbox
        n = min(limit, len(inbox))
        out = [inbox.popleft() for _ in range(n)]
        if inbox:
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
        client = self._client
        if client is None or not self.connected:
            return 0
        generation = self._generation
        ones = [mid for gen, mid, qos in tokens if gen == generation and qos == 1]
        queue_packet = getattr(client, "_packet_queue", None)
        # (every token a QoS 1 message of this connection: the usual case, and no second look)
        qos2 = len(ones) < len(tokens) and any(gen == generation and qos == 2 for gen, _, qos in tokens)
        if queue_packet is not None and not qos2:
            if not ones:
                return 0
            # One write for the whole batch. paho's ack() builds and queues a packet per message;
            # these are the same PUBACK bytes it would build: fixed header and remaining length
            # (0x40 0x02), then the packet id, each a big-endian 16-bit word.
            words = _PUBACK_HEAD * len(ones)
            words[1::2] = array("H", ones)
            if _LITTLE_ENDIAN:
                words.byteswap()
            queue_packet(PUBACK, words.tobytes(), 0, 1)
            mine = len(ones)
        else:  # (a QoS 2 message among them: PUBREC and PUBACK each in order, through paho)
            both = [(mid, qos) for gen, mid, qos in tokens if gen == generation and qos > 0]
            for mid, qos in both:
                client.ack(mid, qos)
            mine = len(both)
        if client.want_write():
            self._writable(client)  # at once, rather than at the loop's next turn
        return mine

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

    def _connect(self, client: paho.Client) -> MQTTErrorCode:
        """Open the connection and send CONNECT (blocking: DNS, TCP, TLS; run in a worker thread)."""
        if self.protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self.settings.session_expiry_s
            props.ReceiveMaximum = self.settings.receive_maximum
            return client.connect(self.host, self.port, self.settings.keepalive_s, clean_start=False,
                                  properties=props)
        return client.connect(self.host, self.port, self.settings.keepalive_s)

    async def _run(self) -> None:
        backoff = Backoff(self.settings.reconnect_min_s, self.settings.reconnect_max_s)
        assert self._stop is not None
        while not self._stopping:
            client = self._new_client()
            self._connack_seen = False
            try:
                # (a connect in progress is not cancelled by stop(): it ends within paho's connect timeout)
                if await asyncio.to_thread(self._connect, client) == MQTTErrorCode.MQTT_ERR_SUCCESS:
                    self._client = client
                    await self._serve(client)
            except (OSError, ValueError, paho.WebsocketConnectionError) as exc:
                self._set_state(False, f"cannot connect to {self.host}:{self.port}: {exc}")
            finally:
                self._close(client)
            self._lost()
            if self._stopping:
                break
            if self.connects == 0 and not self._connack_seen and self.settings.protocol == "auto":
                # A broker that closes an MQTT 5 CONNECT may speak only 3.1.1; try the other one next.
                self.protocol = "3.1.1" if self.protocol == "5" else "5"
            if self._connack_seen and self.connects:
                backoff.reset()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), backoff.next())

    async def _serve(self, client: paho.Client) -> None:
        """Read, write and keep the connection alive from the event loop until it ends or stop() is asked.

        The socket is read on the event loop (SocketReads: at once at a light load, on a timer under
        load): a read hands the deliveries to the inbox in the same thread, with no hand-over and no
        wake-up of another thread.
        """
        loop = self._loop
        assert loop is not None and self._stop is not None
        ended: asyncio.Future[None] = loop.create_future()

        def end() -> None:
            if not ended.done():
                ended.set_result(None)

        reads = SocketReads(loop, client, end, f"{self.host}:{self.port}")
        self._hook_socket(client, loop, end)
        if client.want_write():  # (CONNECT, if the connect's own write did not take it whole)
            client._call_socket_register_write()
        reads.start()
        stopping = loop.create_task(self._stop.wait())
        try:
            # paho's keepalive (PINGREQ, and the broker's silence past it) is checked every KEEPALIVE_CHECK_S.
            while not ended.done():
                await asyncio.wait((ended, stopping), timeout=KEEPALIVE_CHECK_S, return_when=asyncio.FIRST_COMPLETED)
                if stopping.done() and not ended.done():
                    client.disconnect()  # DISCONNECT written; paho closes the socket once it is sent
                    self._writable(client)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(ended), 0.5)
                    break
                if not ended.done() and client.loop_misc():
                    break
        finally:
            stopping.cancel()
            reads.stop()

    def _hook_socket(self, client: paho.Client, loop: asyncio.AbstractEventLoop, end: Callable[[], None]) -> None:
        """paho's socket callbacks on the event loop: what paho queues is written when the socket can
        take it, and the connection ends when paho closes the socket."""

        def closing(_c: paho.Client, _ud: Any, closed: Any) -> None:
            loop.remove_reader(closed)
            loop.remove_writer(closed)
            end()

        def register_write(_c: paho.Client, _ud: Any, s: Any) -> None:
            loop.add_writer(s, self._writable, client)

        def unregister_write(_c: paho.Client, _ud: Any, s: Any) -> None:
            loop.remove_writer(s)

        client.on_socket_close = closing
        client.on_socket_register_write = register_write
        client.on_socket_unregister_write = unregister_write

    def _writable(self, client: paho.Client) -> None:
        """Write what paho has queued (PUBACKs, SUBSCRIBE, PINGREQ); what the socket does not take now
        is written when it can take more (paho registers the socket for writing)."""
        if client._sock is not None:
            client.loop_write()

    def _close(self, client: paho.Client) -> None:
        """The connection is over: stop watching its socket and close it (once)."""
        sock = client._sock
        if sock is not None and self._loop is not None:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
        client._sock_close()

    def _lost(self) -> None:
        self._client = None
        self._generation += 1
        was = self.connected
        self.connected = False
        self.subscribed = False
        if was and not self._stopping:
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
        self.connected = True
        self.connects += 1
        self.session_present = bool(flags.session_present)
        log.info("MQTT connected to %s:%s (MQTT %s, session present: %s)",
                 self.host, self.port, self.protocol, flags.session_present)
        if self.on_session is not None and self._loop is not None:
            self._loop.call_soon(self.on_session, self.session_present, self.asks_for_session)
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
        if not self._stopping:
            self._set_state(False, f"disconnected: {reason}")

    def _on_message(self, _c: paho.Client, _ud: Any, msg: paho.MQTTMessage) -> None:
        # Only what PacketReader leaves to paho comes this way (e.g. a QoS 2 message).
        topic = msg._topic.decode("utf-8", errors="replace")
        self._received([Delivery(topic, bytes(msg.payload), msg.mid, msg.qos, self._generation)])

    def _received(self, deliveries: list[Delivery]) -> None:
        self._inbox.extend(deliveries)
        assert self._wake is not None
        self._wake.set()
