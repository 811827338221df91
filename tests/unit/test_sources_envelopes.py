"""ChirpStack's uplink events (built with its own protobufs), CTWing's and OneNET's pushes: counters,
identities, time, signatures and URL checks read as each platform documents them."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import orjson
import pytest

from ingest.decode import Rejection
from ingest.sources.types.onenet import signature
from kernel.reading import Reading, StatusUpdate
from tests.chirpstack_events import uplink_json
from tests.sources_kit import NOW_NS, ctwing_report, decoder_for
from tests.sources_kit import onenet_push as kit_onenet_push

APP = "17c82e96-be03-4f38-aef3-f83d48582d97"
SITE = f"""
sources:
  - {{id: lora, type: chirpstack, application_id: {APP}}}
  - {{id: lora-gs, type: chirpstack, application_id: 0b7f0e8c-64f1-4b3b-8f63-8c3f2f25a0aa, profile: gs524n}}
  - {{id: aep, type: ctwing, token: "a secret token", profile: nb-smoke}}
  - {{id: mobile, type: onenet, token: "onenet push token", profile: nb-smoke-studio, community: linfen-yicun}}
devices:
  - {{id: wl-pit-1, type: water_level, community: linfen-yicun, building: b02, source: lora, address: A84041000181C2E1}}
  - {{id: sd-gs-1, type: smoke_detector, community: linfen-yicun, building: b02, source: lora-gs,
     address: 24e124535b316056}}
  - {{id: sd-nb-1, type: smoke_detector, community: linfen-yicun, building: b02, source: aep,
     address: 7c1e2a9e2b7c4a3b9a1f0d6e5c4b3a21}}
  - {{id: sd-nb-2, type: smoke_detector, community: linfen-yicun, building: b02, source: mobile,
     address: nb-smoke-0301}}
