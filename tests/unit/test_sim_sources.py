"""The simulator speaks the sources' formats (device_sim.sources) as the service reads them: readings of
the simulator's own models, encoded as each system sends them, come back through the service's decoder
(ingest.sources and the built-in profiles) as the same fields, time and counter, as far as the system
carries them; availability comes back as status; pushes prove themselves as the platforms' do."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest
from chirpstack_api.integration import integration_pb2
from google.protobuf import json_format

from device_sim.sources import ENCODERS, Out, Registration, Unsupported, make_encoder
from device_sim.specs import DeviceSpec, site_devices
from device_sim.types import make_model
from ingest.decode import Rejection
from ingest.sources.reader import CHARGING_A, SourceReader
from kernel.ids import DeviceType
from kernel.reading import Reading, StatusUpdate
from kernel.sources import SOURCE_CONFIGS
from tests.sources_kit import NOW_NS, decoder_for

SITE = """
sources:
  - {id: hub, type: zigbee2mqtt, community: linfen-yicun}
  - {id: lora, type: chirpstack, application_id: 17c82e96-be03-4f38-aef3-f83d48582d97}
  - {id: strip, type: tasmota}
  - {id: shellies, type: shelly}
  - {id: aep, type: ctwing, token: "a-ctwing-token+/=", profile: nb-smoke}
  - {id: studio, type: onenet, token: an-onenet-token, profile: nb-smoke-studio}
devices:
  - {id: sd-z, type: smoke_detector, community: linfen-yicun, building: b02, source: hub, address: b02/0301 smoke}
  - {id: plug-z, type: ebike_charger, community: linfen-yicun, building: b02, source: hub, address: shed plug 1}
  - {id: sd-lora, type: smoke_detector, community: linfen-yicun, building: b02, source: lora,
     address: 24E124535B316056, profile: gs524n}
  - {id: wl-lora, type: water_level, community: linfen-yicun, building: b02, source: lora,
     address: a84041000181c4e2, profile: dds75-lb, vars: {mount_height_cm: 180}}
  - {id: fl-lora, type: fire_lane, community: linfen-yicun, building: b02, source: lora, address: a84041000181c4e3}
  - {id: ev-p1, type: ebike_charger, community: linfen-yicun, building: b02, source: strip, address: shed_strip_1,
     port: 1}
  - {id: ev-p2, type: ebike_charger, community: linfen-yicun, building: b02, source: strip, address: shed_strip_1,
     port: 2}
  - {id: ev-s1, type: ebike_charger, community: linfen-yicun, building: b02, source: shellies,
     address: shellyplus2pm-a8032ab1, port: 2}
  - {id: sd-nb, type: smoke_detector, community: linfen-yicun, building: b02, source: aep,
     address: 7c1e2a9e2b7c4a3b9a1f0d6e5c4b3a21}
  - {id: sd-studio, type: smoke_detector, community: linfen-yicun, building: b02, source: studio,
     address: nb-smoke-0301}
