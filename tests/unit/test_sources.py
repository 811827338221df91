"""Sources: each system's envelope read exactly (topics, availability, addresses, time, counters,
identities), registered devices found by address, unknown ones rejected and listed."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from ingest.decode import Rejection
from kernel.reading import Reading, StatusUpdate
from tests.sources_kit import NOW_NS, as_bytes, decoder_for

Z2M = json.loads((Path(__file__).parents[1] / "fixtures/zigbee2mqtt/expected.json").read_text(encoding="utf-8"))
CASES = {c["name"]: c for c in Z2M["cases"]}

SITE = """
sources:
  - {id: z2m, type: zigbee2mqtt, base_topic: zigbee2mqtt, community: linfen-yicun}
  - {id: sockets, type: tasmota}
  - {id: shellies, type: shelly}
devices:
  - {id: sd-b02-0301, type: smoke_detector, community: linfen-yicun, building: b02, source: z2m,
     address: b02/301/smoke}
  - {id: plug-b02-01, type: ebike_charger, community: linfen-yicun, building: b02, source: z2m, address: shed plug 1}
  - {id: wk-b02-pump, type: water_leak, community: linfen-yicun, building: b02, source: z2m, address: b02/pump room}
  - {id: ev-b02-p01, type: ebike_charger, community: linfen-yicun, building: b02, source: sockets,
     address: shed_strip_1, port: 1}
  - {id: ev-b02-p02, type: ebike_charger, community: linfen-yicun, building: b02, source: sockets,
     address: shed_strip_1, port: 2}
  - {id: ev-b02-s1, type: ebike_charger, community: linfen-yicun, building: b02, source: shellies,
     address: shellyplus2pm-a8032ab1, port: 2}
