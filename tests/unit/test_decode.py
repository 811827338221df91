"""The decoder against docs/devices.md: hostile messages are rejected by reason, valid ones decoded."""

from __future__ import annotations

import time
import unicodedata
from pathlib import Path

import orjson
import pytest

from ingest.decode import REASONS, Decoder, Rejection, parse_rfc3339_ns
from ingest.lineproto import encode_point
from kernel.clock import ManualClock
from kernel.devices import CATALOG
from kernel.ids import DeviceType
from kernel.reading import Point, Reading, StatusUpdate
from kernel.settings import Settings, parse_settings
from kernel.site import Site
from tests.hostile import ACCEPTED_ODDITIES, DECODER_ONLY, HOSTILE, HostileCase, hostile_cases

SITE_FILE = Path(__file__).resolve().parents[2] / "examples" / "site.yaml"
NS = 1_000_000_000
# 2026-05-28T20:26:40Z
NOW = 1_780_000_000 * NS
PREFIX = "cb"
COMMUNITY = "linfen-yicun"
DAY_NS = 86_400 * NS


@pytest.fixture(scope="module")
def settings() -> Settings:
    return parse_settings(SITE_FILE.read_text(encoding="utf-8"), source=str(SITE_FILE), env={})


@pytest.fixture
def decoder(settings: Settings) -> Decoder:
    return Decoder(settings.mqtt.prefix, Site(settings), ManualClock(NOW),
                   max_past_s=settings.ingest.max_past_s, max_future_s=settings.ingest.max_future_s)


def topic(device_type: str, device_id: str = "dev-1", kind: str = "telemetry", community: str = COMMUNITY) -> str:
    return f"{PREFIX}/{community}/{device_type}/{device_id}/{kind}"


def reading(decoder: Decoder, device_type: str, payload: object, **where: str) -> Reading:
    raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    got = decoder.decode(topic(device_type, **where), raw)
    assert isinstance(got, Reading), got
    return got


def rejection(decoder: Decoder, device_type: str, payload: object) -> Rejection:
    got = decoder.decode(topic(device_type), orjson.dumps(payload))
    assert isinstance(got, Rejection), got
    return got


def _params(cases: list[HostileCase]) -> list[object]:
    return [pytest.param(case, id=case.name) for case in cases]


@pytest.mark.parametrize("case", _params(hostile_cases(NOW)) + _params(DECODER_ONLY))
def test_hostile_message_is_rejected_with_its_reason(decoder: Decoder, case: HostileCase) -> None:
    rendered = case.topic_for(PREFIX, COMMUNITY)
    got = decoder.decode(rendered, case.payload)
    assert isinstance(got, Rejection), got
    assert (got.reason, got.topic, got.at_ns) == (case.reason, rendered, NOW)
    assert got.detail.strip()
    assert len(got.payload_head) <= 200
    assert got.payload_head == case.payload[:200].decode("utf-8", errors="replace")


def test_hostile_table_covers_every_reason() -> None:
    cases = hostile_cases(NOW)
    assert len(HOSTILE) >= 36
    assert {c.reason for c in cases} == set(REASONS)
    names = [c.name for c in [*cases, *DECODER_ONLY]] + [name for name, _, _ in ACCEPTED_ODDITIES]
    assert len(names) == len(set(names))


def _mosquitto_refuses(text: str) -> bool:
    """Characters Mosquitto (or paho) will not carry in a PUBLISH topic."""
    return any(ch in "+#" or unicodedata.category(ch) == "Cc" or (ord(ch) & 0xFFFE) == 0xFFFE for ch in text)


@pytest.mark.parametrize("case", _params(hostile_cases(NOW)))
def test_hostile_topic_is_publishable(case: HostileCase) -> None:
    rendered = case.topic_for("cbt0a1b2c3d", "c-1")
    assert rendered.startswith("cbt0a1b2c3d/")
    assert not _mosquitto_refuses(rendered)
    assert len(rendered.encode()) < 65535