"""

START_MS = NOW_NS // 1_000_000 - 3 * 3600 * 1000  # three hours before the decoder's clock
FLAGS = ("alarm", "self_test", "fault", "tamper")
# What each device's source carries (section-1 field -> the largest difference its rounding makes).
SMOKE_CODE = {"alarm": 0, "self_test": 0, "fault": 0, "tamper": 0, "battery_pct": 0.5}
CARRIED: dict[str, dict[str, float]] = {
    "sd-z": {"alarm": 0, "self_test": 0, "tamper": 0, "battery_pct": 0.5, "temperature_c": 0},
    "plug-z": {"current_a": 0.005, "voltage_v": 0.5, "power_w": 0.5, "energy_wh": 5.0, "charging": 0},
    # (a LoRaWAN uplink's signal is the gateway's: rxInfo)
    "sd-lora": {**SMOKE_CODE, "temperature_c": 0.5, "rssi_dbm": 0},
    "wl-lora": {"level_cm": 0.051, "rssi_dbm": 0},
    "fl-lora": {"occupied": 0, "object": 0, "confidence": 0, "battery_pct": 0, "rssi_dbm": 0},
    "ev-p1": {"current_a": 0.0005, "voltage_v": 0.5, "power_w": 0.5, "energy_wh": 0.5, "charging": 0},
    "ev-p2": {"current_a": 0.0005, "voltage_v": 0.5, "power_w": 0.5, "energy_wh": 0.5, "charging": 0},
    # (a Shelly's temperature is its relay's, not the charger's: not carried)
    "ev-s1": {"current_a": 0.0005, "voltage_v": 0.05, "power_w": 0.05, "energy_wh": 0.0005, "charging": 0},
    "sd-nb": SMOKE_CODE,
    "sd-studio": {"alarm": 0, "fault": 0, "tamper": 0, "battery_pct": 0.5},
}
# Who says the time and the counter: the message (ms, or Tasmota's local time to the second), or nobody
# (the service takes the time of receipt).
CLOCKS = {"sd-z": "receipt", "plug-z": "receipt", "ev-s1": "receipt", "ev-p1": "second", "ev-p2": "second",
          "sd-studio": "message"}
COUNTED = {"sd-lora", "wl-lora", "fl-lora", "sd-nb"}
# Behaviours at reading numbers, so that each state a source can say is said once, alone.
SCRIPTS: dict[DeviceType, dict[int, tuple[str, dict[str, Any]]]] = {
    DeviceType.SMOKE_DETECTOR: {2: ("self_test", {}), 5: ("fire", {}), 9: ("extinguish", {}), 15: ("tamper", {}),
                                17: ("tamper", {"on": False}), 19: ("fault", {}), 21: ("fault", {"on": False}),
                                23: ("battery", {"pct": 8})},
    DeviceType.EBIKE_CHARGER: {1: ("charge", {}), 6: ("overcurrent", {}), 9: ("unplug", {})},
    DeviceType.WATER_LEVEL: {1: ("rain", {"peak_mm_h": 120, "minutes": 10})},
    DeviceType.FIRE_LANE: {2: ("park", {}), 6: ("leave", {})},
}


def registrations() -> tuple[Any, SourceReader, dict[str, Registration]]:
    decoder, reader, settings = decoder_for(SITE)
    specs, left_out = site_devices(settings)
    assert left_out == {}
    regs = {s.device_id: s.via for s in specs if s.via is not None}
    assert set(regs) == set(CARRIED)
    return decoder, reader, regs


def simulated(device_type: DeviceType, n: int = 26, seed: int = 7) -> list[dict[str, Any]]:
    """n readings of one simulated device a minute apart, its script played (ts in ms, seq from 0)."""
    model = make_model(device_type, random.Random(seed))
    script = SCRIPTS.get(device_type, {})
    out = []
    for i in range(n):
        t = START_MS / 1000.0 + 60.0 * i
        if i in script:
            model.begin(script[i][0], t, dict(script[i][1]))
        out.append({"ts": START_MS + 60_000 * i, "seq": i, **model.fields(t)})
    return out


def decode(decoder: Any, reader: SourceReader, reg: Registration, out: Out) -> list[Any]:
    """What the service makes of one message: from the broker, or as a push that must prove itself."""
    if reg.source.transport == "http":
        parts = urlsplit(out.topic)
        adapter = reader.push_adapter(reg.source.type, reg.source.id)
        assert adapter is not None and parts.path == adapter.topic
        verdict = adapter.check("POST", dict(parse_qsl(parts.query)), out.payload)
        assert verdict.status == 200, verdict.reason
        items = decoder.decode(parts.path, out.payload)
    else:
        assert out.retain is False
        items = decoder.decode(out.topic, out.payload)
    assert isinstance(items, list), items
    return items


def expected(device_id: str, body: dict[str, Any], name: str) -> Any:
    """The simulated value the service must read back; a flag is false unless the reading says it, and a
    detector's self-test (its alarm sounding) is not an alarm where the source codes one state."""
    value = body.get(name, False) if name in FLAGS else body[name]
    if name == "alarm" and device_id not in ("sd-z",) and body.get("self_test"):
        return False
    return value


@pytest.mark.parametrize("device_id", sorted(CARRIED))
def test_encoded_readings_decode_to_the_same_fields(device_id: str) -> None:
    decoder, reader, regs = registrations()
    reg = regs[device_id]
    encoder = make_encoder(reg.source, timezone=reg.timezone)
    bodies = simulated(reg.device_type)
    said: set[str] = set()
    for body in bodies:
        outs = encoder.readings([reg], [body])
        assert len(outs) == 1
        items = decode(decoder, reader, reg, outs[0])
        [got] = [r for r in items if isinstance(r, Rejection) or r.device_id == device_id]
        assert isinstance(got, Reading), got
        carried = {k: v for k, v in CARRIED[device_id].items() if k in FLAGS or k in body or k == "charging"}
        assert set(got.fields) == set(carried), (got.fields, body)
        if "charging" in carried:  # a socket's current says it: the service's own reading of it
            assert got.fields.pop("charging") is (got.fields["current_a"] >= CHARGING_A)
            carried.pop("charging")
        for name, tolerance in carried.items():
            want = expected(device_id, body, name)
            if isinstance(want, bool | str):
                assert got.fields[name] == want, (name, got.fields, body)
            else:
                assert got.fields[name] == pytest.approx(want, abs=tolerance + 1e-9), (name, got.fields, body)
        clock = CLOCKS.get(device_id, "message")
        want_ns = {"receipt": NOW_NS, "second": body["ts"] // 1000 * 1_000_000_000,
                   "message": body["ts"] * 1_000_000}[clock]
        assert got.ts_ns == want_ns
        assert got.seq == (body["seq"] if device_id in COUNTED else None)
        said |= {name for name in FLAGS if got.fields.get(name) is True}
    # The script made a detector say each state its source can say.
    assert said == {name for name in FLAGS if name in CARRIED[device_id]}


