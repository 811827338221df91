"""The resilience scorecard's figures on rows made by hand (app/resilience, docs/resilience.md)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.resilience import measures as m
from app.resilience.card import DAY, Alert, Rows, Scorecard, knocks_in_time, scorecard
from app.resilience.history import resilience_points
from kernel.clock import NS
from kernel.settings import Settings

TARGETS = {"red": 120.0, "orange": 300.0, "yellow": 900.0, "blue": 3600.0}
NOW = 1_800_000_000 * NS


def indicator(card: dict[str, Any], iid: str) -> dict[str, Any]:
    found: dict[str, Any] = next(i for c in card["categories"] for i in c["indicators"] if i["id"] == iid)
    return found


def test_quantiles_interpolate_between_ranks() -> None:
    assert m.median([]) is None and m.quantile([], 0.9) is None
    assert m.median([3.0, 1.0, 2.0]) == 2.0
    assert m.median([1.0, 2.0, 3.0, 4.0]) == 2.5
    assert m.quantile([float(x) for x in range(1, 11)], 0.9) == pytest.approx(9.1)  # numpy's "linear"
    assert m.quantile([5.0], 0.9) == 5.0


def test_shares_within_target_count_only_what_is_due() -> None:
    # done in time, done late, not done and overdue, not done and not yet due (not counted)
    assert m.within([(10.0, 60.0, True), (90.0, 60.0, True), (None, 60.0, True), (None, 60.0, False)]) == \
        pytest.approx(100 / 3)
    assert m.within([(None, 60.0, False)]) is None


def test_uptime_from_offline_intervals_merged_and_clipped() -> None:
    lo, hi = 0, 100 * NS
    # two devices; one offline 10 s (two overlapping alerts count once) and 10 s before the window
    offline = {"d1": [(20 * NS, 28 * NS), (25 * NS, 30 * NS), (-10 * NS, 0)]}
    assert m.uptime(2, offline, lo, hi) == pytest.approx(100 * (1 - 10 / 200))
    assert m.uptime(2, {"d1": [(90 * NS, 150 * NS)]}, lo, hi) == pytest.approx(100 * (1 - 10 / 200))
    assert m.uptime(0, {}, lo, hi) is None
    assert m.uptime(1, {}, lo, hi) == 100.0


def test_peoples_area_of_a_constructed_curve() -> None:
    # Q rises linearly from 0.5 to 1 over the event: area 0.75; a flat curve at 1: area 1
    pts = [(t * NS, 0.5 + 0.5 * t / 10) for t in range(11)]
    assert m.area(pts) == pytest.approx(0.75)
    assert m.area([(0, 1.0), (60 * NS, 1.0)]) == 1.0
    assert m.area([]) is None
    # one red alert of 10 minutes acknowledged after 4, no device offline, 10 devices: Q = 0.5 (all online,
    # nothing handled) for 4 min, then 1; a short event is sampled 60 times (every 10 s), so the step at the
    # acknowledgement is one trapezoid from 230 s to 240 s
    a = m.EventAlert(0, 240 * NS, 600 * NS)
    (span, members), = m.episodes([a], NOW)
    points = m.curve(span, members, 10, {})
    assert points[0] == (0, 0.5) and points[-1] == (600 * NS, 1.0)
    assert m.area(points) == pytest.approx((230 * 0.5 + 10 * 0.75 + 360 * 1.0) / 600)
    # a device offline for the whole event lowers the online half by a tenth
    assert m.area(m.curve(span, members, 10, {"d": [(-NS, 700 * NS)]})) < m.area(points)  # type: ignore[operator]


def test_events_merge_overlapping_alerts() -> None:
    a = m.EventAlert(0, None, 100)
    b = m.EventAlert(50, 60, 200)
    c = m.EventAlert(300, None, None)
    events = m.episodes([a, b, c], 1000)
    assert [span for span, _ in events] == [(0, 200), (300, 1000)]
    assert events[0][1] == [a, b] and events[1][1] == [c]


def test_scores_are_linear_towards_the_target_both_ways() -> None:
    assert m.score(None, 100, 0) == 0
    assert m.score(50, 100, 0) == 50 and m.score(120, 100, 0) == 100
    assert m.score(94.5, 99, 90) == 50
    assert m.score(300, 300, 3600) == 100 and m.score(1950, 300, 3600) == 50 and m.score(9000, 300, 3600) == 0
    assert (m.rating(49.9), m.rating(50), m.rating(79.9), m.rating(80)) == ("low", "medium", "medium", "high")


def test_response_figures_from_alert_rows() -> None:
    rows = Rows(NOW, buildings=["b1"], device_buildings=["b1"], alerts=[
        Alert("smoke.alarm", "red", "d1", NOW - 1000 * NS, NOW - 900 * NS, NOW - 500 * NS),  # ack 100 s: in time
        Alert("smoke.alarm", "red", "d1", NOW - 2000 * NS, NOW - 1700 * NS, None),  # ack 300 s: late
        Alert("water.high", "blue", "d2", NOW - 100 * NS, None, None),  # not yet due: not counted
        Alert("service.disk", "red", "x", NOW - 100 * NS, None, None),  # the service's own: left out
        Alert("smoke.alarm", "red", "d1", NOW - 100 * DAY, NOW - 100 * DAY + NS, NOW - 99 * DAY),  # too old
    ])
    card = scorecard(rows, TARGETS, "en")
    assert indicator(card, "ack_median_s")["value"] == 200.0
    assert indicator(card, "ack_p90_s")["value"] == pytest.approx(280.0)
    assert indicator(card, "resolve_median_s")["value"] == 500.0
    assert indicator(card, "ack_within_target")["value"] == 50.0
    calls = indicator(card, "answered_5min")
    assert calls["value"] is None and calls["score"] == 0 and calls["reason"] == "no 叫应 calls in 90 days"


def test_door_knock_lists_in_time() -> None:
    knocks = [("a1", 100, "reached", 50), ("a1", 100, "reached", 90),  # all reached before the deadline
              ("a2", 100, "reached", 50), ("a2", 100, "not_reached", 60),  # one not reached
              ("a3", 10_000, "pending", None)]  # still within its deadline: not counted
    assert knocks_in_time(knocks, 1000) == (50.0, 3)


def test_a_community_with_nothing_rates_low_with_reasons() -> None:
    card = scorecard(Rows(NOW, buildings=["b1", "b2"]), TARGETS, "en")
    assert card["overall"]["rating"] == "low" and card["overall"]["score"] < 50
    for c in card["categories"]:
        assert c["rating"] == "low"
        for i in c["indicators"]:
            assert i["score"] == 0 and i["reason"], i
    assert indicator(card, "coverage")["reason"] == "no devices registered in the community"
    drills = indicator(card, "drills_12m")
    assert (drills["value"], drills["reason"]) == (0.0, "no drills recorded in 12 months")
    assert indicator(card, "supplies_ready")["reason"] == "no supplies listed for the community"
    zh = scorecard(Rows(NOW), TARGETS, "zh-CN")
    assert zh["categories"][0]["name"] == "感知覆盖" and indicator(zh, "ack_median_s")["reason"] == "90天内没有告警"


def test_a_prepared_community_scores_its_preparedness() -> None:
    rows = Rows(NOW, buildings=["b1", "b2"], device_buildings=["b1", "b1"], drills=2,
                supplies=[{"quantity": 5, "min_quantity": 2, "expired": False},
                          {"quantity": 1, "min_quantity": 2, "expired": False}],
                capacity={"shelter_capacity": 30, "residents": 200})
    card = scorecard(rows, TARGETS, "en")
    assert indicator(card, "coverage")["value"] == 50.0
    assert indicator(card, "uptime_30d")["value"] == 100.0 and indicator(card, "uptime_30d")["score"] == 100
    assert indicator(card, "drills_12m")["score"] == 100
    assert indicator(card, "supplies_ready")["value"] == 50.0
    assert indicator(card, "shelter_capacity")["value"] == 15.0 and indicator(card, "shelter_capacity")["score"] == 100


def test_the_scorecard_reads_the_tables_it_finds_and_points_for_the_history() -> None:
    c1 = {"id": "c1", "name": "一村", "grids": [{"id": "g1", "name": "g"}],
          "buildings": [{"id": "b1", "name": "1号楼", "grid": "g1"}]}
    settings = Settings.model_validate({"communities": [c1]})

    class Resources:
        def supplies(self, scope: Any, community: str) -> list[dict[str, Any]]:
            return []

        def capacity(self, community: str) -> dict[str, Any]:
            return {"shelter_capacity": 0, "residents": None}

    class Clock:
        def now_ns(self) -> int:
            return NOW

    async def select(sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if "sqlite_master" in sql:
            return [("drills",)]
        assert "FROM drills" in sql and args[0] == "c1"
        return [(3,)]

    card = Scorecard(settings, Clock(), Resources(), select)  # type: ignore[arg-type]
    got = asyncio.run(card.card("c1", "en"))
    assert got is not None and got["community"] == "c1" and got["as_of"].startswith("2027-01-15T08:00:00")
    assert indicator(got, "drills_12m")["value"] == 3.0
    assert asyncio.run(card.card("nowhere")) is None
    points = resilience_points(got, NOW)
    assert {p.tags["category"] for p in points} == {"overall", "sensing", "response", "departments", "preparedness",
                                                   "recovery"}
    assert all(p.measurement == "resilience" and p.tags["community"] == "c1" and "score" in p.fields for p in points)
    assert next(p for p in points if p.tags["category"] == "preparedness").fields["drills_12m"] == 3.0