@pytest.mark.parametrize("case", _params(DECODER_ONLY))
def test_decoder_only_topic_is_unpublishable_or_outside_the_prefix(case: HostileCase) -> None:
    rendered = case.topic_for(PREFIX, COMMUNITY)
    assert _mosquitto_refuses(rendered) or not rendered.startswith(PREFIX + "/")


@pytest.mark.parametrize(("name", "template", "payload"), ACCEPTED_ODDITIES, ids=[n for n, _, _ in ACCEPTED_ODDITIES])
def test_accepted_oddity_stores_only_contract_fields(decoder: Decoder, name: str, template: str,
                                                     payload: bytes) -> None:
    rendered = template.format(prefix=PREFIX, community=COMMUNITY)
    got = decoder.decode(rendered, payload)
    assert isinstance(got, Reading), got
    expected: dict[str, object] = (
        {"occupied": True, "object": "car"} if got.device_type is DeviceType.FIRE_LANE else {"current_a": 1.5}
    )
    assert got.fields == expected
    assert got.ignored_fields >= 1
    assert got.tags() == {"community": COMMUNITY, "device_id": rendered.split("/")[3],
                          "building": "unknown", "grid": "unknown"}
    line = encode_point(Point.of(got))
    assert "\n" not in line
    assert "evil" not in line and "99" not in line


VALID: dict[DeviceType, dict[str, object]] = {
    DeviceType.SMOKE_DETECTOR: {"obscuration_pct_m": 2, "alarm": False, "temperature_c": 21.5, "fault": False,
                                "tamper": True, "self_test": False, "battery_pct": 88, "rssi_dbm": -71},
    DeviceType.EBIKE_CHARGER: {"current_a": 3, "voltage_v": 221.5, "power_w": 700, "temperature_c": -3.25,
                               "charging": True, "energy_wh": 0, "battery_pct": 100, "rssi_dbm": -90.5},
    DeviceType.WATER_LEVEL: {"level_cm": -12.5, "rain_mm_h": 30, "battery_pct": 0, "rssi_dbm": 3},
    DeviceType.FIRE_LANE: {"occupied": True, "object": "ebike", "confidence": 0.875, "battery_pct": 50.5,
                           "rssi_dbm": -120},
    DeviceType.BATTERY_SHED: {"temperature_c": 18.5, "co_ppm": 2, "h2_ppm": 1.5, "voc_ppm": 0.3,
                              "obscuration_pct_m": 0, "humidity_pct": 71, "battery_pct": 90, "rssi_dbm": -80},
    DeviceType.WATER_LEAK: {"leak": True, "temperature_c": 14.5, "battery_pct": 97, "rssi_dbm": -84},
}


@pytest.mark.parametrize("device_type", list(DeviceType))
def test_valid_reading_decodes_numbers_as_floats_and_bools_as_bools(decoder: Decoder,
                                                                    device_type: DeviceType) -> None:
    fields = VALID[device_type]
    got = reading(decoder, device_type.value, {**fields, "seq": 41})
    assert got.fields == fields
    for key, value in got.fields.items():
        sent = fields[key]
        if isinstance(sent, bool | str):
            assert type(value) is type(sent)
        else:
            assert type(value) is float
    assert (got.community, got.device_type, got.device_id, got.seq) == (COMMUNITY, device_type, "dev-1", 41)
    assert (got.ts_ns, got.received_ns, got.ignored_fields) == (NOW, NOW, 0)


def test_every_contract_field_is_covered_by_the_valid_readings() -> None:
    for device_type, kind in CATALOG.items():
        assert set(kind.payload.model_fields) - {"ts", "seq"} == set(VALID[device_type])


@pytest.mark.parametrize("fields", [{"temperature_c": 20, "co_ppm": 0}, {"temperature_c": -40, "h2_ppm": 40000},
                                    {"temperature_c": 200, "co_ppm": 10000, "h2_ppm": 0}])
def test_battery_shed_needs_temperature_and_one_of_co_and_h2(decoder: Decoder, fields: dict[str, object]) -> None:
    assert reading(decoder, "battery_shed", fields).fields == {k: float(v) for k, v in fields.items()}


