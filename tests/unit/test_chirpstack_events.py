"""tests/chirpstack_events.py writes uplink events as ChirpStack v4's JSON integrations do, and reads
them back."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from google.protobuf import json_format

from tests.chirpstack_events import parse_uplink, uplink_event, uplink_json

EUI = "24e124538c123456"
APP = "17c82e96-be03-4f38-aef3-f83d48582d97"
DEDUP = "3ac7e3c4-4401-4b8d-9386-a5c902f9202d"
WHEN = datetime(2026, 5, 28, 20, 26, 40, 775023, tzinfo=UTC)
DECODED = {"battery": 100, "event": "testing alarm with normal battery", "temperature": 28, "list": [1, "a"]}


def test_round_trip() -> None:
    payload = uplink_json(EUI, APP, f_cnt=41, f_port=85, data=bytes.fromhex("221E64001C40"), obj=DECODED,
                          rssi=[-36, -101], time=WHEN, dedup_id=DEDUP)
    event = parse_uplink(payload)
    assert event == uplink_event(EUI, APP, f_cnt=41, f_port=85, data=bytes.fromhex("221E64001C40"), obj=DECODED,
                                 rssi=[-36, -101], time=WHEN, dedup_id=DEDUP)
    assert (event.device_info.dev_eui, event.device_info.application_id) == (EUI, APP)
    assert (event.f_cnt, event.f_port, event.data, event.deduplication_id) == (41, 85, b"\x22\x1e\x64\x00\x1c\x40",
                                                                               DEDUP)
    assert [rx.rssi for rx in event.rx_info] == [-36, -101]
    assert event.time.ToDatetime(tzinfo=UTC) == WHEN
    assert json_format.MessageToDict(event.object) == DECODED


def test_the_json_is_chirpstacks() -> None:
    body = orjson.loads(uplink_json(EUI, APP, f_cnt=7, f_port=1, data=b"\xaa", obj={"battery": 100}, rssi=[-36],
                                    time=WHEN, dedup_id=DEDUP))
    assert body == {
        "deduplicationId": DEDUP,
        "time": "2026-05-28T20:26:40.775023+00:00",
        "deviceInfo": {"devEui": EUI, "applicationId": APP},
        "fCnt": 7,
        "fPort": 1,
        "data": "qg==",
        "object": {"battery": 100.0},
        "rxInfo": [{"gatewayId": "0000000000000001", "rssi": -36}],
    }


def test_zero_values_are_absent() -> None:
    body = orjson.loads(uplink_json(EUI, APP, f_cnt=0, f_port=1, data=b"\x01"))
    assert "fCnt" not in body
    assert set(body) == {"deviceInfo", "fPort", "data"}  # no time, deduplicationId, object or rxInfo given
    assert parse_uplink(orjson.dumps(body)).f_cnt == 0
    # `object` is a message field: an empty one that was set is written, unlike a zero scalar.
    assert orjson.loads(uplink_json(EUI, APP, f_cnt=1, f_port=1, data=b"", obj={}))["object"] == {}


def test_unknown_fields_and_either_time_are_read() -> None:
    payload = uplink_json(EUI, APP, f_cnt=3, f_port=2, data=b"\x01", time=WHEN,
                          extra_fields={"fieldOfANewerChirpStack": {"x": [1, 2]}, "anotherOne": "v"})
    assert orjson.loads(payload)["anotherOne"] == "v"
    event = parse_uplink(payload)
    assert (event.f_cnt, event.f_port, event.time.ToDatetime(tzinfo=UTC)) == (3, 2, WHEN)
    body = orjson.loads(payload)
    body["time"] = "2026-05-28T20:26:40.775023Z"
    assert parse_uplink(orjson.dumps(body)).time.ToDatetime(tzinfo=UTC) == WHEN


def test_a_full_chirpstack_shaped_event_is_read() -> None:
    # Fields the helpers do not write (tags, devAddr, dr, txInfo with an enum by name, gateway
    # metadata, nanosecond time) in the shape of ChirpStack's documented `up` example.
    event = parse_uplink(orjson.dumps({
        "deduplicationId": DEDUP, "time": "2026-05-28T20:26:40.775023242+00:00",
        "deviceInfo": {"tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242", "tenantName": "Linfen",
                       "applicationId": APP, "applicationName": "smoke", "deviceProfileName": "GS524N",
                       "deviceName": "building 3 stairwell", "devEui": EUI, "tags": {"building": "3"}},
        "devAddr": "00189440", "dr": 5, "fCnt": 12, "fPort": 85, "data": "Ih5kABxA",
        "object": {"battery": 100.0, "event": "normal"},
        "rxInfo": [{"gatewayId": "0016c001f153a14c", "uplinkId": 4217106255, "rssi": -57, "snr": 9.5,
                    "context": "E3OWOQ==", "metadata": {"region_common_name": "CN470"}}],
        "txInfo": {"frequency": 486300000,
                   "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 7, "codeRate": "CR_4_5"}}},
        "regionConfigId": "cn470_10",
    }))
    assert event.device_info.tags["building"] == "3"
    assert (event.f_cnt, event.data, event.rx_info[0].snr) == (12, bytes.fromhex("221E64001C40"), 9.5)
    assert event.time.nanos == 775023242
    assert event.object["event"] == "normal"


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        uplink_json(EUI, APP, f_cnt=1, f_port=1, data=b"", time=datetime(2026, 5, 28))
