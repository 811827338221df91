"""A site file can change any number of a rule for its devices (`rule_overrides`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import load_ruleset
from kernel.errors import ConfigError
from kernel.ids import DeviceType
from kernel.reading import Reading
from kernel.settings import parse_settings
from kernel.site import Site
from rules.engine import Engine

SITE = (Path(__file__).resolve().parents[2] / "examples" / "site.yaml").read_text(encoding="utf-8")
GARAGE = """
rule_overrides:
  - rule: water.level
    match: {community: linfen-ercun, device: wl-garage}
    set:
      levels:
        - {level: yellow, when: {field: level_cm, at_least: 5}}
        - {level: red, when: {field: level_cm, at_least: 30}}
"""
T0 = 1_777_600_000 * 1_000_000_000


def level_at(engine: Engine, site: Site, community: str, device_id: str, level_cm: float) -> list[str]:
    place = site.place(community, device_id)
    r = Reading(community, DeviceType.WATER_LEVEL, device_id, T0, {"level_cm": level_cm}, building=place.building,
                grid=place.grid, received_ns=T0)
    return [f"{t.rule}:{t.level}" for t in engine.on_batch([r], [], T0)]


def test_the_site_file_lowers_one_garage_threshold_and_no_other() -> None:
    settings = parse_settings(SITE + GARAGE, env={})
    site = Site(settings)
    engine = Engine(load_ruleset(settings), site, now_ns=T0)
    assert level_at(engine, site, "linfen-ercun", "wl-garage", 6.0) == ["water.level:yellow"]
    assert level_at(engine, site, "linfen-yicun", "wl-gate-east", 6.0) == []


@pytest.mark.parametrize(("override", "message"), [
    ("  - {rule: water.nope, set: {clear_for: 5m}}", "rule_overrides.0: rule 'water.nope' is not defined"),
    ("  - {rule: water.level, set: {clear_for: soon}}", "rule_overrides.0: clear_for"),
    ("  - {rule: water.level, match: {floor: 2}, set: {clear_for: 5m}}", "rule_overrides.0.match.floor"),
])
def test_a_bad_site_override_is_a_one_line_error(override: str, message: str) -> None:
    settings = parse_settings(SITE + "rule_overrides:\n" + override + "\n", env={})
    with pytest.raises(ConfigError) as info:
        load_ruleset(settings)
    assert message in str(info.value) and "\n" not in str(info.value)