@pytest.mark.parametrize(("fields", "reason", "detail"), [
    ({"temperature_c": 20, "voc_ppm": 3}, "missing_field", "at least one of co_ppm and h2_ppm"),
    ({"co_ppm": 3}, "missing_field", "temperature_c"),
    ({"temperature_c": 20, "h2_ppm": 40001}, "out_of_range", "h2_ppm"),
    ({"temperature_c": 201, "co_ppm": 1}, "out_of_range", "temperature_c"),
    ({"temperature_c": 20, "co_ppm": 10001}, "out_of_range", "co_ppm"),
    ({"temperature_c": 20, "co_ppm": 1, "humidity_pct": 101}, "out_of_range", "humidity_pct"),
    ({"temperature_c": 20, "co_ppm": True}, "wrong_type", "co_ppm"),
])
def test_battery_shed_rejections_say_why(decoder: Decoder, fields: dict[str, object], reason: str,
                                         detail: str) -> None:
    got = decoder.decode(f"cb/{COMMUNITY}/battery_shed/bs-1/telemetry", orjson.dumps(fields))
    assert isinstance(got, Rejection), got
    assert got.reason == reason and detail in got.detail


@pytest.mark.parametrize(("fields", "reason", "detail"), [
    ({"temperature_c": 15}, "missing_field", "leak"),
    ({"leak": 1}, "wrong_type", "leak"),
    ({"leak": "true"}, "wrong_type", "leak"),
    ({"leak": None}, "wrong_type", "leak"),
    ({"leak": False, "temperature_c": 150.5}, "out_of_range", "temperature_c"),
    ({"leak": False, "temperature_c": -40.5}, "out_of_range", "temperature_c"),
])
def test_water_leak_rejections_say_why(decoder: Decoder, fields: dict[str, object], reason: str, detail: str) -> None:
    got = decoder.decode(f"cb/{COMMUNITY}/water_leak/lk-1/telemetry", orjson.dumps(fields))
    assert isinstance(got, Rejection), got
    assert got.reason == reason and detail in got.detail


def test_water_leak_needs_only_leak_and_ignores_fault_and_tamper(decoder: Decoder) -> None:
    assert reading(decoder, "water_leak", {"leak": False}).fields == {"leak": False}
    got = reading(decoder, "water_leak", {"leak": True, "fault": True, "tamper": True})
    assert got.fields == {"leak": True} and got.ignored_fields == 2


@pytest.mark.parametrize("fields", [{"alarm": True}, {"obscuration_pct_m": 0}, {"obscuration_pct_m": 100}])
def test_smoke_detector_needs_only_one_of_obscuration_and_alarm(decoder: Decoder, fields: dict[str, object]) -> None:
    assert reading(decoder, "smoke_detector", fields).fields == fields


@pytest.mark.parametrize(
    ("device_type", "fields"),
    [
        ("ebike_charger", {"current_a": 0, "battery_pct": 0}),
        ("ebike_charger", {"current_a": 100, "battery_pct": 100, "voltage_v": 400, "temperature_c": 200}),
        ("ebike_charger", {"current_a": 0, "voltage_v": 0, "temperature_c": -40}),
        ("water_level", {"level_cm": -500}),
        ("water_level", {"level_cm": 2000, "rain_mm_h": 0}),
        ("fire_lane", {"occupied": False, "confidence": 0}),
        ("fire_lane", {"occupied": True, "confidence": 1}),
        ("smoke_detector", {"alarm": True, "temperature_c": 150}),
        ("smoke_detector", {"alarm": True, "temperature_c": -40}),
        ("water_leak", {"leak": True, "temperature_c": 150}),
        ("water_leak", {"leak": False, "temperature_c": -40}),
    ],
)
def test_range_boundaries_are_accepted(decoder: Decoder, device_type: str, fields: dict[str, float | bool]) -> None:
    assert reading(decoder, device_type, fields).fields == {k: float(v) if not isinstance(v, bool) else v
                                                            for k, v in fields.items()}


@pytest.mark.parametrize("obj", ["car", "ebike", "debris", "other", "unknown"])
def test_fire_lane_object_values(decoder: Decoder, obj: str) -> None:
    assert reading(decoder, "fire_lane", {"occupied": True, "object": obj}).fields["object"] == obj


