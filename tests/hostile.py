"""Hostile MQTT messages (docs/devices.md) and the rejection reason each must get.

Topics are templates with `{prefix}` and `{community}` placeholders; render them with
`HostileCase.topic_for(prefix, community)`.

- `hostile_cases(now_ns)`: every case, including those whose `ts` is relative to the service clock
  (8 days old, 10 minutes ahead); build it right before publishing.
- `HOSTILE`: the cases that do not depend on the clock, so they hold whenever they are published.
- `DECODER_ONLY`: topics an MQTT client or Mosquitto refuses to publish (`+`, `#`, NUL, control
  characters, non-characters) or that lie outside the prefix, so only the decoder ever sees them.
- `ACCEPTED_ODDITIES`: odd but valid readings (line-protocol injection in ignored keys and the like);
  each is accepted and stores exactly its contract fields (`current_a` 1.5, or `occupied` true with
  `object` "car" for fire_lane), and nothing of the injected content.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import orjson

NS_PER_S = 1_000_000_000
DAY_S = 86_400

EBIKE = "{prefix}/{community}/ebike_charger/ev-1/telemetry"
SMOKE = "{prefix}/{community}/smoke_detector/sd-1/telemetry"
WATER = "{prefix}/{community}/water_level/wl-1/telemetry"
LANE = "{prefix}/{community}/fire_lane/fl-1/telemetry"
STATUS = "{prefix}/{community}/ebike_charger/ev-1/status"

VALID_EBIKE = b'{"current_a": 1.5}'


@dataclass(frozen=True)
class HostileCase:
    """One message that breaks the contract and the rejection reason it must get."""

    name: str
    topic: str
    payload: bytes
    reason: str

    def topic_for(self, prefix: str, community: str) -> str:
        """The topic with its placeholders filled in."""
        return self.topic.format(prefix=prefix, community=community)


def _json(obj: object) -> bytes:
    return orjson.dumps(obj)


def _rfc3339(ns: int, offset_h: int = 8) -> str:
    """An RFC 3339 time with nanoseconds at a fixed offset."""
    seconds, frac = divmod(ns, NS_PER_S)
    tz = timezone(timedelta(hours=offset_h))
    dt = datetime.fromtimestamp(seconds, UTC).astimezone(tz)
    offset = dt.strftime("%z")
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}{offset[:3]}:{offset[3:]}"


def _padded(size: int) -> bytes:
    """A valid ebike reading padded with an ignored string field to exactly size bytes."""
    head = b'{"current_a": 1.5, "pad": "'
    tail = b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


_TOPICS: list[HostileCase] = [
    HostileCase("topic_one_level", "{prefix}/{community}", VALID_EBIKE, "bad_topic"),
    HostileCase("topic_too_few_levels", "{prefix}/{community}/ebike_charger/telemetry", VALID_EBIKE, "bad_topic"),
    HostileCase("topic_too_many_levels", "{prefix}/{community}/ebike_charger/ev-1/telemetry/extra", VALID_EBIKE,
                "bad_topic"),
    HostileCase("topic_trailing_slash", "{prefix}/{community}/ebike_charger/ev-1/telemetry/", VALID_EBIKE,
                "bad_topic"),
    HostileCase("community_uppercase", "{prefix}/Linfen-Yicun/ebike_charger/ev-1/telemetry", VALID_EBIKE,
                "bad_topic"),
    HostileCase("community_space", "{prefix}/linfen yicun/ebike_charger/ev-1/telemetry", VALID_EBIKE, "bad_topic"),
    HostileCase("community_empty", "{prefix}//ebike_charger/ev-1/telemetry", VALID_EBIKE, "bad_topic"),
    HostileCase("community_line_separator", "{prefix}/c\u2028b/ebike_charger/ev-1/telemetry", VALID_EBIKE,
                "bad_topic"),
    HostileCase("community_chinese", "{prefix}/临汾一村/ebike_charger/ev-1/telemetry", VALID_EBIKE, "bad_topic"),
    HostileCase("device_id_space", "{prefix}/{community}/ebike_charger/ev 1/telemetry", VALID_EBIKE, "bad_topic"),
    HostileCase("device_id_65_chars", "{prefix}/{community}/ebike_charger/" + "e" * 65 + "/telemetry", VALID_EBIKE,
                "bad_topic"),
    HostileCase("device_id_empty", "{prefix}/{community}/ebike_charger//telemetry", VALID_EBIKE, "bad_topic"),
    HostileCase("device_id_uppercase", "{prefix}/{community}/ebike_charger/EV-1/telemetry", VALID_EBIKE,
                "bad_topic"),
    HostileCase("device_id_leading_dash", "{prefix}/{community}/ebike_charger/-ev1/telemetry", VALID_EBIKE,
                "bad_topic"),
    HostileCase("device_id_accent", "{prefix}/{community}/ebike_charger/ev-é/telemetry", VALID_EBIKE, "bad_topic"),
    HostileCase("device_id_tag_injection", "{prefix}/{community}/ebike_charger/ev-1,building=x/telemetry",
                VALID_EBIKE, "bad_topic"),
    HostileCase("device_id_field_injection", "{prefix}/{community}/ebike_charger/ev-1 current_a=99/telemetry",
                VALID_EBIKE, "bad_topic"),
    HostileCase("device_id_quote", '{prefix}/{community}/ebike_charger/ev"1/telemetry', VALID_EBIKE, "bad_topic"),
    HostileCase("device_id_backslash", "{prefix}/{community}/ebike_charger/ev\\/telemetry", VALID_EBIKE,
                "bad_topic"),
    HostileCase("last_level_command", "{prefix}/{community}/ebike_charger/ev-1/command", VALID_EBIKE, "bad_topic"),
    HostileCase("last_level_uppercase", "{prefix}/{community}/ebike_charger/ev-1/TELEMETRY", VALID_EBIKE,
                "bad_topic"),
    HostileCase("device_type_empty", "{prefix}/{community}//x/telemetry", VALID_EBIKE, "unknown_device_type"),
    HostileCase("device_type_unknown", "{prefix}/{community}/toaster/ev-1/telemetry", VALID_EBIKE,
                "unknown_device_type"),
    HostileCase("device_type_uppercase", "{prefix}/{community}/EBIKE_CHARGER/ev-1/telemetry", VALID_EBIKE,
                "unknown_device_type"),
]

_NOT_JSON: list[HostileCase] = [
    HostileCase("garbage_bytes", EBIKE, b"\x00\x01garbage\xff\xfe", "not_json"),
    HostileCase("empty_payload", EBIKE, b"", "not_json"),
    HostileCase("invalid_utf8", EBIKE, b'{"current_a": 1.5, "note": "\xff\xfe"}', "not_json"),
    HostileCase("utf8_surrogate_bytes", EBIKE, b'{"current_a": 1.5, "note": "\xed\xa0\x80"}', "not_json"),
    HostileCase("lone_surrogate_escape", EBIKE, b'{"current_a": 1.5, "note": "\\ud800"}', "not_json"),
    HostileCase("utf8_bom", EBIKE, b'\xef\xbb\xbf{"current_a": 1.5}', "not_json"),
    HostileCase("truncated", EBIKE, b'{"current_a": 1.5, "seq": 1', "not_json"),
    HostileCase("trailing_content", EBIKE, b'{"current_a": 1.5} {"current_a": 2}', "not_json"),
    HostileCase("single_quoted", EBIKE, b"{'current_a': 1.5}", "not_json"),
    HostileCase("trailing_comma", EBIKE, b'{"current_a": 1.5,}', "not_json"),
    HostileCase("nan", EBIKE, b'{"current_a": NaN}', "not_json"),
    HostileCase("infinity", EBIKE, b'{"current_a": Infinity}', "not_json"),
    HostileCase("negative_infinity", EBIKE, b'{"current_a": -Infinity}', "not_json"),
    HostileCase("number_overflows_double", EBIKE, b'{"current_a": 1e400}', "not_json"),
    HostileCase("hex_number", EBIKE, b'{"current_a": 0x10}', "not_json"),
    HostileCase("nesting_2000_in_ignored_field", EBIKE, b'{"current_a": 1.5, "x": ' + _nested(2000) + b"}",
                "not_json"),
]

_NOT_OBJECT: list[HostileCase] = [
    HostileCase("array", EBIKE, b'[{"current_a": 1.5}]', "not_object"),
    HostileCase("string", EBIKE, b'"current_a"', "not_object"),
    HostileCase("number", EBIKE, b"1.5", "not_object"),
    HostileCase("null", EBIKE, b"null", "not_object"),
    HostileCase("bool", EBIKE, b"true", "not_object"),
]

_WRONG_TYPE: list[HostileCase] = [
    HostileCase("bool_for_number", EBIKE, b'{"current_a": true}', "wrong_type"),
    HostileCase("number_for_bool", LANE, b'{"occupied": 1}', "wrong_type"),
    HostileCase("string_for_bool", SMOKE, b'{"alarm": "true"}', "wrong_type"),
    HostileCase("string_number", EBIKE, b'{"current_a": "1.5"}', "wrong_type"),
    HostileCase("null_required", EBIKE, b'{"current_a": null}', "wrong_type"),
    HostileCase("null_optional", EBIKE, b'{"current_a": 1.5, "battery_pct": null}', "wrong_type"),
    HostileCase("object_for_number", EBIKE, b'{"current_a": {"value": 1.5}}', "wrong_type"),
    HostileCase("array_for_number", EBIKE, b'{"current_a": [1.5]}', "wrong_type"),
    HostileCase("nesting_100_in_field", EBIKE, b'{"current_a": ' + _nested(100) + b"}", "wrong_type"),
    HostileCase("seq_10e30", EBIKE, b'{"current_a": 1.5, "seq": ' + str(10**30).encode() + b"}", "wrong_type"),
    HostileCase("seq_float", EBIKE, b'{"current_a": 1.5, "seq": 1.0}', "wrong_type"),
    HostileCase("seq_string", EBIKE, b'{"current_a": 1.5, "seq": "5"}', "wrong_type"),
    HostileCase("ts_float_epoch_ms", EBIKE, b'{"current_a": 1.5, "ts": 1.7e12}', "wrong_type"),
    HostileCase("ts_bool", EBIKE, b'{"current_a": 1.5, "ts": true}', "wrong_type"),
    HostileCase("ts_null", EBIKE, b'{"current_a": 1.5, "ts": null}', "wrong_type"),
    HostileCase("ts_object", EBIKE, b'{"current_a": 1.5, "ts": {"s": 1}}', "wrong_type"),
]

_OUT_OF_RANGE: list[HostileCase] = [
    HostileCase("current_1e300", EBIKE, b'{"current_a": 1e300}', "out_of_range"),
    HostileCase("current_negative", EBIKE, b'{"current_a": -0.1}', "out_of_range"),
    HostileCase("voltage_above_400", EBIKE, b'{"current_a": 1.5, "voltage_v": 400.01}', "out_of_range"),
    HostileCase("power_negative", EBIKE, b'{"current_a": 1.5, "power_w": -1}', "out_of_range"),
    HostileCase("ebike_temperature_below_minus_40", EBIKE, b'{"current_a": 1.5, "temperature_c": -40.5}',
                "out_of_range"),
    HostileCase("seq_negative", EBIKE, b'{"current_a": 1.5, "seq": -1}', "out_of_range"),
    HostileCase("seq_2_pow_63", EBIKE, b'{"current_a": 1.5, "seq": ' + str(2**63).encode() + b"}", "out_of_range"),
    HostileCase("battery_101", EBIKE, b'{"current_a": 1.5, "battery_pct": 101}', "out_of_range"),
    HostileCase("battery_negative", EBIKE, b'{"current_a": 1.5, "battery_pct": -0.5}', "out_of_range"),
    HostileCase("obscuration_100_5", SMOKE, b'{"obscuration_pct_m": 100.5}', "out_of_range"),
    HostileCase("smoke_temperature_151", SMOKE, b'{"alarm": false, "temperature_c": 151}', "out_of_range"),
    HostileCase("level_cm_minus_501", WATER, b'{"level_cm": -501}', "out_of_range"),
    HostileCase("level_cm_2000_5", WATER, b'{"level_cm": 2000.5}', "out_of_range"),
    HostileCase("rain_negative", WATER, b'{"level_cm": 3, "rain_mm_h": -1}', "out_of_range"),
    HostileCase("confidence_1_5", LANE, b'{"occupied": true, "confidence": 1.5}', "out_of_range"),
]

_INVALID_VALUE: list[HostileCase] = [
    HostileCase("object_bus", LANE, b'{"occupied": true, "object": "bus"}', "invalid_value"),
    HostileCase("object_uppercase", LANE, b'{"occupied": true, "object": "CAR"}', "invalid_value"),
    HostileCase("object_injection", LANE, b'{"occupied": true, "object": "car\\n evil=1"}', "invalid_value"),
    HostileCase("object_quote_injection", LANE, b'{"occupied": true, "object": "car\\",evil=\\"1"}',
                "invalid_value"),
]

_MISSING: list[HostileCase] = [
    HostileCase("ebike_without_current", EBIKE, b'{"voltage_v": 220, "charging": true}', "missing_field"),
    HostileCase("ebike_empty_object", EBIKE, b"{}", "missing_field"),
    HostileCase("water_without_level", WATER, b'{"rain_mm_h": 12}', "missing_field"),
    HostileCase("fire_lane_without_occupied", LANE, b'{"object": "car", "confidence": 0.9}', "missing_field"),
    HostileCase("smoke_without_obscuration_or_alarm", SMOKE, b'{"temperature_c": 21, "battery_pct": 80}',
                "missing_field"),
]

_TIMESTAMPS: list[HostileCase] = [
    HostileCase("ts_without_offset", EBIKE, b'{"current_a": 1.5, "ts": "2026-01-01T00:00:00"}', "bad_timestamp"),
    HostileCase("ts_garbage", EBIKE, b'{"current_a": 1.5, "ts": "yesterday"}', "bad_timestamp"),
    HostileCase("ts_date_only", EBIKE, b'{"current_a": 1.5, "ts": "2026-01-01"}', "bad_timestamp"),
    HostileCase("ts_february_30", EBIKE, b'{"current_a": 1.5, "ts": "2026-02-30T00:00:00Z"}', "bad_timestamp"),
    HostileCase("ts_hour_24", EBIKE, b'{"current_a": 1.5, "ts": "2026-01-01T24:00:00+08:00"}', "bad_timestamp"),
    HostileCase("ts_ten_fraction_digits", EBIKE, b'{"current_a": 1.5, "ts": "2026-01-01T00:00:00.1234567890Z"}',
                "bad_timestamp"),
    HostileCase("ts_epoch_ms_negative", EBIKE, b'{"current_a": 1.5, "ts": -1}', "bad_timestamp"),
    HostileCase("ts_epoch_ms_after_9999", EBIKE, b'{"current_a": 1.5, "ts": 253402300800000}', "bad_timestamp"),
    HostileCase("ts_epoch_seconds_as_ms", EBIKE, b'{"current_a": 1.5, "ts": 1700000000}', "too_old"),
    HostileCase("ts_epoch_zero", EBIKE, b'{"current_a": 1.5, "ts": 0}', "too_old"),
    HostileCase("ts_year_2000", EBIKE, b'{"current_a": 1.5, "ts": "2000-01-01T00:00:00Z"}', "too_old"),
    HostileCase("ts_year_9000", EBIKE, b'{"current_a": 1.5, "ts": "9000-01-01T00:00:00+08:00"}', "from_future"),
    HostileCase("ts_epoch_ms_year_9999", EBIKE, b'{"current_a": 1.5, "ts": 253402300799999}', "from_future"),
]

_SIZE: list[HostileCase] = [
    HostileCase("payload_5000_bytes", EBIKE, _padded(5000), "too_large"),
    HostileCase("payload_4097_bytes", EBIKE, _padded(4097), "too_large"),
]

_STATUS: list[HostileCase] = [
    HostileCase("status_maybe", STATUS, b"maybe", "bad_status"),
    HostileCase("status_uppercase", STATUS, b"ONLINE", "bad_status"),
    HostileCase("status_trailing_newline", STATUS, b"online\n", "bad_status"),
    HostileCase("status_json", STATUS, b'{"status": "online"}', "bad_status"),
]

HOSTILE: list[HostileCase] = [
    *_TOPICS, *_NOT_JSON, *_NOT_OBJECT, *_WRONG_TYPE, *_OUT_OF_RANGE, *_INVALID_VALUE, *_MISSING,
    *_TIMESTAMPS, *_SIZE, *_STATUS,
]


def hostile_cases(now_ns: int) -> list[HostileCase]:
    """Every hostile case, with the clock-relative timestamps computed from now_ns."""
    eight_days_ago = now_ns - 8 * DAY_S * NS_PER_S
    in_ten_minutes = now_ns + 600 * NS_PER_S
    relative = [
        HostileCase("ts_8_days_old", EBIKE, _json({"current_a": 1.5, "ts": _rfc3339(eight_days_ago)}), "too_old"),
        HostileCase("ts_8_days_old_utc", EBIKE, _json({"current_a": 1.5, "ts": _rfc3339(eight_days_ago, 0)}),
                    "too_old"),
        HostileCase("ts_8_days_old_epoch_ms", EBIKE, _json({"current_a": 1.5, "ts": eight_days_ago // 1_000_000}),
                    "too_old"),
        HostileCase("ts_10_min_ahead", EBIKE, _json({"current_a": 1.5, "ts": _rfc3339(in_ten_minutes)}),
                    "from_future"),
        HostileCase("ts_10_min_ahead_negative_offset", EBIKE,
                    _json({"current_a": 1.5, "ts": _rfc3339(in_ten_minutes, -5)}), "from_future"),
        HostileCase("ts_10_min_ahead_epoch_ms", EBIKE, _json({"current_a": 1.5, "ts": in_ten_minutes // 1_000_000}),
                    "from_future"),
    ]
    return [*HOSTILE, *relative]


DECODER_ONLY: list[HostileCase] = [
    HostileCase("device_id_plus_wildcard", "{prefix}/{community}/ebike_charger/+/telemetry", VALID_EBIKE,
                "bad_topic"),
    HostileCase("last_level_hash_wildcard", "{prefix}/{community}/ebike_charger/ev-1/#", VALID_EBIKE, "bad_topic"),
    HostileCase("community_plus_wildcard", "{prefix}/+/ebike_charger/ev-1/telemetry", VALID_EBIKE, "bad_topic"),
    HostileCase("device_id_nul", "{prefix}/{community}/ebike_charger/ev\x00/telemetry", VALID_EBIKE, "bad_topic"),
    HostileCase("community_newline", "{prefix}/c\nb/ebike_charger/ev-1/telemetry", VALID_EBIKE, "bad_topic"),
    HostileCase("community_trailing_newline", "{prefix}/cb\n/ebike_charger/ev-1/telemetry", VALID_EBIKE,
                "bad_topic"),
    HostileCase("device_id_tab", "{prefix}/{community}/ebike_charger/ev\t1/telemetry", VALID_EBIKE, "bad_topic"),
    HostileCase("device_id_noncharacter", "{prefix}/{community}/ebike_charger/ev\uffff/telemetry", VALID_EBIKE,
                "bad_topic"),
    HostileCase("outside_prefix", "elsewhere/{community}/ebike_charger/ev-1/telemetry", VALID_EBIKE, "bad_topic"),
    HostileCase("prefix_alone", "{prefix}", VALID_EBIKE, "bad_topic"),
    HostileCase("prefix_extended", "{prefix}x/{community}/ebike_charger/ev-1/telemetry", VALID_EBIKE, "bad_topic"),
]

ACCEPTED_ODDITIES: list[tuple[str, str, bytes]] = [
    ("key_with_line_protocol_syntax", EBIKE,
     _json({"current_a": 1.5, 'evil\nebike_charger,community=x current_a=99,"q"=1 1': 1})),
    ("key_time", EBIKE, _json({"current_a": 1.5, "time": 0})),
    ("key_field_injection", EBIKE, _json({"current_a": 1.5, "current_a=1 evil": 5})),
    ("key_newline_field_injection", EBIKE, _json({"current_a": 1.5, "x\ncurrent_a": 99})),
    ("keys_named_like_tags", EBIKE,
     _json({"current_a": 1.5, "community": "evil", "device_id": "evil", "building": "evil", "grid": "evil"})),
    ("key_backslashes_and_quotes", EBIKE, _json({"current_a": 1.5, "a\\": 1, '\\"': 2, "=": 3, ",": 4, " ": 5})),
    ("key_empty", EBIKE, _json({"current_a": 1.5, "": 1})),
    ("key_chinese", EBIKE, _json({"current_a": 1.5, "电流": 99})),
    ("key_pydantic_internals", EBIKE,
     _json({"current_a": 1.5, "__class__": 1, "model_fields_set": 2, "__pydantic_extra__": 3, "_private": 4})),
    ("ignored_string_with_line_protocol", EBIKE,
     _json({"current_a": 1.5, "note": "x\nebike_charger,community=evil current_a=99 1"})),
    ("other_types_fields", EBIKE, _json({"current_a": 1.5, "alarm": "yes", "level_cm": 1e9, "occupied": None})),
    ("nesting_500_in_ignored_field", EBIKE, b'{"current_a": 1.5, "x": ' + _nested(500) + b"}"),
    ("fire_lane_key_injection", LANE, _json({"occupied": True, "object": "car", "object\n": "evil", "object ": 1})),
]