"""


def one(items: object) -> Reading | StatusUpdate | Rejection:
    assert isinstance(items, list) and len(items) == 1, items
    return items[0]


def test_zigbee2mqtt_smoke_alarm_from_the_converters_output() -> None:
    decoder, _, _ = decoder_for(SITE)
    for name, alarm in (("heiman_smoke_alarm", True), ("heiman_smoke_alarm_cleared", False)):
        got = one(decoder.decode("zigbee2mqtt/b02/301/smoke", CASES[name]["message"].encode()))
        assert isinstance(got, Reading), got
        assert (got.device_id, got.community, got.building, got.grid) == ("sd-b02-0301", "linfen-yicun", "b02", "g1")
        assert got.fields["alarm"] is alarm
        assert got.fields["tamper"] is False and got.fields["self_test"] is False
        assert got.ts_ns == NOW_NS  # Zigbee2MQTT's state has no time: the time of receipt


@pytest.mark.parametrize("name", ["heiman_tamper", "tuya_ytibqbra_tamper", "aqara_jtyj_smoke_alarm",
                                  "tuya_ytibqbra_smoke_alarm", "aqara_jygz_smoke_alarm"])
def test_zigbee2mqtt_smoke_sensors_of_three_vendors(name: str) -> None:
    decoder, _, _ = decoder_for(SITE)
    case = CASES[name]
    got = one(decoder.decode("zigbee2mqtt/b02/301/smoke", case["message"].encode()))
    assert isinstance(got, Reading), got
    payload = case["payload"]
    assert got.fields["alarm"] is payload["smoke"]
    if "tamper" in payload:
        assert got.fields["tamper"] is payload["tamper"]
    if "battery" in payload:
        assert got.fields["battery_pct"] == float(payload["battery"])
    assert "voltage_v" not in got.fields  # an Aqara's battery millivolts are not a smoke detector's field


def test_zigbee2mqtt_metered_plug_energy_in_wh() -> None:
    decoder, _, _ = decoder_for(SITE)
    payload = CASES["tuya_plug_current"]["payload"]
    got = one(decoder.decode("zigbee2mqtt/shed plug 1", CASES["tuya_plug_current"]["message"].encode()))
    assert isinstance(got, Reading), got
    assert got.fields["current_a"] == payload["current"]
    assert got.fields["voltage_v"] == payload["voltage"] and got.fields["power_w"] == payload["power"]
    assert got.fields["energy_wh"] == pytest.approx(payload["energy"] * 1000)


@pytest.mark.parametrize(("name", "wet"), [("aqara_leak_wet", True), ("aqara_leak_dry_again", False)])
def test_zigbee2mqtt_aqara_leak_sensor(name: str, wet: bool) -> None:
    decoder, _, _ = decoder_for(SITE)
    got = one(decoder.decode("zigbee2mqtt/b02/pump room", CASES[name]["message"].encode()))
    assert isinstance(got, Reading) and got.device_id == "wk-b02-pump", got
    assert got.fields["leak"] is wet and got.fields["battery_pct"] == float(CASES[name]["payload"]["battery"])
    assert "voltage_v" not in got.fields  # its battery's millivolts are not a leak sensor's field


def test_zigbee2mqtt_availability_commands_and_the_bridge() -> None:
    decoder, _, _ = decoder_for(SITE)
    off = one(decoder.decode("zigbee2mqtt/b02/301/smoke/availability", b'{"state":"offline"}'))
    assert isinstance(off, StatusUpdate) and off.device_id == "sd-b02-0301" and off.online is False
    on = one(decoder.decode("zigbee2mqtt/b02/301/smoke/availability", b"online"))
    assert isinstance(on, StatusUpdate) and on.online is True
    bad = one(decoder.decode("zigbee2mqtt/b02/301/smoke/availability", b"maybe"))
    assert isinstance(bad, Rejection) and bad.reason == "bad_status"
    for topic in ("zigbee2mqtt/bridge/state", "zigbee2mqtt/bridge/devices", "zigbee2mqtt/b02/301/smoke/set",
                  "zigbee2mqtt/b02/301/smoke/get"):
        assert decoder.decode(topic, b'{"state":"ON"}') == [], topic


def test_unknown_device_is_rejected_and_listed() -> None:
    decoder, reader, _ = decoder_for(SITE)
    message = CASES["heiman_smoke_alarm"]["message"].encode()
    for _ in range(3):
        got = one(decoder.decode("zigbee2mqtt/b05/0101/smoke", message))
    assert isinstance(got, Rejection) and got.reason == "unknown_device"
    assert (got.source, got.address) == ("z2m", "b05/0101/smoke")
    [heard] = reader.unknown.latest()
    assert (heard.source, heard.address, heard.community, heard.messages) == (
        "z2m", "b05/0101/smoke", "linfen-yicun", 3)
    assert heard.sample.startswith('{"')


def test_not_json_from_a_source_is_rejected_with_its_source() -> None:
    decoder, _, _ = decoder_for(SITE)
    got = one(decoder.decode("zigbee2mqtt/b02/301/smoke", b"{smoke: true"))
    assert isinstance(got, Rejection) and got.reason == "not_json" and got.source == "z2m"


# Tasmota's multi-channel energy report (a two-relay metering strip) as its firmware formats it
# (xdrv_03_energy.ino: ResponseAppend of arrays per channel), and its LWT words.
TASMOTA_SENSOR = (b'{"Time":"2025-12-06T09:59:30","ENERGY":{"TotalStartTime":"2025-11-01T10:00:00",'
                  b'"Total":[1.214,3.507],"Yesterday":[0.312,0.977],"Today":[0.101,0.512],"Period":[0,12],"Power":[0,2310],'
                  b'"ApparentPower":[0,2330],"ReactivePower":[0,302],"Factor":[0.00,0.99],"Voltage":[229,229],'
                  b'"Current":[0.000,10.260]}}')


def test_tasmota_strip_each_port_is_its_own_device_in_local_time() -> None:
    decoder, _, _ = decoder_for(SITE)
    items = decoder.decode("tele/shed_strip_1/SENSOR", TASMOTA_SENSOR)
    assert isinstance(items, list)
    by_id = {r.device_id: r for r in items if isinstance(r, Reading)}
    assert set(by_id) == {"ev-b02-p01", "ev-b02-p02"}
    assert by_id["ev-b02-p02"].fields == {"current_a": 10.26, "voltage_v": 229.0, "power_w": 2310.0,
                                          "energy_wh": 3507.0, "charging": True}
    assert by_id["ev-b02-p01"].fields["current_a"] == 0.0 and by_id["ev-b02-p01"].fields["charging"] is False
    # 09:59:30 in Asia/Shanghai is 01:59:30 UTC
    assert by_id["ev-b02-p01"].ts_ns == NOW_NS - 30 * 1_000_000_000


def test_tasmota_time_zone_of_the_source() -> None:
    decoder, _, _ = decoder_for(SITE.replace("{id: sockets, type: tasmota}",
                                             "{id: sockets, type: tasmota, timezone: UTC}"))
    items = decoder.decode("tele/shed_strip_1/SENSOR", TASMOTA_SENSOR.replace(b"09:59:30", b"01:59:30"))
    assert isinstance(items, list) and all(r.ts_ns == NOW_NS - 30 * 1_000_000_000 for r in items)


def test_tasmota_lwt_takes_every_port_offline() -> None:
    decoder, _, _ = decoder_for(SITE)
    items = decoder.decode("tele/shed_strip_1/LWT", b"Offline")
    assert isinstance(items, list)
    assert sorted((s.device_id, s.online) for s in items if isinstance(s, StatusUpdate)) == [
        ("ev-b02-p01", False), ("ev-b02-p02", False)]


# A Shelly Plus 2PM's NotifyStatus of its second switch, as its Gen2 API documents it (Switch.GetStatus).
SHELLY_SWITCH = {"id": 1, "source": "WS_in", "output": True, "apower": 2290.4, "voltage": 228.9,
                 "current": 10.3, "freq": 50.0, "pf": 0.97,
                 "aenergy": {"total": 5412.345, "by_minute": [0, 0, 0], "minute_ts": 1764986340},
                 "temperature": {"tC": 41.2, "tF": 106.2}}


def test_shelly_switch_n_is_port_n_plus_one() -> None:
    decoder, _, _ = decoder_for(SITE)
    got = one(decoder.decode("shellyplus2pm-a8032ab1/status/switch:1", orjson.dumps(SHELLY_SWITCH)))
    assert isinstance(got, Reading) and got.device_id == "ev-b02-s1"
    assert got.fields == {"current_a": 10.3, "voltage_v": 228.9, "power_w": 2290.4, "energy_wh": 5412.345,
                          "charging": True}
    assert decoder.decode("shellyplus2pm-a8032ab1/status/sys", b'{"mac": "A8032AB1"}') == []
    unknown = one(decoder.decode("shellyplus2pm-a8032ab1/status/switch:0", orjson.dumps(SHELLY_SWITCH)))
    assert isinstance(unknown, Rejection) and unknown.reason == "unknown_device"
    off = one(decoder.decode("shellyplus2pm-a8032ab1/online", b"false"))
    assert isinstance(off, StatusUpdate) and off.online is False


def test_native_devices_work_unchanged_beside_sources() -> None:
    decoder, _, _ = decoder_for(SITE)
    got = decoder.decode("cb/linfen-yicun/smoke_detector/sd-native/telemetry", as_bytes({"alarm": True}))
    assert isinstance(got, Reading) and got.fields == {"alarm": True}
    assert isinstance(decoder.decode("elsewhere/topic", b"{}"), Rejection)


def test_broker_accounts_of_sources() -> None:
    from app.broker_accounts import plan_accounts, render_acl

    _, _, settings = decoder_for(SITE)
    accounts, _ = plan_accounts(settings, {})
    by_user = {a.username: a for a in accounts}
    assert "sd-b02-0301" not in by_user  # it reports through its hub, which has the account
    assert by_user["z2m"].publish == ("zigbee2mqtt/#",) and by_user["z2m"].subscribe == ("zigbee2mqtt/#",)
    assert by_user["shellies"].publish == ("shellyplus2pm-a8032ab1/#",)
    service = accounts[0]
    assert {"zigbee2mqtt/#", "tele/+/SENSOR", "tele/+/LWT", "shellyplus2pm-a8032ab1/status/+"} <= set(
        service.subscribe)
    acl = render_acl(accounts)
    assert "user z2m\ntopic read zigbee2mqtt/#\ntopic write zigbee2mqtt/#" in acl


def test_battery_devices_behind_a_source_are_offline_after_their_heartbeat_not_their_types() -> None:
    from app.config import load_ruleset
    from kernel.site import Site
    from rules.engine import Engine

    own = SITE.replace("address: shed plug 1}", "address: shed plug 1, expected_interval_s: 120}")
    _, _, settings = decoder_for(own + "  - {id: sd-native, type: smoke_detector, community: linfen-yicun}\n")
    site = Site(settings)
    assert site.interval_of("linfen-yicun", "sd-b02-0301") == 3600.0  # Zigbee2MQTT's default
    assert site.interval_of("linfen-yicun", "plug-b02-01") == 120.0  # its own
    assert site.interval_of("linfen-yicun", "ev-b02-p01") is None  # Tasmota: its type's
    assert site.interval_of("linfen-yicun", "sd-native") is None
    engine = Engine(load_ruleset(settings), site, now_ns=NOW_NS)
    zigbee = engine._watch("linfen-yicun", "smoke_detector", "sd-b02-0301", NOW_NS)
    native = engine._watch("linfen-yicun", "smoke_detector", "sd-native", NOW_NS)
    hour_ns = 3600 * 1_000_000_000
    assert zigbee.machines["device.offline"].after_ns == 3 * hour_ns  # type: ignore[attr-defined]
    assert native.machines["device.offline"].after_ns == 3 * 60 * 1_000_000_000  # type: ignore[attr-defined]
    assert engine.interval_s("smoke_detector") == 60.0  # outside a device's making: the type's


def test_a_devices_line_reads_back_as_the_ids_it_shows_and_not_before_its_blanks_are_filled() -> None:
    import yaml

    from app.source_view import devices_line
    from ingest.sources.unknown import Unregistered

    # A Zigbee IEEE address makes an id YAML would read as a number: quoted.
    heard = Unregistered("z2m", "zigbee2mqtt", "0x00158D0008A1B2C3", None, "linfen-yicun", None, NOW_NS, NOW_NS, 1,
                         "{}")
    line = devices_line(heard)
    [entry] = yaml.safe_load(line.replace("?", "b02"))
    assert entry == {"id": "0x00158d0008a1b2c3", "type": "b02", "community": "linfen-yicun", "building": "b02",
                     "source": "z2m", "address": "0x00158D0008A1B2C3"}
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load(line)  # a `?` left in is an error naming the line, not a device


def test_the_unregistered_in_scope_and_their_count_agree() -> None:
    from app.source_view import SourceView
    from kernel.settings import Scope
    from kernel.site import Site

    decoder, reader, settings = decoder_for(SITE)
    message = CASES["heiman_smoke_alarm"]["message"].encode()
    decoder.decode("zigbee2mqtt/b05/0101/smoke", message)  # z2m names linfen-yicun
    decoder.decode("tele/strip_9/SENSOR", TASMOTA_SENSOR)  # the Tasmota source names no community
    view = SourceView(Site(settings), reader, None, reader.unknown)
    for scope, addresses in ((None, ["strip_9", "b05/0101/smoke"]),
                             (Scope(community="linfen-yicun"), ["b05/0101/smoke"]),
                             (Scope(community="linfen-ercun"), []),
                             (Scope(community="linfen-yicun", grid="g1"), [])):
        assert [u["address"] for u in view.unregistered(scope)] == addresses, scope
        assert view.unregistered_count(scope) == len(addresses), scope