@pytest.mark.parametrize(
    ("ts", "expected_ns"),
    [
        ("2026-05-29T04:26:40+08:00", NOW),
        ("2026-05-28T20:26:40Z", NOW),
        ("2026-05-28T20:26:40z", NOW),
        ("2026-05-28T15:26:40-05:00", NOW),
        ("2026-05-28T20:26:39.5Z", NOW - NS // 2),
        ("2026-05-29T04:26:39.123+08:00", NOW - NS + 123_000_000),
        ("2026-05-28T20:26:39.000000001Z", NOW - NS + 1),
        ("2026-05-28T20:26:39.123456789+00:00", NOW - NS + 123_456_789),
        ("2026-05-28T20:20:00.999999999Z", NOW - 400 * NS + 999_999_999),
        (1_780_000_000_000, NOW),
        (1_779_999_999_999, NOW - 1_000_000),
    ],
)
def test_timestamps_are_decoded_to_exact_nanoseconds(decoder: Decoder, ts: str | int, expected_ns: int) -> None:
    got = reading(decoder, "ebike_charger", {"current_a": 1, "ts": ts})
    assert got.ts_ns == expected_ns
    assert got.received_ns == NOW
    assert "ts" not in got.fields


def test_parse_rfc3339_handles_offsets_and_fractions() -> None:
    assert parse_rfc3339_ns("1970-01-01T08:00:00+08:00") == 0
    assert parse_rfc3339_ns("1970-01-01T00:00:01.000000001Z") == NS + 1
    assert parse_rfc3339_ns("1969-12-31T23:59:59.5Z") == -NS // 2
    with pytest.raises(ValueError):
        parse_rfc3339_ns("1970-01-01T00:00:00")


def test_timestamp_with_trailing_newline_is_rejected(decoder: Decoder) -> None:
    got = rejection(decoder, "ebike_charger", {"current_a": 1, "ts": "2026-05-28T20:00:00Z\n"})
    assert got.reason == "bad_timestamp"


def test_timestamp_with_non_ascii_digits_is_rejected(decoder: Decoder) -> None:
    got = rejection(decoder, "ebike_charger", {"current_a": 1, "ts": "2026-05-28T20:00:00.\u0661\u0662\u0663Z"})
    assert got.reason == "bad_timestamp"


def test_missing_ts_means_received_time(decoder: Decoder) -> None:
    got = reading(decoder, "water_level", {"level_cm": 3})
    assert (got.ts_ns, got.received_ns, got.seq) == (NOW, NOW, None)


def test_integers_are_stored_as_floats(decoder: Decoder) -> None:
    got = reading(decoder, "ebike_charger", {"current_a": 7, "power_w": 10**15})
    assert got.fields == {"current_a": 7.0, "power_w": 1e15}
    assert all(type(v) is float for v in got.fields.values())


def test_unknown_fields_are_counted_and_not_stored(decoder: Decoder) -> None:
    got = reading(decoder, "water_level", {"level_cm": 3, "humidity": 40, "firmware": "1.2", "nested": {"a": 1}})
    assert got.fields == {"level_cm": 3.0}
    assert got.ignored_fields == 3


def test_ts_and_seq_are_not_fields(decoder: Decoder) -> None:
    got = reading(decoder, "water_level", {"level_cm": 3, "seq": 0, "ts": 1_780_000_000_000})
    assert got.fields == {"level_cm": 3.0}
    assert (got.seq, got.ignored_fields) == (0, 0)


@pytest.mark.parametrize(
    ("community", "device_id", "building", "grid"),
    [
        ("linfen-yicun", "ev-b02-p01", "b02", "g1"),
        ("linfen-yicun", "wl-gate-east", "b03", "g2"),
        ("linfen-ercun", "sd-b11-0301", "b11", "g3"),
        ("linfen-ercun", "ev-b02-p01", "unknown", "unknown"),
        ("linfen-yicun", "ev-not-listed", "unknown", "unknown"),
        ("no-such-community", "ev-b02-p01", "unknown", "unknown"),
    ],
)
def test_placement_comes_from_the_site_file(decoder: Decoder, community: str, device_id: str, building: str,
                                            grid: str) -> None:
    got = reading(decoder, "ebike_charger", {"current_a": 1}, device_id=device_id, community=community)
    assert got.tags() == {"community": community, "device_id": device_id, "building": building, "grid": grid}


@pytest.mark.parametrize(("payload", "online"), [(b"online", True), (b"offline", False)])
def test_status_updates(decoder: Decoder, payload: bytes, online: bool) -> None:
    got = decoder.decode(topic("smoke_detector", "sd-b01-0501", "status"), payload)
    assert got == StatusUpdate(COMMUNITY, DeviceType.SMOKE_DETECTOR, "sd-b01-0501", online, NOW)


def test_empty_status_is_ignored(decoder: Decoder) -> None:
    assert decoder.decode(topic("fire_lane", "fl-1", "status"), b"") is None


@pytest.mark.parametrize("community", [COMMUNITY, "linfen-ercun", "elsewhere"])
def test_the_services_own_alert_topic_is_ignored(decoder: Decoder, community: str) -> None:
    assert decoder.decode(f"{PREFIX}/{community}/alerts", b'{"event": "fired"}') is None


def test_payload_size_limit_is_4096_bytes(decoder: Decoder) -> None:
    head, tail = b'{"current_a": 2, "pad": "', b'"}'
    fits = head + b"x" * (4096 - len(head) - len(tail)) + tail
    assert len(fits) == 4096
    assert reading(decoder, "ebike_charger", fits).fields == {"current_a": 2.0}
    too_big = decoder.decode(topic("ebike_charger"), fits[:-2] + b'x"}')
    assert isinstance(too_big, Rejection) and too_big.reason == "too_large"


@pytest.mark.parametrize(
    ("offset_ns", "reason"),
    [
        (-7 * DAY_NS, None),
        (-7 * DAY_NS - NS, "too_old"),
        (-7 * DAY_NS - 1, "too_old"),
        (300 * NS, None),
        (301 * NS, "from_future"),
        (300 * NS + 1, "from_future"),
    ],
)
def test_time_window_edges(decoder: Decoder, offset_ns: int, reason: str | None) -> None:
    seconds, frac = divmod(NOW + offset_ns, NS)
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"
    got = decoder.decode(topic("ebike_charger"), orjson.dumps({"current_a": 1, "ts": ts}))
    if reason is None:
        assert isinstance(got, Reading) and got.ts_ns == NOW + offset_ns
    else:
        assert isinstance(got, Rejection) and got.reason == reason


@pytest.mark.parametrize(
    ("offset_ms", "reason"),
    [(-7 * 86_400_000, None), (-7 * 86_400_000 - 1000, "too_old"), (300_000, None), (301_000, "from_future")],
)
def test_time_window_edges_in_epoch_ms(decoder: Decoder, offset_ms: int, reason: str | None) -> None:
    got = decoder.decode(topic("ebike_charger"), orjson.dumps({"current_a": 1, "ts": NOW // 1_000_000 + offset_ms}))
    if reason is None:
        assert isinstance(got, Reading) and got.ts_ns == NOW + offset_ms * 1_000_000
    else:
        assert isinstance(got, Rejection) and got.reason == reason


def test_clock_moves_the_window(decoder: Decoder) -> None:
    payload = orjson.dumps({"current_a": 1, "ts": "2026-05-28T20:36:40Z"})
    first = decoder.decode(topic("ebike_charger"), payload)
    assert isinstance(first, Rejection) and first.reason == "from_future"
    assert isinstance(decoder.clock, ManualClock)
    decoder.clock.advance(600)
    second = decoder.decode(topic("ebike_charger"), payload)
    assert isinstance(second, Reading) and second.received_ns == NOW + 600 * NS


def test_payload_head_is_at_most_200_characters_of_any_bytes(decoder: Decoder) -> None:
    payload = "读数".encode() * 1000
    got = decoder.decode(topic("ebike_charger"), payload)
    assert isinstance(got, Rejection) and got.reason == "too_large"
    assert got.payload_head == payload[:200].decode("utf-8", errors="replace")
    assert len(got.payload_head) <= 200
