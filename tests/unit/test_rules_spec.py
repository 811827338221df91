"""Rule specs: the built-in file, located one-line errors, overrides, conditions, and the `cbrain rules` commands."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kernel.alerting import Level
from kernel.durations import parse_duration
from kernel.errors import ConfigError
from kernel.ids import DeviceType
from kernel.reading import Reading
from kernel.settings import Settings
from kernel.site import Site
from rules.conditions import compile_condition
from rules.engine import Engine
from rules.kinds.state import StateRule
from rules.model import Compare
from rules.spec import apply_override, default_rules_text, parse_rules

NS = 1_000_000_000
T0 = 1_777_600_000 * NS
CBRAIN = Path(sys.executable).with_name("cbrain")


def cbrain() -> str:
    return str(CBRAIN) if CBRAIN.exists() else (shutil.which("cbrain") or "cbrain")


def test_the_built_in_rules_are_the_contract_table() -> None:
    rs = parse_rules(default_rules_text(), source="defaults.yaml")
    assert [r.id for r in rs.rules] == [
        "smoke.obscuration", "smoke.alarm", "ebike.overcurrent", "ebike.overheat", "ebike.overcharge",
        "water.level", "fire_lane.blocked", "shed.offgas", "shed.fire", "water.leak", "device.battery", "device.fault",
        "ebike.heating", "water.rising", "shed.offgas_rising", "device.offline", "smoke.multi"]
    level = rs.rule("water.level")
    assert isinstance(level, StateRule)
    assert [(lv.level, getattr(lv.when, "at_least", None)) for lv in level.levels] == [
        (Level.BLUE, 10), (Level.YELLOW, 15), (Level.ORANGE, 25), (Level.RED, 40)]


@pytest.mark.parametrize(("text", "seconds"), [
    (90, 90.0), ("90", 90.0), ("90s", 90.0), ("500ms", 0.5), ("5m", 300.0), ("8h", 28800.0), ("1.5d", 129600.0),
    ("1m30s", 90.0), ("1h5m", 3900.0)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["5 minutes", "-3s", "soon", True, "1m30", "5 m 3s"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


RULE = "  - id: x\n    levels: [{level: blue, when: {field: a, above: 1}}]\n"

ERRORS = [
    ("a level that is not a colour",
     "rules:\n  - id: x\n    levels:\n      - level: purple\n        when: {field: a, above: 1}\n",
     "f.yaml:4: rules.0.levels.0.level: Input should be"),
    ("two operators in one comparison",
     "rules:\n  - id: x\n    levels:\n      - level: blue\n        when: {field: a, above: 1, below: 3}\n",
     "f.yaml:5: rules.0.levels.0.when: a comparison needs exactly one of"),
    ("a misspelt key deep in a condition points at its own line",
     "rules:\n  - id: x\n    levels:\n      - level: blue\n        when:\n          any:\n"
     "            - {field: a, above: 1}\n            - {field: b, atleast: 3}\n",
     "f.yaml:8: rules.0.levels.0.when.any.1.atleast: Extra inputs are not permitted"),
    ("a rate rule without rise",
     "rules:\n  - id: r\n    kind: rate\n    field: t\n    within: 60s\n    level: orange\n",
     "f.yaml:2: rules.0.rise: Field required"),
    ("an unknown kind", "rules:\n  - id: r\n    kind: nope\n", "f.yaml:2: rules.0: kind is one of state"),
    ("a duplicate id", "rules:\n" + RULE + RULE, "f.yaml:4: rules.1.id: rule id 'x' appears twice"),
    ("a reference to an undefined rule",
     "rules:\n  - id: m\n    kind: correlation\n    source: nope\n    within: 5m\n    level: red\n",
     "f.yaml:4: rules.0.source: rule 'm' refers to rule 'nope', which is not defined"),
    ("an override of an undefined rule",
     "rules:\n" + RULE + "overrides:\n  - rule: y\n    set: {clear_for: 5m}\n",
     "f.yaml:5: overrides.0.rule: an override names rule 'y'"),
    ("an override with a bad value",
     "rules:\n" + RULE + "overrides:\n  - rule: x\n    match: {device: d1}\n    set: {clear_for: soon}\n",
     "f.yaml:7: overrides.0.set: clear_for: 'soon' is not a duration"),
    ("a bad duration",
     "rules:\n  - id: x\n    clear_for: 5 minutes\n    levels: [{level: blue, when: {field: a, above: 1}}]\n",
     "f.yaml:3: rules.0.clear_for: '5 minutes' is not a duration"),
    ("levels out of order",
     "rules:\n  - id: x\n    levels:\n      - {level: red, when: {field: a, above: 1}}\n"
     "      - {level: blue, when: {field: a, above: 1}}\n",
     "f.yaml:3: rules.0.levels: levels must be listed from least to most serious"),
    ("an unknown device type",
     "rules:\n  - id: x\n    device_types: [toaster]\n    levels: [{level: blue, when: {field: a, above: 1}}]\n",
     "f.yaml:3: rules.0.device_types.0: 'toaster' is not a device type; known: battery_shed, ebike_charger"),
    ("a field no device of the rule's types reports",
     "rules:\n  - id: x\n    device_types: [water_level]\n    levels:\n"
     "      - {level: blue, when: {field: levl_cm, above: 1}}\n",
     "f.yaml:5: rules.0.levels.0.when.field: rule 'x' reads field 'levl_cm', which no device of water_level reports"),
    ("broken YAML", "rules:\n  - id: x\n    levels: [\n", "f.yaml:4: not valid YAML"),
    ("not a mapping", "- 1\n", "f.yaml: a rules file is a mapping"),
]


@pytest.mark.parametrize(("what", "text", "starts"), ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_are_one_line_with_file_and_line(what: str, text: str, starts: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_rules(text, source="f.yaml")
    message = str(err.value)
    assert message.startswith(starts), message
    assert "\n" not in message


def test_an_override_cannot_change_id_or_kind() -> None:
    rs = parse_rules("rules:\n" + RULE, source="f.yaml")
    with pytest.raises(ValueError, match="id or kind"):
        apply_override(rs.rule("x"), {"id": "y"})


OVERRIDES = """
overrides:
  # Listed narrowest first: the order in the file does not decide, specificity does.
  - {rule: water.level, match: {device: wl-dev}, set: {levels: [{level: blue, when: {field: level_cm, at_least: 8}}]}}
  - {rule: water.level, match: {building: b1}, set: {levels: [{level: blue, when: {field: level_cm, at_least: 7}}]}}
  - {rule: water.level, match: {community: c1}, set: {levels: [{level: blue, when: {field: level_cm, at_least: 6}}]}}
  - {rule: water.level, match: {device_type: water_level},
     set: {levels: [{level: blue, when: {field: level_cm, at_least: 5}}]}}
