"""The MQTT source: paho-mqtt 2.x with manual acknowledgement, bridged into asyncio.

paho runs its network loop in a thread of ours; messages cross into the event loop through a
deque and one wake-up per burst. A message is acknowledged (PUBACK) only when the pipeline says
its batch is durable, in the order messages arrived, and only on the connection that delivered
it: after a reconnect the broker redelivers whatever we had not acknowledged (persistent
session, `clean_start=False`). In-flight messages are bounded by Receive Maximum (MQTT 5).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
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


class MqttSource:
    """Receives device messages; `drain()` them in the event loop, `ack()` them when durable."""

    def __init__(self, settings: MqttSettings, *, client_id: str | None = None) -> None:
        self.settings = settings
        self.client_id = client_id or settings.client_id
        url = urlsplit(settings.url)
        self.host = url.hostname or "127.0.0.1"
        self.tls = url.scheme in ("mqtts", "ssl")
        self.port = url.port or (8883 if self.tls else 1883)
        self.username = unquote(url.username) if url.username else None
        self.password = unquote(url.password) if url.password else None
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
            client.tls_set()
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
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
                while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and not self._stopping.is_set():
                    rc = client.loop(timeout=0.2)
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
        log.info("MQTT connected to %s:%s (MQTT %s, session present: %s)",
                 self.host, self.port, self.protocol, flags.session_present)
        topics = subscriptions(self.settings.prefix, self.settings.communities)
        if self.protocol == "5":
            opts = SubscribeOptions(qos=1, noLocal=True, retainHandling=SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE)
            client.subscribe([(self._shared(t), opts) for t in topics])
        else:
            client.subscribe([(self._shared(t), 1) for t in topics])

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
        # The raw topic: a device may send bytes that are not UTF-8, and the decoder rejects them.
        topic = msg._topic.decode("utf-8", errors="replace")
        self._inbox.append(Delivery(topic, bytes(msg.payload), msg.mid, msg.qos, self._generation))
        if not self._signalled:
            self._signalled = True
            assert self._loop is not None and self._wake is not None
            self._loop.call_soon_threadsafe(self._wake.set)
