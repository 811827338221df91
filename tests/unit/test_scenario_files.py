"""Scenario files and their judging: shipped scenarios load, bad ones fail with file:line, and an
expectation is met only by exactly the right recipients in time."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from app.config import load_settings
from device_sim.play import _probe, plan_start
from device_sim.scenario import Expectation, Place, check_against_site, find_scenario, load_scenario, shipped_names
from device_sim.types import BEHAVIOURS
from device_sim.verify import Ear, Heard, judge, unexpected
from kernel.errors import ConfigError

SITE = Path(__file__).resolve().parents[2] / "device_sim" / "scenarios" / "site.yaml"


def test_at_least_six_scenarios_ship_and_each_fits_its_site() -> None:
    names = shipped_names()
    assert len(names) >= 6
    settings = load_settings(str(SITE))
    for name in names:
        scenario = load_scenario(find_scenario(name))
        assert scenario.site_path == SITE.resolve()
        check_against_site(scenario, settings, BEHAVIOURS, _probe)
        assert scenario.spec.expect


def _scenario(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ntitle: t\nduration: 5m\n" + body, encoding="utf-8")
    return path


@pytest.mark.parametrize(("body", "line", "message"), [
    ("expect:\n  - {rule: smoke.alarm, at: 1m, within: soon, told: []}\n", 5, "not a duration"),
    ("expect:\n  - {rule: smoke.alarm, level: purple, at: 1m, within: 1m, told: []}\n", 5, "level"),
    ("expect:\n  - {rule: smoke.alarm, at: 1m, within: 1m, told: [], colour: red}\n", 5, "colour"),
    ("speed: 0\nexpect:\n  - {rule: smoke.alarm, at: 1m, within: 1m, told: []}\n", 4, "greater than 0"),
    ("expect: []\n", 4, "at least 1"),
])
def test_a_bad_scenario_is_refused_with_its_line(tmp_path: Path, body: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_scenario(_scenario(tmp_path, body))
    assert f"s.yaml:{line}:" in str(err.value) and message in str(err.value)


@pytest.mark.parametrize(("event", "message"), [
    ("{at: 1m, device: sd-nowhere, do: fire}", "device 'sd-nowhere' is not in the site file"),
    ("{at: 1m, device: wl-garage, do: fire}", "a water_level cannot `fire`"),
    ("{at: 1m, device: sd-b03-0101, do: cooking, with: {peak: 9}}", "peak"),
    ("{at: 9m, device: sd-b03-0101, do: fire}", "after the end of the scenario"),
    ("{at: 1m, do: silence, with: {building: b01, colour: red}}", "not colour"),
    ("{at: 1m, do: ack, with: {note: hi}}", "needs the rule"),
])
def test_a_scenario_naming_what_the_site_lacks_is_refused(tmp_path: Path, event: str, message: str) -> None:
    path = _scenario(tmp_path, f"events:\n  - {event}\nexpect:\n"
                               "  - {rule: smoke.alarm, at: 1m, within: 1m, told: [worker-g2]}\n")
    scenario = load_scenario(path)
    with pytest.raises(ConfigError) as err:
        check_against_site(scenario, load_settings(str(SITE)), BEHAVIOURS, _probe)
    assert "s.yaml:5:" in str(err.value) and message in str(err.value)


def _heard(at: float, recipient: str, alert_id: str = "a1", event: str = "fired", level: str = "orange",
           device: str = "sd-1") -> Heard:
    return Heard(at, f"{alert_id}-{recipient}-{event}-{at}", event, recipient,
                 {"id": alert_id, "rule": "smoke.alarm", "level": level, "device_id": device, "building": "b03",
                  "community": "linfen-yicun"})


X = Expectation(rule="smoke.alarm", level="orange", device=["sd-1"], at=60, within=60, told=["w", "c"])


def test_met_only_when_exactly_the_told_recipients_heard_it_in_time() -> None:
    both = [_heard(10.2, "w"), _heard(10.5, "c")]
    outcome = judge(X, both, start=10.0, deadline=12.0, speed=60)
    assert outcome.met and outcome.latency_s == pytest.approx(0.5)
    assert "told 0.50 s after `at` (30s of scenario time)" in outcome.detail
    assert not judge(X, both[:1], start=10.0, deadline=12.0, speed=60).met  # the community never heard
    late = judge(X, [_heard(10.2, "w"), _heard(12.5, "c")], start=10.0, deadline=12.0, speed=60)
    assert not late.met and "c not told in time" in late.detail
    extra = judge(X, [*both, _heard(10.6, "bureau")], start=10.0, deadline=12.0, speed=60)
    assert not extra.met and "also told bureau" in extra.detail
    early = judge(X, [_heard(9.0, "w"), _heard(9.1, "c")], start=10.0, deadline=12.0, speed=60)
    assert not early.met and "came before" in early.detail
    other_level = judge(X, [_heard(10.2, "w", level="red"), _heard(10.3, "c", level="red")],
                        start=10.0, deadline=12.0, speed=60)
    assert not other_level.met


def test_count_needs_that_many_alerts_each_told_to_everyone() -> None:
    x = Expectation(rule="smoke.alarm", at=0, within=60, told=["w"], count=3)
    heard = [_heard(1.0 + i, "w", alert_id=f"a{i}") for i in range(3)]
    assert judge(x, heard, start=0, deadline=10, speed=1).met
    assert "2 of 3 alerts" in judge(x, heard[:2], start=0, deadline=10, speed=1).detail


def test_nobody_told_is_met_by_silence_and_checks_whether_the_alert_was_recorded() -> None:
    x = Expectation(rule="smoke.alarm", at=0, within=60, told=[])
    assert judge(x, [], start=0, deadline=10, speed=1).met
    muted = Expectation(rule="smoke.alarm", at=0, within=60, told=[], recorded=True)  # under a silence
    assert judge(muted, [], start=0, deadline=10, speed=1, recorded=True).met
    assert "recorded no such alert" in judge(muted, [], start=0, deadline=10, speed=1, recorded=False).detail
    assert not judge(muted, [], start=0, deadline=10, speed=1, recorded=None).met  # cannot ask the API
    none = Expectation(rule="smoke.alarm", at=0, within=60, told=[], recorded=False)  # a self-test
    assert judge(none, [], start=0, deadline=10, speed=1, recorded=False).met
    assert not judge(none, [], start=0, deadline=10, speed=1, recorded=True).met
    paged = judge(x, [_heard(5, "w")], start=0, deadline=10, speed=1)
    assert not paged.met and "w were" in paged.detail


def test_the_ear_deduplicates_and_counts_each_member_of_a_storm() -> None:
    ear = Ear()
    single = {"event_id": "e1", "event": "fired", "recipient": "w", "alert": {"id": "a1"}}
    ear.take(orjson.dumps(single), 1.0)
    ear.take(orjson.dumps(single), 2.0)  # a retry
    group = {"event_id": "g", "event": "fired", "recipient": "w", "alert": {"id": "a2"},
             "group": {"event_ids": ["e2", "e3"], "alerts": [{"id": "a2"}, {"id": "a3"}]}}
    ear.take(orjson.dumps(group), 3.0)
    ear.take(b"not json", 4.0)
    assert [h.alert["id"] for h in ear.heard] == ["a1", "a2", "a3"]
    assert (ear.repeats, ear.malformed) == (1, 1)


def test_unexpected_is_what_no_expectation_or_allow_line_covers() -> None:
    allow = Place(rule="smoke.obscuration")
    heard = [_heard(1, "w"), Heard(2, "x", "fired", "w", {"rule": "smoke.obscuration"}),
             Heard(3, "y", "fired", "w", {"rule": "fire_lane.blocked"})]
    assert [h.event_id for h in unexpected(heard, [X, allow])] == ["y"]


def test_readings_never_run_ahead_of_the_clock_whatever_the_speed() -> None:
    scenario = load_scenario(find_scenario("garage-flood"))  # two hours at speed 400
    now = time.time()
    start = plan_start(scenario, 400, now)
    duration = scenario.spec.duration
    for wall in (0.0, duration / 800, duration / 400):
        assert start + wall * 400 <= now + wall
    assert plan_start(scenario, 1, now) <= now
    # A service that already has newer readings moves the start forward, or refuses with a reason.
    assert plan_start(scenario, 400, now, latest=start + 10) == start + 11
    with pytest.raises(Exception, match="ahead of its clock"):
        plan_start(scenario, 400, now, latest=now)


def test_time_of_day_starts_the_story_at_that_hour() -> None:
    scenario = load_scenario(find_scenario("ebike-runaway"))
    start = plan_start(scenario, 60, time.time())
    local = time.localtime(start)
    assert (local.tm_hour, local.tm_min) == (23, 0) and time.time() - start < 86400 + 3600


def test_the_command_line_lists_scenarios_and_refuses_bad_requests_in_one_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    assert main(["simulate", "--list-scenarios"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == shipped_names()
    assert main(["simulate", "--scenario", "no-such-scenario"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no scenario 'no-such-scenario'; shipped: call-until-answered, device-maintenance" in err
    assert main(["simulate", "--verify", "--config", str(SITE)]) == 2
    assert "--verify checks a scenario" in capsys.readouterr().err
    # A broker nobody listens on: one line, exit 1, nothing half done.
    assert main(["simulate", "--scenario", "device-maintenance", "--mqtt-url", "mqtt://127.0.0.1:9"]) == 1
    assert "cannot reach the broker at 127.0.0.1:9" in capsys.readouterr().err