"""


def _site() -> Site:
    return Site(Settings.model_validate({
        "communities": [
            {"id": "c1", "name": "一", "grids": [{"id": "g1", "name": "g"}],
             "buildings": [{"id": "b1", "name": "1", "grid": "g1"}, {"id": "b2", "name": "2", "grid": "g1"}]},
            {"id": "c2", "name": "二", "grids": [{"id": "g1", "name": "g"}],
             "buildings": [{"id": "b1", "name": "1", "grid": "g1"}]}],
        "devices": [
            {"id": "wl-dev", "type": "water_level", "community": "c1", "building": "b1"},
            {"id": "wl-b1", "type": "water_level", "community": "c1", "building": "b1"},
            {"id": "wl-b2", "type": "water_level", "community": "c1", "building": "b2"},
            {"id": "wl-c2", "type": "water_level", "community": "c2", "building": "b1"}]}))


def _first_firing_level_cm(engine: Engine, site: Site, community: str, device: str) -> float:
    """The lowest whole-cm level (after a reading at 0) at which water.level fires for the device."""
    place = site.place(community, device)
    for cm in range(0, 12):
        now = T0 + cm * NS
        reading = Reading(community, DeviceType.WATER_LEVEL, device, now, {"level_cm": float(cm)},
                          building=place.building, grid=place.grid, received_ns=now)
        if any(t.rule == "water.level" for t in engine.on_batch([reading], [], now)):
            return cm
    raise AssertionError("never fired")


def test_overrides_apply_type_then_community_then_building_then_device() -> None:
    text = default_rules_text().replace("\noverrides: []\n", "\n") + OVERRIDES
    rs = parse_rules(text, source="rules.yaml")
    site = _site()
    engine = Engine(rs, site, now_ns=T0)
    got = {d: _first_firing_level_cm(engine, site, c, d)
           for c, d in [("c1", "wl-dev"), ("c1", "wl-b1"), ("c1", "wl-b2"), ("c2", "wl-c2"), ("c3", "wl-x")]}
    # Building b1 of c2 is another building than b1 of c1 for the building match only by id:
    # matches compare each key given, so `building: b1` also reaches c2's b1 (name buildings uniquely,
    # or add `community:` to the match).
    assert got == {"wl-dev": 8, "wl-b1": 7, "wl-b2": 6, "wl-c2": 7, "wl-x": 5}


def test_overrides_with_equal_specificity_apply_in_file_order() -> None:
    text = default_rules_text().replace("\noverrides: []\n", "\n") + """