"""
WHEN = datetime.fromtimestamp(NOW_NS / 1e9 - 60, tz=UTC)


def up_topic(dev_eui: str, app: str = APP) -> str:
    return f"application/{app}/device/{dev_eui}/event/up"


def test_chirpstack_object_read_as_a_reading_with_its_envelope() -> None:
    decoder, _, _ = decoder_for(SITE)
    body = uplink_json("a84041000181c2e1", APP, f_cnt=41, f_port=2, data=b"\x01", obj={"level_cm": 12.5},
                       rssi=[-117, -96, -109], time=WHEN, dedup_id="3ac7e3c4-4401-4b8d-9386-a5c902f97202")
    [got] = decoder.decode(up_topic("a84041000181c2e1"), body)
    assert isinstance(got, Reading), got
    assert (got.device_id, got.seq, got.ts_ns) == ("wl-pit-1", 41, NOW_NS - 60 * 1_000_000_000)
    assert got.fields == {"level_cm": 12.5, "rssi_dbm": -96.0}


def test_chirpstack_frame_counter_zero_is_absent_and_means_zero() -> None:
    decoder, _, _ = decoder_for(SITE)
    body = uplink_json("A84041000181C2E1", APP, f_cnt=0, f_port=2, data=b"\x01", obj={"level_cm": 3})
    assert b"fCnt" not in body  # protobuf JSON leaves a zero out
    [got] = decoder.decode(up_topic("A84041000181C2E1"), body)
    assert isinstance(got, Reading) and got.seq == 0


def test_chirpstack_repeated_deduplication_id_is_a_duplicate() -> None:
    decoder, reader, _ = decoder_for(SITE)
    seen = []
    reader.on_duplicate = lambda: seen.append(1)
    body = uplink_json("a84041000181c2e1", APP, f_cnt=7, f_port=2, data=b"\x01", obj={"level_cm": 3},
                       dedup_id="d1b9b0b4-8a4f-4f55-9f9e-1c5f3f5b1a10")
    assert len(decoder.decode(up_topic("a84041000181c2e1"), body)) == 1
    assert decoder.decode(up_topic("a84041000181c2e1"), body) == []
    assert seen == [1]


def test_chirpstack_fields_newer_than_the_protobufs_are_tolerated() -> None:
    decoder, _, _ = decoder_for(SITE)
    body = uplink_json("a84041000181c2e1", APP, f_cnt=8, f_port=2, data=b"\x01", obj={"level_cm": 4},
                       extra_fields={"regionConfigId2": "cn470_10", "relayRxInfo2": {"devEui": "x"}})
    [got] = decoder.decode(up_topic("a84041000181c2e1"), body)
    assert isinstance(got, Reading) and got.fields["level_cm"] == 4.0


def test_chirpstack_other_events_and_other_applications() -> None:
    decoder, _, _ = decoder_for(SITE)
    assert decoder.decode(f"application/{APP}/device/a84041000181c2e1/event/join", b"{}") == []
    assert decoder.decode(f"application/{APP}/device/a84041000181c2e1/event/status", b"{}") == []
    got = decoder.decode("application/other-app/device/a84041000181c2e1/event/up", b"{}")
    assert isinstance(got, Rejection) and got.reason == "bad_topic"  # not this source's application


def test_chirpstack_without_a_codec_output_is_rejected_with_why() -> None:
    decoder, _, _ = decoder_for(SITE)
    body = uplink_json("a84041000181c2e1", APP, f_cnt=9, f_port=2, data=b"\x01")
    [got] = decoder.decode(up_topic("a84041000181c2e1"), body)
    assert isinstance(got, Rejection) and got.reason == "no_object" and got.source == "lora"


def test_chirpstack_gs524n_through_its_profile() -> None:
    decoder, _, _ = decoder_for(SITE)
    obj = {"version": 2, "protocol": 2, "type": "smoke sensor", "battery": 97, "concentration": 15,
           "temperature": 30, "event": "alarm"}
    body = uplink_json("24E124535B316056", "0b7f0e8c-64f1-4b3b-8f63-8c3f2f25a0aa", f_cnt=310, f_port=85,
                       data=bytes.fromhex("2211610F1E40"), obj=obj, rssi=[-101])
    [got] = decoder.decode(up_topic("24E124535B316056", "0b7f0e8c-64f1-4b3b-8f63-8c3f2f25a0aa"), body)
    assert isinstance(got, Reading), got
    assert got.fields == {"alarm": True, "self_test": False, "fault": False, "tamper": False, "battery_pct": 97.0,
                          "temperature_c": 30.0, "rssi_dbm": -101.0}


def ctwing(alarm_status: int, *, sn: int = 12, device: str = "7c1e2a9e2b7c4a3b9a1f0d6e5c4b3a21") -> bytes:
    return ctwing_report(device, alarm_status, sn=sn, ts_ms=NOW_NS // 1_000_000 - 5000)


def test_ctwing_data_report_through_the_profile() -> None:
    decoder, _, _ = decoder_for(SITE)
    [got] = decoder.decode("/ingest/ctwing/aep", ctwing(1, sn=1524))
    assert isinstance(got, Reading), got
    assert (got.device_id, got.seq, got.ts_ns) == ("sd-nb-1", 1524, NOW_NS - 5_000_000_000)
    assert got.fields["alarm"] is True and got.fields["battery_pct"] == 80.0


def test_ctwing_without_a_counter_a_retried_push_is_taken_once() -> None:
    decoder, _, _ = decoder_for(SITE)
    push = ctwing(7, sn=-1)
    [first] = decoder.decode("/ingest/ctwing/aep", push)
    assert isinstance(first, Reading) and first.seq is None
    assert decoder.decode("/ingest/ctwing/aep", push) == []


def test_ctwing_online_offline_report_and_unknown_device() -> None:
    decoder, _, _ = decoder_for(SITE)
    report = {"timestamp": NOW_NS // 1_000_000, "tenantId": "2000033489", "protocol": "lwm2m",
              "productId": "15083367", "messageType": "deviceOnlineOfflineReport", "eventType": 0,
              "deviceId": "7c1e2a9e2b7c4a3b9a1f0d6e5c4b3a21"}
    [got] = decoder.decode("/ingest/ctwing/aep", orjson.dumps(report))
    assert isinstance(got, StatusUpdate) and got.online is False and got.device_id == "sd-nb-1"
    [unknown] = decoder.decode("/ingest/ctwing/aep", ctwing(1, device="ffff"))
    assert isinstance(unknown, Rejection) and unknown.reason == "unknown_device" and unknown.address == "ffff"


def test_ctwing_token_checked() -> None:
    _, reader, _ = decoder_for(SITE)
    adapter = reader.push_adapter("ctwing", "aep")
    assert adapter is not None
    assert adapter.check("POST", {"token": "a secret token"}, b"{}").status == 200
    assert adapter.check("POST", {"token": "a secret tokeN"}, b"{}").status == 403
    assert adapter.check("POST", {}, b"{}").status == 401
    assert reader.push_adapter("onenet", "aep") is None


def test_onenet_signature_is_base64_md5_of_token_nonce_msg() -> None:
    msg, nonce = '{"a":1}', "abcdefgh"
    expected = base64.b64encode(hashlib.md5(("onenet push token" + nonce + msg).encode()).digest()).decode()
    assert signature("onenet push token", nonce, msg) == expected


def onenet_push(msg: dict[str, object], token: str = "onenet push token") -> bytes:
    return kit_onenet_push(msg, token)


STUDIO = {"messageType": "notify", "notifyType": "property", "productId": "Hq2sM7lQ1v", "deviceName": "nb-smoke-0301",
          "data": {"id": "1763", "params": {"SmokeSensorState": {"value": 1, "time": NOW_NS // 1_000_000 - 2000},
                                            "BatteryPercentage": {"value": 92, "time": NOW_NS // 1_000_000 - 2000}}}}


def test_onenet_url_check_and_signed_pushes() -> None:
    _, reader, _ = decoder_for(SITE)
    adapter = reader.push_adapter("onenet", "mobile")
    assert adapter is not None
    check = adapter.check("GET", {"msg": "xyz123", "nonce": "n0nce", "signature": signature("onenet push token",
                                                                                            "n0nce", "xyz123")}, b"")
    assert (check.status, check.answer) == (200, "xyz123")
    sig = signature("onenet push token", "n0nce", "xyz123")
    # a '+' of the Base64 signature decoded to a space in the URL still matches
    assert adapter.check("GET", {"msg": "xyz123", "nonce": "n0nce", "signature": sig.replace("+", " ")},
                         b"").status == 200
    assert adapter.check("GET", {"msg": "xyz124", "nonce": "n0nce", "signature": sig}, b"").status == 403
    assert adapter.check("POST", {}, onenet_push(STUDIO)).status == 200
    assert adapter.check("POST", {}, onenet_push(STUDIO, token="wrong token!")).status == 403
    assert adapter.check("POST", {}, orjson.dumps({"msg": "x"})).status == 401


def test_onenet_studio_property_report_and_life_cycle() -> None:
    decoder, _, _ = decoder_for(SITE)
    [got] = decoder.decode("/ingest/onenet/mobile", onenet_push(STUDIO))
    assert isinstance(got, Reading), got
    assert got.device_id == "sd-nb-2" and got.fields == {"alarm": True, "battery_pct": 92.0}
    assert got.ts_ns == NOW_NS - 2_000_000_000
    life = {"messageType": "lifeCycle", "deviceName": "nb-smoke-0301", "productId": "Hq2sM7lQ1v",
            "data": {"status": 0}}
    [off] = decoder.decode("/ingest/onenet/mobile", onenet_push(life))
    assert isinstance(off, StatusUpdate) and off.online is False


@pytest.mark.parametrize(("status", "online"), [(1, True), (0, False)])
def test_onenet_older_platform_status(status: int, online: bool) -> None:
    decoder, _, _ = decoder_for(SITE)
    [got] = decoder.decode("/ingest/onenet/mobile", onenet_push({"at": 1, "type": 2, "dev_id": "nb-smoke-0301",
                                                                 "status": status, "login_type": 10}))
    assert isinstance(got, StatusUpdate) and got.online is online


def test_onenet_retry_with_a_new_nonce_is_the_same_message() -> None:
    decoder, _, _ = decoder_for(SITE)
    assert len(decoder.decode("/ingest/onenet/mobile", kit_onenet_push(STUDIO, "onenet push token", "n1"))) == 1
    assert decoder.decode("/ingest/onenet/mobile", kit_onenet_push(STUDIO, "onenet push token", "n2")) == []
