"""Summaries say what the value is, with its name and unit from the device catalog (zh-CN and English)."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.summary import summarise
from app.config import settings_from_text
from kernel.alerting import Alert, AlertStatus, Level, Measure
from kernel.site import Site

ROOT = Path(__file__).resolve().parents[2]
SITE = Site(settings_from_text((ROOT / "examples" / "scenario-site.yaml").read_text(encoding="utf-8"), env={},
                               source="scenario-site.yaml"))


def alert(rule: str, device_type: str, device_id: str, value: float | None, measure: Measure | None,
          building: str = "b12", grid: str = "g3") -> Alert:
    return Alert("a1", rule, Level.YELLOW, AlertStatus.FIRING, "linfen-ercun", building, grid, device_id,
                 device_type, value, 0, 0, "", measure=measure)


@pytest.mark.parametrize(("a", "zh", "en"), [
    (alert("water.level", "water_level", "wl-garage", 16.7, Measure("level_cm")),
     "水位计 wl-garage：积水（积水深度 16.7 cm）", "water gauge wl-garage: standing water (water depth 16.7 cm)"),
    # The rising rule's value is the rise within its window, not the depth.
    (alert("water.rising", "water_level", "wl-garage", 47.19999999, Measure("level_cm", 600.0)),
     "水位计 wl-garage：水位快速上涨（积水深度 10 分钟上涨 47.2 cm）",
     "water gauge wl-garage: water rising fast (water depth up 47.2 cm in 10 min)"),
    (alert("ebike.overcurrent", "ebike_charger", "ev-b12-p01", 13.2, Measure("current_a")),
     "充电口 ev-b12-p01：充电过流（充电电流 13.2 A）",
     "charging port ev-b12-p01: charging over-current (charging current 13.2 A)"),
    (alert("shed.fire", "battery_shed", "bs-b12-shed-1", 75.5, Measure("temperature_c")),
     "车棚传感器 bs-b12-shed-1：车棚起火（温度 75.5 °C）",
     "bike shed sensor bs-b12-shed-1: fire in the bike shed (temperature 75.5 °C)"),
    (alert("shed.offgas_rising", "battery_shed", "bs-b12-shed-1", 70.3, Measure("h2_ppm", 120.0)),
     "车棚传感器 bs-b12-shed-1：车棚氢气快速上升（热失控预警）（氢气浓度 2 分钟上涨 70.3 ppm）",
     "bike shed sensor bs-b12-shed-1: hydrogen rising fast in the bike shed (runaway warning) "
     "(H₂ up 70.3 ppm in 2 min)"),
    (alert("smoke.alarm", "smoke_detector", "sd-b11-0301", None, None, building="b11"),
     "烟感 sd-b11-0301：烟感报警", "smoke detector sd-b11-0301: smoke alarm"),
])
def test_a_summary_names_the_value_and_its_unit(a: Alert, zh: str, en: str) -> None:
    assert summarise(SITE, a, "zh-CN").endswith(zh), summarise(SITE, a, "zh-CN")
    assert summarise(SITE, a, "en").endswith(en), summarise(SITE, a, "en")
    assert summarise(SITE, a, "zh-CN").startswith("【黄色预警（III级）】临汾二村")


def test_the_engine_says_which_field_a_value_measures() -> None:
    from kernel.ids import DeviceType
    from kernel.reading import Reading
    from rules.engine import Engine
    from rules.spec import default_rules_text, parse_rules

    engine = Engine(parse_rules(default_rules_text()), SITE)
    t = 1_800_000_000 * 10**9
    got = []
    for k, level in enumerate([2.0, 12.0, 30.0]):
        r = Reading("linfen-ercun", DeviceType("water_level"), "wl-garage", t + k * 60 * 10**9, {"level_cm": level})
        got += engine.on_batch([r], [], t + k * 60 * 10**9)
    measures = {(tr.rule, tr.measure) for tr in got}
    assert ("water.level", Measure("level_cm")) in measures
    assert ("water.rising", Measure("level_cm", 600.0)) in measures
