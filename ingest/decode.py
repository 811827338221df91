"""Decode and validate one MQTT message against docs/devices.md."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import orjson
from pydantic import ValidationError

from ingest.lineproto import LineProtocolError, series_key
from ingest.payload_check import PayloadCheck, compile_check
from kernel.clock import NS, Clock
from kernel.devices import CATALOG
from kernel.ids import DeviceType
from kernel.reading import MAX_PAYLOAD_BYTES, FieldValue, Reading, StatusUpdate
from kernel.site import Place, Site
from kernel.topics import DeviceTopic, TopicError, TopicKind, is_service_topic, parse_device_topic

# Every reason a message can be rejected for; a bounded set, so it can label a metric.
REASONS = (
    "bad_topic", "unknown_device_type", "too_large", "not_json", "not_object", "missing_field",
    "wrong_type", "out_of_range", "invalid_value", "bad_timestamp", "too_old", "from_future", "bad_status",
)
# ...and those only a message of another system's device has (ingest.sources).
SOURCE_REASONS = (
    "unknown_device", "bad_format", "no_profile", "no_object", "codec_error", "codec_timeout", "codec_memory",
)

_RFC3339 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{1,9}))?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_RANGE_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"})
_PAYLOAD_HEAD = 200
# Epoch milliseconds beyond year 9999 cannot be a real time.
_MAX_EPOCH_MS = 253_402_300_799_999
# (a module constant: an enum member looked up on its class costs ~170 ns, once a message here)
_STATUS = TopicKind.STATUS
# Topics whose parse, place and series are kept (a device's topic is the same for every message);
# beyond this many (a flood of made-up device ids) the cache starts again.
TOPIC_CACHE = 100_000


@dataclass(slots=True)
class Rejection:
    """A message that broke the contract, with a stable reason code and a human detail."""

    reason: str
    detail: str
    topic: str
    payload_head: str
    at_ns: int
    # For a message of a source (docs/devices.md): the source and the address it came from.
    source: str = ""
    address: str = ""


Decoded = Reading | StatusUpdate | Rejection | list[Reading | StatusUpdate | Rejection] | None


class SourcesDecoder(Protocol):
    """What decodes the messages of other systems' devices (ingest.sources.reader.SourceReader)."""

    def decode(self, topic: str, payload: bytes, now: int) -> list[Reading | StatusUpdate | Rejection] | None: ...


def payload_head(payload: bytes) -> str:
    """The first bytes of a payload, readable whatever they hold."""
    return payload[:_PAYLOAD_HEAD].decode("utf-8", errors="replace")