@pytest.mark.parametrize("device_id", sorted(CARRIED))
def test_availability_reads_back_as_status(device_id: str) -> None:
    decoder, reader, regs = registrations()
    reg = regs[device_id]
    encoder = make_encoder(reg.source, timezone=reg.timezone)
    for online in (True, False):
        outs = encoder.status(reg, online)
        if reg.source.type == "chirpstack":
            assert outs == []  # ChirpStack publishes no availability
            continue
        [out] = outs
        assert out.retain is (reg.source.transport == "mqtt")
        if reg.source.transport == "http":
            items = decode(decoder, reader, reg, out)
        else:
            items = decoder.decode(out.topic, out.payload)
        mine = [s for s in items if isinstance(s, StatusUpdate) and s.device_id == device_id]
        assert [s.online for s in mine] == [online], items


def test_a_strip_reports_its_ports_in_one_message_at_tasmotas_resolution() -> None:
    decoder, reader, regs = registrations()
    p1, p2 = regs["ev-p1"], regs["ev-p2"]
    encoder = make_encoder(p1.source, timezone=p1.timezone)
    a, b = simulated(DeviceType.EBIKE_CHARGER, seed=1)[3], simulated(DeviceType.EBIKE_CHARGER, seed=2)[7]
    [out] = encoder.readings([p1, p2], [a, b])
    assert out.topic == "tele/shed_strip_1/SENSOR"
    message = orjson.loads(out.payload)
    energy = message["ENERGY"]
    assert all(isinstance(energy[k], list) and len(energy[k]) == 2 for k in ("Total", "Power", "Voltage", "Current"))
    assert energy["Total"] == [round(a["energy_wh"] / 1000, 3), round(b["energy_wh"] / 1000, 3)]
    assert all(isinstance(v, int) for v in energy["Voltage"] + energy["Power"])  # VoltRes 0, WattRes 0
    # Local time in the site's zone (Asia/Shanghai), without an offset.
    assert message["Time"] == "2025-12-06T07:03:00"  # a's time, 3 min after 23:00 UTC
    items = decode(decoder, reader, p1, out)
    got = {r.device_id: r for r in items if isinstance(r, Reading)}
    assert set(got) == {"ev-p1", "ev-p2"}
    assert got["ev-p2"].fields["current_a"] == pytest.approx(b["current_a"], abs=0.0005)


def test_chirpstack_uplinks_are_chirpstacks_json_and_carry_the_vendors_bytes() -> None:
    _, _, regs = registrations()
    reg = regs["sd-lora"]
    encoder = make_encoder(reg.source, timezone=reg.timezone)
    first, later = simulated(DeviceType.SMOKE_DETECTOR)[0], simulated(DeviceType.SMOKE_DETECTOR)[7]
    for body in (first, later):
        [out] = encoder.reading(reg, body)
        assert out.topic == "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/24e124535b316056/event/up"
        event = orjson.loads(out.payload)
        # Every key is a field of ChirpStack's UplinkEvent (its protobufs refuse anything else).
        parsed = json_format.Parse(out.payload.decode(), integration_pb2.UplinkEvent(), ignore_unknown_fields=False)
        assert parsed.device_info.dev_eui == "24e124535b316056"
        assert ("fCnt" in event) is (body["seq"] > 0)  # a zero is left out, as protobuf JSON does
        data = parsed.data
        # The GS524N's layout (its vendor decoder): version/protocol, type and event, battery, ...
        assert len(data) == 6 and data[0] == 0x22 and data[1] >> 4 == 1
        assert data[2] == round(body["battery_pct"]) and event["object"]["battery"] == float(data[2])
    assert orjson.loads(encoder.reading(reg, later)[0].payload)["object"]["event"] == "alarm"


