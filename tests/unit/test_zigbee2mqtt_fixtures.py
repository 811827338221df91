"""The Zigbee2MQTT payload fixtures (tests/fixtures/zigbee2mqtt) are what zigbee-herdsman-converters makes of the
raw Zigbee frames in cases.json: checked here for shape and pinned version always, and, where Node is installed,
regenerated with the pinned package and compared with the checked-in expected.json."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "zigbee2mqtt"
CONVERTERS = "zigbee-herdsman-converters"
PINNED = "26.112.0"
NPM_CI_TIMEOUT = 180
GENERATE_TIMEOUT = 60
# Keys each model's payloads carry once the device has reported everything (the hub's cached state).
KEYS_BY_MODEL = {
    "HS3SA/HS1SA": {"smoke", "battery", "tamper"},
    "JTYJ-GD-01LM/BW": {"smoke", "battery", "tamper"},
    "JY-GZ-01AQ": {"smoke", "battery"},
    "TS0601_smoke_5": {"smoke", "battery", "tamper"},
    "TS0601_smoke_6": {"smoke", "battery_state", "tamper"},
    "SJCGQ11LM": {"water_leak", "battery"},
    "TS011F_plug_1": {"current", "voltage", "power", "energy"},
}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


def differences(expected: dict[str, Any], generated: dict[str, Any]) -> list[str]:
    """What differs between two expected.json documents, case by case."""
    top_keys = sorted((expected.keys() | generated.keys()) - {"cases"})
    found = [f"{key}: {expected.get(key)!r} != {generated.get(key)!r}"
             for key in top_keys if expected.get(key) != generated.get(key)]
    want = {c["name"]: c for c in expected.get("cases", [])}
    got = {c["name"]: c for c in generated.get("cases", [])}
    found += [f"case {name} only in expected.json" for name in want.keys() - got.keys()]
    found += [f"case {name} only in the regenerated file" for name in got.keys() - want.keys()]
    for name in want.keys() & got.keys():
        for field in sorted(set(want[name]) | set(got[name])):
            if want[name].get(field) != got[name].get(field):
                found.append(f"case {name}, {field}: {want[name].get(field)!r} != {got[name].get(field)!r}")
    if not found and [c["name"] for c in expected["cases"]] != [c["name"] for c in generated["cases"]]:
        found.append("the cases come in another order")
    return found


def test_the_fixtures_record_the_pinned_converters() -> None:
    assert load("expected.json")[CONVERTERS] == PINNED
    assert load("package.json")["dependencies"][CONVERTERS] == PINNED
    lock = load("package-lock.json")["packages"]
    assert lock[f"node_modules/{CONVERTERS}"]["version"] == PINNED
    herdsman = load("package.json")["dependencies"]["zigbee-herdsman"]
    assert herdsman[0].isdigit() and lock["node_modules/zigbee-herdsman"]["version"] == herdsman  # exact pin
    assert "tests/fixtures/zigbee2mqtt/node_modules/" in (FIXTURES.parents[2] / ".gitignore").read_text().split()


def test_every_case_has_its_generated_payload() -> None:
    cases, expected = load("cases.json"), load("expected.json")
    assert [c["name"] for c in expected["cases"]] == [c["name"] for c in cases["cases"]]
    devices = {d["id"]: d for d in cases["devices"]}
    for case, out in zip(cases["cases"], expected["cases"], strict=True):
        device = devices[case["device"]]
        assert (out["model"], out["vendor"]) == (device["expect"]["model"], device["expect"]["vendor"])
        assert out["topic"] == f"zigbee2mqtt/{device['friendly_name']}"
        assert out["input"]["zcl"] == case["input"]["zcl"] and out["input"]["type"] and out["input"]["cluster"]
        assert isinstance(out["payload"], dict) and out["payload"] == json.loads(out["message"]), case["name"]
        assert out["payload"]["linkquality"] == case["input"]["linkquality"]
        assert set(out["converted"]) <= set(out["payload"])


def test_each_model_reports_the_keys_the_service_reads() -> None:
    payloads: dict[str, list[dict[str, Any]]] = {}
    for out in load("expected.json")["cases"]:
        payloads.setdefault(out["model"], []).append(out["payload"])
    assert payloads.keys() == KEYS_BY_MODEL.keys()
    for model, keys in KEYS_BY_MODEL.items():
        assert any(keys <= p.keys() for p in payloads[model]), f"{model}: no payload with {sorted(keys)}"
    for model in ("HS3SA/HS1SA", "JTYJ-GD-01LM/BW", "JY-GZ-01AQ", "TS0601_smoke_5", "TS0601_smoke_6"):
        assert {p.get("smoke") for p in payloads[model]} >= {True, False}, model
    assert {p.get("water_leak") for p in payloads["SJCGQ11LM"]} >= {True, False}
    assert any(p.get("tamper") is True for p in payloads["HS3SA/HS1SA"])


def test_the_converters_scale_as_zigbee_says() -> None:
    by_name = {c["name"]: c for c in load("expected.json")["cases"]}
    assert by_name["heiman_battery_full"]["input"]["data"] == {"batteryPercentageRemaining": 200}
    assert by_name["heiman_battery_full"]["converted"] == {"battery": 100}  # ZCL counts half percents
    assert by_name["heiman_smoke_alarm"]["payload"]["smoke"] is True
    assert by_name["heiman_tamper"]["payload"]["tamper"] is True
    plug = by_name["tuya_plug_energy"]["payload"]
    assert (plug["voltage"], plug["current"], plug["power"], plug["energy"]) == (231, 0.52, 118, 12.34)


def test_a_changed_payload_is_a_difference() -> None:
    expected = load("expected.json")
    assert differences(expected, copy.deepcopy(expected)) == []
    changed = copy.deepcopy(expected)
    changed["cases"][2]["payload"]["smoke"] = not changed["cases"][2]["payload"]["smoke"]
    assert differences(expected, changed) == [
        f"case {expected['cases'][2]['name']}, payload: {expected['cases'][2]['payload']!r} "
        f"!= {changed['cases'][2]['payload']!r}"]
    changed = copy.deepcopy(expected)
    changed[CONVERTERS] = "26.111.0"
    assert differences(expected, changed) == [f"{CONVERTERS}: '{PINNED}' != '26.111.0'"]


def installed_version() -> str | None:
    package = FIXTURES / "node_modules" / CONVERTERS / "package.json"
    return json.loads(package.read_text(encoding="utf-8"))["version"] if package.exists() else None


@pytest.fixture(scope="module")
def node() -> str:
    """node on PATH with the pinned converters in the fixture folder's node_modules (npm ci when missing)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node on PATH: cannot regenerate the Zigbee2MQTT fixtures")
    if installed_version() != PINNED:
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip(f"{CONVERTERS} {PINNED} not in {FIXTURES}/node_modules and no npm to install it")
        try:
            done = subprocess.run([npm, "ci", "--prefer-offline", "--no-audit", "--no-fund"], cwd=FIXTURES,
                                  capture_output=True, text=True, timeout=NPM_CI_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            pytest.skip(f"npm ci in {FIXTURES} took over {NPM_CI_TIMEOUT} s")
        if done.returncode != 0 or installed_version() != PINNED:
            last = " ".join(done.stderr.split())[-300:]
            pytest.skip(f"npm ci in {FIXTURES} failed (registry unreachable?): {last}")
    return node


def test_regenerated_payloads_equal_the_checked_in_ones(node: str, tmp_path: Path) -> None:
    out = tmp_path / "expected.json"
    done = subprocess.run([node, "generate.mjs", "--out", str(out)], cwd=FIXTURES, capture_output=True, text=True,
                          timeout=GENERATE_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    generated, expected = json.loads(out.read_text(encoding="utf-8")), load("expected.json")
    assert differences(expected, generated) == []
    assert generated == expected
    edited = copy.deepcopy(expected)
    edited["cases"][-1]["payload"]["current"] = 1.0
    assert differences(edited, generated), "a changed expected.json must not match"
