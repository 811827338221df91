"""MQTT packets off the socket: PUBLISH decoded in place into deliveries, everything else to paho.

Used by the MQTT source (ingest.mqtt_source), which installs `PacketReader` as its paho client's
packet reader and has `SocketReads` read the socket on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.exception import MalformedPacket

log = logging.getLogger("cbrain.mqtt")


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
_MAX_LENGTH_BYTES = 4  # a remaining length takes at most four bytes (MQTT 3.1.1 / 5, 2.2.3)

# How SocketReads reads: a read of at least GATHER_BYTES, or one within GATHER_S of the one before,
# means messages are coming faster than one at a time. The socket is then left unwatched and read
# again on a timer GATHER_S later, so that the next ones gather in the kernel and come in one read.
# Each read is a turn of the event loop (recv, the reader); a steady 5,000/s arriving a few at a time
# would take one for nearly every message. While messages keep coming, the timer reads them with no
# change to what epoll watches and no turn in between; a timed read that finds nothing watches the
# socket again. A reading waits at most GATHER_S more (under load the commit's flush interval is
# 25 ms); a light load, its reads further apart than GATHER_S, never waits.
GATHER_BYTES = 8192
GATHER_S = 0.002


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


def _tls_pending(sock: Any) -> bool:
    """Whether TLS took bytes from the socket that it has not handed on yet (the socket may then
    not be readable while a message waits)."""
    pending = getattr(sock, "pending", None)
    return pending is not None and pending() > 0


class SocketReads:
    """Reads one connection's socket on the event loop, through paho's loop_read (and so the
    connection's PacketReader): when the loop sees it readable, or under load on a timer (see
    GATHER_S). `lost` is called once a read finds the connection over, or fails."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: paho.Client, lost: Callable[[], None],
                 where: str) -> None:
        reader = client._packet_read
        assert isinstance(reader, PacketReader)
        self._loop, self._client, self._reader, self._lost, self._where = loop, client, reader, lost, where
        self._sock = client.socket()
        assert self._sock is not None
        self._fd = self._sock.fileno()  # (the loop takes a socket object too, but looks at it more for each call)
        self._watched = False
        self._timer: asyncio.TimerHandle | None = None
        self._last_read_at = 0.0
        self._over = False

    def start(self) -> None:
        self._watch()
        if _tls_pending(self._sock):
            self.readable()

    def stop(self) -> None:
        self._over = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._unwatch()

    def readable(self) -> None:
        """A read: called by the loop when the watched socket is readable, or by the gathering's timer."""
        self._timer = None
        client, reader = self._client, self._reader
        try:
            lost = client.loop_read() or client._sock is None
        except Exception:  # a fault of ours or of paho's: say so, and connect again (nothing acknowledged is lost)
            log.exception("MQTT: reading from %s failed; reconnecting", self._where)
            lost = True
        if lost:
            self.stop()
            self._lost()
            return
        took, reader.last_read = reader.last_read, 0
        now = time.monotonic()
        if took and (took >= GATHER_BYTES or now - self._last_read_at < GATHER_S):
            # Under load: the next messages gather, and the timer reads them, the socket unwatched
            # (no epoll change and no extra turn of the loop for each read).
            self._unwatch()
            self._timer = self._loop.call_later(GATHER_S, self.readable)
            self._last_read_at = now + GATHER_S  # (the next read, right after the gathering, is still under load)
            return
        if took:
            self._last_read_at = now
        if not self._watched:
            self._watch()  # the gathering brought nothing more: wait for the socket again
        elif _tls_pending(self._sock):
            self._loop.call_soon(self.readable)  # bytes TLS took from the socket but has not handed on yet

    def _watch(self) -> None:
        if self._client._sock is self._sock and not self._over:
            self._loop.add_reader(self._fd, self.readable)
            self._watched = True

    def _unwatch(self) -> None:
        if self._watched:
            self._watched = False
            if self._client._sock is self._sock:  # (paho's on_socket_close unwatched a socket it closed)
                self._loop.remove_reader(self._fd)
