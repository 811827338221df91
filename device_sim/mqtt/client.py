"""The client: one MQTT 3.1.1 connection that publishes, QoS 1 with a bounded in-flight window."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl as ssl_module
from collections.abc import Callable
from typing import cast

from device_sim.mqtt.packets import (
    CONNACK,
    DISCONNECT,
    PINGREQ,
    PINGRESP,
    PUBACK,
    BrokerUrl,
    ConnectionLost,
    ConnectRefused,
    MqttError,
    PacketReader,
    Will,
    connect_packet,
    encode_topic,
    parse_url,
    publish_header,
)

_PINGREQ = bytes((PINGREQ, 0))
_DISCONNECT = bytes((DISCONNECT, 0))


class MqttClient(asyncio.Protocol):
    """One MQTT 3.1.1 connection that publishes; QoS 1 with a bounded in-flight window."""

    def __init__(self, client_id: str, *, username: str | None = None, password: str | None = None,
                 keepalive: int = 30, will: Will | None = None, inflight: int = 1000,
                 clean_session: bool = True,
                 on_close: Callable[[MqttClient, Exception | None], None] | None = None) -> None:
        if inflight < 1:
            raise ValueError("inflight must be at least 1")
        self.client_id = client_id
        self.username, self.password = username, password
        self.keepalive = keepalive
        self.will = will
        self.window = inflight
        self.clean_session = clean_session
        self.on_close = on_close  # called once the connection has ended: (client, error or None if on purpose)
        self.sent = 0  # PUBLISH packets handed to the transport
        self.acked = 0  # PUBACKs received
        self.acked_tagged = 0  # PUBACKs of messages published with tag=1 (callers count their own kind)
        self.where = "broker"
        self._transport: asyncio.Transport | None = None
        self._inflight: dict[int, int] = {}  # packet id -> tag
        self._next_id = 1
        self._out: list[bytes] = []
        self._reader = PacketReader()
        self._connack: asyncio.Future[None] | None = None
        self._room_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[Exception | None] | None = None
        self._ping_handle: asyncio.TimerHandle | None = None
        self._last_write = 0.0
        self._ping_sent_at: float | None = None
        self._goodbye = False  # we closed it on purpose (disconnect or abort)
        self._established = False  # CONNACK accepted

    # -- connecting --

    @classmethod
    async def open(cls, url: str | BrokerUrl, client_id: str, *, timeout_s: float = 10.0,
                   ssl_context: ssl_module.SSLContext | None = None, username: str | None = None,
                   password: str | None = None, keepalive: int = 30, will: Will | None = None,
                   inflight: int = 1000,
                   on_close: Callable[[MqttClient, Exception | None], None] | None = None) -> MqttClient:
        """A connected client for a broker URL; user name and password come from the URL unless given."""
        broker = parse_url(url) if isinstance(url, str) else url
        if username is None:
            username, password = broker.username, broker.password
        client = cls(client_id, username=username, password=password, keepalive=keepalive, will=will,
                     inflight=inflight, on_close=on_close)
        ctx = ssl_context if ssl_context is not None else (ssl_module.create_default_context() if broker.tls else None)
        await client.connect(broker.host, broker.port, ssl_context=ctx, timeout_s=timeout_s)
        return client

    async def connect(self, host: str, port: int, *, ssl_context: ssl_module.SSLContext | None = None,
                      timeout_s: float = 10.0) -> None:
        """Open the TCP (or TLS) connection, send CONNECT and wait for CONNACK; MqttError on failure."""
        loop = asyncio.get_running_loop()
        self.where = f"{host}:{port}"
        self._connack = loop.create_future()
        self._closed = loop.create_future()
        try:
            async with asyncio.timeout(timeout_s):
                await loop.create_connection(lambda: self, host, port, ssl=ssl_context,
                                             server_hostname=host if ssl_context else None)
                await self._connack
        except TimeoutError:
            self.abort()
            raise MqttError(f"no CONNACK from the broker at {self.where} within {timeout_s:g} s") from None
        except OSError as exc:
            self.abort()
            raise MqttError(f"cannot reach the broker at {self.where}: {exc.strerror or exc}") from None
        except MqttError:
            self.abort()
            raise
        self._last_write = loop.time()
        if self.keepalive:
            self._ping_handle = loop.call_later(self.keepalive / 2, self._keepalive_tick)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send CONNECT as soon as the connection is up."""
        # (a stream transport: uvloop's are not subclasses of asyncio.Transport, so no isinstance check)
        self._transport = stream = cast(asyncio.Transport, transport)
        with contextlib.suppress(OSError):
            sock = stream.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stream.write(connect_packet(self.client_id, keepalive=self.keepalive, username=self.username,
                                    password=self.password, will=self.will, clean_session=self.clean_session))

    # -- publishing --

    @property
    def connected(self) -> bool:
        """True between CONNACK and the end of the connection."""
        return self._transport is not None and self._established

    @property
    def inflight(self) -> int:
        """QoS 1 messages sent and not yet acknowledged."""
        return len(self._inflight)

    def room(self) -> int:
        """How many more QoS 1 messages may be published before the window is full (0 when closed)."""
        if self._transport is None:
            return 0
        return self.window - len(self._inflight)

    def publish_nowait(self, topic: bytes, payload: bytes, qos: int = 1, retain: bool = False, tag: int = 0) -> None:
        """Queue one PUBLISH (topic from `encode_topic`) until `flush()`; callers respect `room()` themselves.

        `tag` 1 counts the message's PUBACK in `acked_tagged` as well as in `acked`."""
        out = self._out
        if qos:
            inflight = self._inflight
            pid = self._next_id
            while pid in inflight:  # only after 65535 ids, when one is still unacknowledged
                pid = pid % 0xFFFF + 1
            self._next_id = pid % 0xFFFF + 1
            inflight[pid] = tag
            rl = len(topic) + 2 + len(payload)
            first = 0x32 | retain
            if rl < 128:
                out.append(bytes((first, rl)))
            elif rl < 16384:
                out.append(bytes((first, (rl & 0x7F) | 0x80, rl >> 7)))
            else:
                out.append(publish_header(1, retain, rl))
            out += (topic, pid.to_bytes(2, "big"), payload)
        else:
            out += (publish_header(0, retain, len(topic) + len(payload)), topic, payload)
        self.sent += 1

    def flush(self) -> None:
        """Write everything queued in one go."""
        if self._out:
            data = b"".join(self._out)
            self._out = []
            if self._transport is not None and not self._transport.is_closing():
                self._transport.write(data)
                self._last_write = asyncio.get_running_loop().time()

    async def publish(self, topic: str | bytes, payload: bytes, qos: int = 1, retain: bool = False,
                      tag: int = 0) -> None:
        """Publish one message now, first waiting for room in the in-flight window."""
        if qos not in (0, 1):
            raise ValueError("this client publishes at QoS 0 or 1")
        encoded = encode_topic(topic) if isinstance(topic, str) else topic
        if qos:
            await self.wait_room()
        if self._transport is None:
            raise ConnectionLost(f"connection to {self.where} is closed")
        self.publish_nowait(encoded, payload, qos, retain, tag)
        self.flush()

    async def wait_room(self) -> None:
        """Wait until the in-flight window has room; ConnectionLost when the connection is closed."""
        while self.room() <= 0:
            if self._transport is None:
                raise ConnectionLost(f"connection to {self.where} is closed")
            if self._room_waiter is None:
                self._room_waiter = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._room_waiter)

    def unacked_tagged(self) -> int:
        """Messages published with tag=1 that are still unacknowledged."""
        return sum(self._inflight.values())

    async def drain(self, timeout_s: float) -> bool:
        """Wait until every QoS 1 message is acknowledged; False when the time runs out or the connection ends."""
        self.flush()
        try:
            async with asyncio.timeout(timeout_s):
                while self._inflight and self._transport is not None:
                    if self._drain_waiter is None:
                        self._drain_waiter = asyncio.get_running_loop().create_future()
                    await asyncio.shield(self._drain_waiter)
        except (TimeoutError, ConnectionLost):
            return False
        return not self._inflight

    # -- closing --

    async def disconnect(self, timeout_s: float = 5.0) -> None:
        """Say DISCONNECT (the broker then discards the will) and close."""
        transport = self._transport
        if transport is None:
            return
        self._goodbye = True
        self.flush()
        transport.write(_DISCONNECT)
        transport.close()
        if self._closed is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await asyncio.shield(self._closed)

    def abort(self) -> None:
        """Drop the TCP connection without DISCONNECT, as a device losing power: the broker publishes the will."""
        self._goodbye = True
        if self._transport is not None:
            self._transport.abort()

    async def wait_closed(self) -> Exception | None:
        """Wait for the connection to end; the error that ended it, if any."""
        if self._closed is None:
            return None
        return await asyncio.shield(self._closed)

    # -- receiving --

    def data_received(self, data: bytes) -> None:
        """Take PUBACKs (the bulk of what a publisher receives), CONNACK and PINGRESP."""
        inflight = self._inflight
        acked = tagged = 0
        try:
            packets = self._reader.feed(data)
        except MqttError as exc:
            self._fail(exc)
            return
        for first, body in packets:
            kind = first & 0xF0
            if kind == PUBACK and len(body) == 2:
                tag = inflight.pop((body[0] << 8) | body[1], None)
                if tag is not None:
                    acked += 1
                    tagged += tag
            elif kind == CONNACK and len(body) == 2:
                if self._connack is not None and not self._connack.done():
                    if body[1] == 0:
                        self._established = True
                        self._connack.set_result(None)
                    else:
                        self._connack.set_exception(ConnectRefused(body[1], f"the broker at {self.where}"))
            elif kind == PINGRESP:
                self._ping_sent_at = None
            else:
                self._fail(MqttError(f"unexpected packet 0x{first:02x} from the broker at {self.where}"))
                return
        if acked:
            self.acked += acked
            self.acked_tagged += tagged
            self._wake()

    def _wake(self) -> None:
        if self._room_waiter is not None and len(self._inflight) < self.window:
            if not self._room_waiter.done():
                self._room_waiter.set_result(None)
            self._room_waiter = None
        if self._drain_waiter is not None and not self._inflight:
            if not self._drain_waiter.done():
                self._drain_waiter.set_result(None)
            self._drain_waiter = None

    def _fail(self, exc: Exception) -> None:
        if self._transport is not None:
            self._transport.abort()
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        """Wake everyone who waits; unacknowledged messages stay counted in `inflight`."""
        self._transport = None
        if self._ping_handle is not None:
            self._ping_handle.cancel()
        lost = ConnectionLost(f"the broker at {self.where} closed the connection"
                              + (f": {exc}" if exc else ""))
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(lost)
        for waiter in (self._room_waiter, self._drain_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_exception(lost)
        self._room_waiter = self._drain_waiter = None
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None if self._goodbye else lost)
            if self.on_close is not None and self._established:
                self.on_close(self, None if self._goodbye else lost)
        # Retrieve the exceptions so asyncio does not log them when nobody waited.
        for fut in (self._connack,):
            if fut is not None and fut.done() and not fut.cancelled():
                fut.exception()

    def _keepalive_tick(self) -> None:
        """PINGREQ when idle; a broker that does not answer within the keepalive is taken as gone."""
        transport = self._transport
        if transport is None:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._ping_sent_at is not None and now - self._ping_sent_at > self.keepalive:
            transport.abort()
            return
        if now - self._last_write >= self.keepalive / 2 and self._ping_sent_at is None:
            transport.write(_PINGREQ)
            self._last_write = self._ping_sent_at = now
        self._ping_handle = loop.call_later(self.keepalive / 4, self._keepalive_tick)
