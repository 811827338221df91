"""MQTT 3.1.1 on the wire, for a publisher: the packets it sends, the packets it reads, broker URLs, errors."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from kernel.errors import CBError

# CONNACK return codes of MQTT 3.1.1 (section 3.2.2.3).
CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}

CONNECT, CONNACK, PUBLISH, PUBACK, PINGREQ, PINGRESP, DISCONNECT = 0x10, 0x20, 0x30, 0x40, 0xC0, 0xD0, 0xE0
_MAX_REMAINING = 268_435_455


class MqttError(CBError):
    """The broker could not be reached, refused us, or dropped the connection."""


class ConnectRefused(MqttError):
    """The broker answered CONNECT with a non-zero return code."""

    def __init__(self, code: int, where: str) -> None:
        reason = CONNACK_REASONS.get(code, f"return code {code}")
        super().__init__(f"{where} refused the connection: {reason}")
        self.code = code
        self.reason = reason


class ConnectionLost(MqttError):
    """The connection closed while a caller waited on it."""


@dataclass(frozen=True, slots=True)
class Will:
    """The message the broker publishes when the connection ends without DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    """Where a broker is and how to log in, from `mqtt[s]://user:pass@host:port`."""

    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool

    def __str__(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"


def parse_url(url: str) -> BrokerUrl:
    """Split a broker URL (`mqtt://`, `tcp://`, `mqtts://` or `ssl://`); ValueError when it is not one."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp", "mqtts", "ssl") or not parts.hostname:
        raise ValueError(f"{url!r} is not a broker URL like mqtt://user:pass@host:1883")
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise ValueError(f"{url!r} has a bad port") from None
    return BrokerUrl(parts.hostname, port, unquote(parts.username) if parts.username else None,
                     unquote(parts.password) if parts.password is not None else None, tls)


# ---- encoding -----------------------------------------------------------------------------------


def encode_varint(n: int) -> bytes:
    """The remaining-length field: 7 bits per byte, low first, high bit set on all but the last."""
    if not 0 <= n <= _MAX_REMAINING:
        raise ValueError(f"remaining length {n} is out of range")
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def encode_string(text: str | bytes) -> bytes:
    """A UTF-8 string with its two-byte length, as in every MQTT field."""
    data = text.encode() if isinstance(text, str) else text
    if len(data) > 0xFFFF:
        raise ValueError("string longer than 65535 bytes")
    return len(data).to_bytes(2, "big") + data


def encode_topic(topic: str) -> bytes:
    """A topic ready for `publish_nowait` (length-prefixed); encode each topic once and keep it."""
    if not topic or "+" in topic or "#" in topic:
        raise ValueError(f"{topic!r} is not a topic one can publish to")
    return encode_string(topic)


def connect_packet(client_id: str, *, keepalive: int, username: str | None = None, password: str | None = None,
                   will: Will | None = None, clean_session: bool = True) -> bytes:
    """The CONNECT packet of MQTT 3.1.1."""
    flags = 0x02 if clean_session else 0
    payload = [encode_string(client_id)]
    if will is not None:
        if will.qos not in (0, 1, 2):
            raise ValueError("will QoS must be 0, 1 or 2")
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        payload += [encode_string(will.topic), encode_string(will.payload)]
    if username is not None:
        flags |= 0x80
        payload.append(encode_string(username))
        if password is not None:
            flags |= 0x40
            payload.append(encode_string(password))
    body = b"".join([encode_string("MQTT"), bytes((4, flags)), keepalive.to_bytes(2, "big"), *payload])
    return bytes((CONNECT,)) + encode_varint(len(body)) + body


def publish_header(qos: int, retain: bool, remaining: int) -> bytes:
    """The fixed header of a PUBLISH packet whose variable header and payload take `remaining` bytes."""
    first = PUBLISH | (qos << 1) | (1 if retain else 0)
    if remaining < 128:
        return bytes((first, remaining))
    if remaining < 16384:
        return bytes((first, (remaining & 0x7F) | 0x80, remaining >> 7))
    return bytes((first,)) + encode_varint(remaining)


def publish_packet(topic: bytes, payload: bytes, *, qos: int = 1, retain: bool = False, packet_id: int = 0) -> bytes:
    """One whole PUBLISH packet (topic as from `encode_topic`)."""
    pid = packet_id.to_bytes(2, "big") if qos else b""
    return publish_header(qos, retain, len(topic) + len(pid) + len(payload)) + topic + pid + payload


class PacketReader:
    """Splits received bytes into (packet type and flags, body) pairs, across reads."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The whole packets now available; a partial packet waits for the next feed."""
        buf = self._buf + data if self._buf else data
        out: list[tuple[int, bytes]] = []
        i, n = 0, len(buf)
        while n - i >= 2:
            first = buf[i]
            if buf[i + 1] < 0x80:  # almost every packet a publisher receives is this short
                length, start = buf[i + 1], i + 2
            else:
                length, shift, j = 0, 0, i + 1
                while True:
                    if j >= n:
                        self._buf = buf[i:]
                        return out
                    byte = buf[j]
                    length |= (byte & 0x7F) << shift
                    j += 1
                    if not byte & 0x80:
                        break
                    shift += 7
                    if shift > 21:
                        raise MqttError("malformed remaining length from the broker")
                start = j
            if start + length > n:
                break
            out.append((first, buf[start:start + length]))
            i = start + length
        self._buf = buf[i:]
        return out