def test_dds75_lb_distance_is_the_mounting_height_less_the_water_level() -> None:
    _, _, regs = registrations()
    reg = regs["wl-lora"]
    body = {"ts": START_MS, "seq": 3, "level_cm": 25.0, "rain_mm_h": 30.0, "battery_pct": 90.0}
    [out] = make_encoder(reg.source).reading(reg, body)
    event = orjson.loads(out.payload)
    assert event["fPort"] == 2 and event["object"]["Distance"] == (180 - 25) * 10
    data = json_format.Parse(out.payload.decode(), integration_pb2.UplinkEvent()).data
    assert int.from_bytes(data[2:4], "big") == 1550


def test_pushes_are_the_platforms_messages() -> None:
    _, _, regs = registrations()
    body = simulated(DeviceType.SMOKE_DETECTOR)[7]
    [ctwing] = make_encoder(regs["sd-nb"].source).reading(regs["sd-nb"], body)
    assert ctwing.topic == "/ingest/ctwing/aep?token=a-ctwing-token%2B%2F%3D"
    message = orjson.loads(ctwing.payload)
    assert message["messageType"] == "dataReport" and message["upPacketSN"] == 7 and message["upDataSN"] == -1
    assert message["deviceId"] == "7c1e2a9e2b7c4a3b9a1f0d6e5c4b3a21" and len(message["IMEI"]) == 15
    assert message["payload"]["serviceData"] == {"Alarm_Status": 1, "Battery_Level": round(body["battery_pct"])}
    [onenet] = make_encoder(regs["sd-studio"].source).reading(regs["sd-studio"], body)
    envelope = orjson.loads(onenet.payload)
    assert set(envelope) == {"msg", "nonce", "signature"} and onenet.topic == "/ingest/onenet/studio"
    msg = orjson.loads(envelope["msg"])
    assert (msg["messageType"], msg["notifyType"], msg["deviceName"]) == ("notify", "property", "nb-smoke-0301")
    assert msg["data"]["params"]["SmokeSensorState"] == {"value": 1, "time": body["ts"]}
    again = orjson.loads(make_encoder(regs["sd-studio"].source).reading(regs["sd-studio"], body)[0].payload)
    assert again["nonce"] != envelope["nonce"]  # each push its own nonce


def test_every_source_type_has_an_encoder_and_what_it_cannot_speak_is_said() -> None:
    assert set(ENCODERS) == set(SOURCE_CONFIGS)
    _, _, regs = registrations()
    wrong = Registration("x", DeviceType.WATER_LEVEL, regs["sd-z"].source, "a")
    with pytest.raises(Unsupported, match="smoke_detector or ebike_charger"):
        make_encoder(wrong.source).check(wrong)
    unknown = Registration("x", DeviceType.SMOKE_DETECTOR, regs["sd-nb"].source, "a", profile="my-own")
    with pytest.raises(Unsupported, match="profile 'my-own'"):
        make_encoder(unknown.source).check(unknown)


def test_the_sites_devices_are_simulated_through_their_sources() -> None:
    _, _, settings = decoder_for(SITE + """
  - {id: sd-native, type: smoke_detector, community: linfen-yicun, building: b02}
  - {id: wl-z, type: water_level, community: linfen-yicun, building: b02, source: hub, address: leak 1}
""")
    specs, left_out = site_devices(settings)
    assert DeviceSpec("linfen-yicun", DeviceType.SMOKE_DETECTOR, "sd-native") in specs
    assert [s.via.source.id for s in specs if s.device_id == "sd-nb" and s.via] == ["aep"]
    assert list(left_out) == ["wl-z"] and left_out["wl-z"].startswith("source hub: a zigbee2mqtt device is ")


def test_the_demos_site_is_the_example_site_with_a_mixed_estate() -> None:
    import yaml

    from app.config import LIBRARY, settings_from_text

    root = LIBRARY.parents[2]
    demo_text = (root / "app" / "defaults" / "site.yaml").read_text(encoding="utf-8")
    demo, example = yaml.safe_load(demo_text), yaml.safe_load((root / "examples" / "site.yaml").read_text("utf-8"))
    assert {k: v for k, v in demo.items() if k != "sources"} | {
        "devices": [d for d in demo["devices"] if "source" not in d]} == example
    settings = settings_from_text(demo_text, source="app/defaults/site.yaml", env={})
    specs, left_out = site_devices(settings)
    assert left_out == {}
    through = Counter(s.via.source.type for s in specs if s.via is not None)
    assert set(through) == {"zigbee2mqtt", "tasmota", "chirpstack", "ctwing", "onenet"}
    strip = [s.via for s in specs if s.via is not None and s.via.source.type == "tasmota"]
    assert len({v.address for v in strip}) == 1 and sorted(v.port for v in strip) == [1, 2]