overrides:
  - {rule: water.level, match: {community: c1}, set: {clear_for: 1m}}
  - {rule: water.level, match: {community: c1}, set: {clear_for: 2m}}
"""
    engine = Engine(parse_rules(text, source="rules.yaml"), _site(), now_ns=T0)
    specs = {s.id: s for s in engine._specs_for("c1", "water_level", "wl-b1", "b1")}
    assert specs["water.level"].clear_for == 120.0


def test_missing_fields_are_unknown_unless_if_missing_says() -> None:
    def check(cond: dict[str, object], values: dict[str, float | bool | str]) -> bool | None:
        return compile_condition(Compare.model_validate(cond))(values)

    assert check({"field": "self_test", "is": False}, {}) is None
    assert check({"field": "self_test", "is": False, "if_missing": True}, {}) is True
    assert check({"field": "self_test", "is": False, "if_missing": True}, {"self_test": True}) is False
    assert check({"field": "level_cm", "at_least": 10}, {"level_cm": True}) is None  # a bool is not a number


# ---- the command line ------------------------------------------------------------------------------------

def test_rules_check_ok_and_broken(tmp_path: Path) -> None:
    ok = subprocess.run([cbrain(), "rules", "check", "rules/defaults.yaml"], capture_output=True, text=True,
                        cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "ok (17 rules" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - id: x\n    levels:\n      - level: purple\n        when: {field: a, above: 1}\n",
                   encoding="utf-8")
    got = subprocess.run([cbrain(), "rules", "check", str(bad)], capture_output=True, text=True, timeout=60)
    assert got.returncode == 2
    assert got.stdout == ""
    lines = got.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{bad}:4: rules.0.levels.0.level" in lines[0], got.stderr


TEST_FILE = """
rules: defaults
tests:
  - name: yellow at 5 cm/m
    steps:
      - {at: 0s, device: yicun/smoke_detector/sd-1, fields: {obscuration_pct_m: 6}}
    expect:
      - {at: 0s, fire: smoke.obscuration, level: %s, device: sd-1}
"""


@pytest.mark.parametrize(("level", "code"), [("yellow", 0), ("orange", 1)])
def test_rules_test_exit_code(tmp_path: Path, level: str, code: int) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(TEST_FILE % level, encoding="utf-8")
    got = subprocess.run([cbrain(), "rules", "test", str(path)], capture_output=True, text=True, timeout=60)
    assert got.returncode == code, got.stdout + got.stderr
    if code:
        assert "FAIL  t.yaml: yellow at 5 cm/m" in got.stdout
        assert "fire  smoke.obscuration orange @ sd-1" in got.stdout  # expected
        assert "fire  smoke.obscuration yellow @ sd-1" in got.stdout  # got
        assert "0 passed, 1 failed" in got.stdout


def test_rules_test_bad_file_is_a_located_error(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("tests:\n  - name: x\n    steps:\n      - {at: 0s, every: 10s}\n    expect: []\n", encoding="utf-8")
    got = subprocess.run([cbrain(), "rules", "test", str(path)], capture_output=True, text=True, timeout=60)
    assert got.returncode == 2
    assert f"{path}:4:" in got.stderr and "every and until" in got.stderr


def test_the_example_in_the_test_format_docs_passes(tmp_path: Path) -> None:
    import textwrap

    import rules.timelines

    doc = rules.timelines.__doc__ or ""
    example = textwrap.dedent(doc.split("\n\n")[1])
    path = tmp_path / "example.yaml"
    path.write_text(example, encoding="utf-8")
    results = rules.timelines.run_file(path)
    assert [(r.name, r.passed) for r in results] == [("smoke builds up, then clears", True)], results