def parse_rfc3339_ns(text: str) -> int:
    """Epoch nanoseconds of an RFC 3339 date-time with an offset; ValueError otherwise."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise ValueError("not an RFC 3339 date-time with an offset (e.g. 2026-05-01T08:30:00+08:00)")
    date, clock, frac, offset = m.groups()
    offset = "+00:00" if offset in ("Z", "z") else offset
    dt = datetime.fromisoformat(f"{date}T{clock}{offset}")
    nanos = int((frac or "0").ljust(9, "0"))
    return int(dt.timestamp()) * 1_000_000_000 + nanos  # (a constant, not NS: a name lookup per reading)


class Decoder:
    """Turns (topic, payload) into a Reading, a StatusUpdate, a Rejection, or None for service topics."""

    def __init__(self, prefix: str, site: Site, clock: Clock, *, max_past_s: float, max_future_s: float,
                 quick: bool = True) -> None:
        self.prefix = prefix
        self.site = site
        self.clock = clock
        self.max_past_ns = int(max_past_s * NS)
        self.max_future_ns = int(max_future_s * NS)
        # The quick check of each type's payload (ingest.payload_check); without one, pydantic alone.
        self.quick: dict[DeviceType, PayloadCheck | None] = (
            {t: compile_check(kind.payload) for t, kind in CATALOG.items()} if quick else {})
        self._topics: dict[str, tuple[DeviceTopic, Place, str]] = {}
        self._under_prefix = prefix + "/"
        # Devices that report through other systems (ingest.sources.reader), if the site has any.
        self.sources: SourcesDecoder | None = None

    def _topic(self, topic: str) -> tuple[DeviceTopic, Place, str]:
        """A valid device topic, its place and its series in the store ("" if line protocol cannot
        carry its tags); TopicError otherwise."""
        where = parse_device_topic(self.prefix, topic)
        place = self.site.place(where.community, where.device_id)
        try:
            series = series_key(where.device_type.value, {"community": where.community, "device_id": where.device_id,
                                                         "building": place.building, "grid": place.grid})
        except LineProtocolError:
            series = ""
        if len(self._topics) >= TOPIC_CACHE:
            self._topics.clear()
        known = self._topics[topic] = (where, place, series)
        return known

    def decode(self, topic: str, payload: bytes) -> Decoded:
        """Validate one message; never raises for bad input. A source's message may carry several
        readings (a power strip's ports): a list then."""
        now = self.clock.now_ns()
        known = self._topics.get(topic)
        if known is None:
            if self.sources is not None and not topic.startswith(self._under_prefix):
                found = self.sources.decode(topic, payload, now)
                if found is not None:
                    return found
            try:
                known = self._topic(topic)
            except TopicError as exc:
                if is_service_topic(self.prefix, topic):
                    return None
                return Rejection(exc.reason, str(exc), topic, payload_head(payload), now)
        where, place, series = known
        if where.kind is _STATUS:
            if payload in (b"online", b"offline"):
                return StatusUpdate(where.community, where.device_type, where.device_id,
                                    payload == b"online", now)
            if not payload:
                return None  # an empty retained message only clears the topic
            return Rejection("bad_status", "status must be exactly 'online' or 'offline'",
                             topic, payload_head(payload), now)
        if len(payload) > MAX_PAYLOAD_BYTES:
            return Rejection("too_large", f"{len(payload)} bytes, the limit is {MAX_PAYLOAD_BYTES}",
                             topic, payload_head(payload), now)
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            return Rejection("not_json", f"not JSON: {exc}", topic, payload_head(payload), now)
        if not isinstance(obj, dict):
            return Rejection("not_object", f"a reading is a JSON object, not {type(obj).__name__}",
                             topic, payload_head(payload), now)
        return self.reading(where.device_type, obj, topic, payload, now, where.community, where.device_id, place,
                            series)

    def reading(self, device_type: DeviceType, obj: dict[str, object], topic: str, payload: bytes, now: int,
                community: str, device_id: str, place: Place, series: str) -> Reading | Rejection:
        """A reading of a device from its fields (section 1's names), validated, or why not."""
        quick = self.quick.get(device_type)
        checked = quick(obj) if quick is not None else None
        if checked is None:
            validated = self._validate(device_type, obj, topic, payload, now)
            if isinstance(validated, Rejection):
                return validated
            checked = validated
        fields, ts, seq, ignored = checked
        if ts is None:
            ts_ns = now
        elif isinstance(ts, int):
            if not 0 <= ts <= _MAX_EPOCH_MS:
                return Rejection("bad_timestamp", f"ts {ts} is not epoch milliseconds",
                                 topic, payload_head(payload), now)
            ts_ns = ts * 1_000_000
        else:
            try:
                ts_ns = parse_rfc3339_ns(ts)
            except ValueError as exc:
                return Rejection("bad_timestamp", f"ts: {exc}", topic, payload_head(payload), now)
        if ts_ns < now - self.max_past_ns:
            return Rejection("too_old", f"ts is {(now - ts_ns) / 86400e9:.1f} days old; the limit is "
                             f"{self.max_past_ns / 86400e9:g}", topic, payload_head(payload), now)
        if ts_ns > now + self.max_future_ns:
            return Rejection("from_future", f"ts is {(ts_ns - now) / NS:.0f} s ahead of the service clock; "
                             f"the limit is {self.max_future_ns / NS:g} s", topic, payload_head(payload), now)
        return Reading(community, device_type, device_id, ts_ns, fields, seq, place.building,
                       place.grid, now, ignored, series)

    def _validate(self, device_type: DeviceType, obj: dict[str, object], topic: str, payload: bytes,
                  now: int) -> tuple[dict[str, FieldValue], str | int | None, int | None, int] | Rejection:
        """The payload model's verdict: (fields as stored, ts, seq, ignored fields), or why not."""
        kind = CATALOG[device_type]
        if None in obj.values():
            declared = kind.declared
            nulls = sorted(k for k, v in obj.items() if v is None and k in declared)
            if nulls:
                return Rejection("wrong_type", f"{nulls[0]}: null is not a value; omit the field instead",
                                 topic, payload_head(payload), now)
        try:
            body = kind.payload.model_validate(obj)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            reason = reason_of(err["type"])
            loc = ".".join(str(p) for p in err["loc"])
            detail = f"{loc}: {err['msg']}" if loc else err["msg"]
            return Rejection(reason, detail, topic, payload_head(payload), now)
        return body.measured(), body.ts, body.seq, len(body.model_extra or ())


def reason_of(error_type: str) -> str:
    if error_type in ("missing", "missing_required"):
        return "missing_field"
    if error_type in _RANGE_ERRORS:
        return "out_of_range"
    if error_type == "literal_error":
        return "invalid_value"
    return "wrong_type"
