"""Drills (docs/drills.md), pure: which alerts are drill alerts, who they reach (never the bureau unless the
drill asked), their words and flags; and the report's figures from records made up here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from alerts.call_until_answered import CallStage
from alerts.drills import INSERT_DRILL_ALERT, Drill
from alerts.manager import AlertManager, Changes
from alerts.route import Router
from app.drill_report import Records, as_html, compute, tables
from kernel.alerting import Level, Transition, TransitionKind
from kernel.settings import parse_settings
from kernel.site import Site
from notify.notification import Notification

NS = 1_000_000_000
T0 = 1_777_600_000 * NS
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "site.yaml"
SETTINGS = parse_settings(EXAMPLE.read_text(encoding="utf-8"), source="site.yaml", env={})
YICUN, ERCUN = "linfen-yicun", "linfen-ercun"


def at(s: float) -> int:
    return T0 + int(s * NS)


def manager(locale: str = "zh-CN") -> AlertManager:
    router = Router(SETTINGS, {Level.RED: 60, Level.ORANGE: 60, Level.YELLOW: 60, Level.BLUE: 60})
    return AlertManager(Site(SETTINGS), locale=locale, router=router, calls=CallStage(SETTINGS, router))


def fire(m: AlertManager, level: Level, community: str = YICUN, device: str = "sd-b01-0501",
         episode: str = "ep-1", at_s: float = 0.0) -> Changes:
    place = m.site.place(community, device)
    t = Transition(TransitionKind.FIRE, "smoke.alarm", episode, level, None, community, place.building, place.grid,
                   device, "smoke_detector", 1.0, at(at_s), at(at_s))
    return m.on_transitions([t], at(at_s))


def recipients(changes: Changes) -> set[str]:
    return {m.recipient for m in changes.messages}


def test_a_drill_alert_is_prefixed_flagged_and_stops_at_the_street_office() -> None:
    m = manager()
    m.drills.start(Drill("d1", YICUN, "kitchen-fire", at(0)))
    red = fire(m, Level.RED)
    assert recipients(red) == {"worker-g1", "committee-yicun", "street-office"}  # not the bureau
    assert all(msg.extra.get("drill") is True for msg in red.messages)
    alert = next(iter(m.open.values()))
    assert alert.summary.startswith("【演练】") and alert.tier == 3
    assert (INSERT_DRILL_ALERT, [(alert.id, "d1")]) in red.writes
    # The notification object says it, the calls of 叫应 too.
    objects = [orjson.loads(Notification.from_message(x).payload) for x in red.messages]
    assert all(o["drill"] is True and o["alert"]["summary"].startswith("【演练】") for o in objects)
    assert any(o["event"] == "call" for o in objects)
    # Escalation stops at the street office: nothing ever goes to the bureau.
    later = m.on_tick(at(3600))
    assert "bureau" not in recipients(later)
    assert all(msg.extra.get("drill") is True for msg in later.messages)
    # Another community's alert meanwhile is real, and reaches the bureau.
    real = fire(m, Level.RED, community=ERCUN, device="sd-b11-0301", episode="ep-2")
    assert "bureau" in recipients(real) and not any(msg.extra.get("drill") for msg in real.messages)
    # The acknowledgement of the drill alert is a drill notification too.
    _alert, acked = m.acknowledge(alert.id, "worker-g1", None, at(5))
    assert acked.messages and all(msg.extra.get("drill") is True for msg in acked.messages)


def test_a_drill_that_asks_for_the_bureau_reaches_it_and_an_ended_drill_marks_nothing_new() -> None:
    m = manager(locale="en")
    m.drills.start(Drill("d1", YICUN, "kitchen-fire", at(0), bureau=True))
    red = fire(m, Level.RED)
    assert "bureau" in recipients(red) and all(msg.extra.get("drill") for msg in red.messages)
    assert next(iter(m.open.values())).summary.startswith("[DRILL] ")
    m.drills.end("d1")
    after = fire(m, Level.ORANGE, device="sd-b03-0101", episode="ep-3")
    assert not any(msg.extra.get("drill") for msg in after.messages)
    assert not m.open["ep-3"].summary.startswith("[DRILL]")
    assert m.drills.drill_of("ep-1") is not None  # the drill's own alert stays a drill alert


def test_without_a_drill_nothing_changes() -> None:
    m = manager()
    red = fire(m, Level.RED)
    assert "bureau" in recipients(red) and not any("drill" in msg.extra for msg in red.messages)
    assert not any(w[0] == INSERT_DRILL_ALERT for w in red.writes)


def records(**kw: Any) -> Records:
    base: dict[str, Any] = {
        "drill": {"id": "d1", "community": YICUN, "scenario": "kitchen-fire", "started_ns": at(0),
                  "ended_ns": at(600), "bureau": False},
        "alerts": [{"id": "a1", "rule": "smoke.multi", "level": "red", "summary": "【演练】1号楼"}],
        "events": [("a1", at(10), "fired", None), ("a1", at(11), "called", "worker-g1"),
                   ("a1", at(100), "acknowledged", "worker-g2"), ("a1", at(130), "acknowledged", "worker-g1")],
        "calls": [call("worker-g1", "a", 11, 71, None, "missed"), call("worker-g2", "b", 71, 131, 100, "answered"),
                  call("committee-yicun", "a", 200, 900, None, "waiting")],
        "orders": [order("fire", signed=20, arrived=50), order("property-yicun", signed=45, arrived=None)],
        "knocks": [knock("v-b01-0302", "reached", 300), knock("v-b01-0601", "pending", None)],
        "names": {"worker-g1": "张伟", "worker-g2": "李娜", "property-yicun": "物业", "v-b01-0601": "李伯伯"},
    }
    return Records(**(base | kw))


def call(person: str, attempt: str, called: float, due: float, answered: float | None, status: str) -> dict[str, Any]:
    return {"id": f"c-{person}", "alert_id": "a1", "tier": 0, "place": "g1", "duty": "网格员", "person": person,
            "attempt": attempt, "called_ns": at(called), "due_ns": at(due), "status": status,
            "answered_ns": None if answered is None else at(answered), "answered_via": "api",
            "answered_by": person, "note": None}


def order(dept: str, signed: float | None, arrived: float | None) -> dict[str, Any]:
    return {"whistle_id": "w1", "department": dept, "due_sign_ns": at(40), "due_arrive_ns": at(400),
            "signed_ns": None if signed is None else at(signed), "arrived_ns": None if arrived is None else at(arrived),
            "alert_id": "a1"}


def knock(vid: str, status: str, done: float | None) -> dict[str, Any]:
    return {"alert_id": "a1", "vulnerable_id": vid, "community": YICUN, "building": "b01", "grid": "g1",
            "created_ns": at(10), "due_ns": at(500), "escalated": 0, "status": status,
            "actor": "worker-g1" if done else None, "at_ns": None if done is None else at(done), "note": None}


def test_the_report_measures_each_step_against_its_due_time() -> None:
    r = compute(records(), at(700))
    a = r["alerts"][0]
    assert (a["time_to_first_ack_s"], a["first_ack_by"], a["first_ack_name"]) == (90.0, "worker-g2", "李娜")
    calls = {c["person"]: c for c in r["calls"]}
    assert calls["worker-g1"]["on_time"] is False and calls["worker-g1"]["answer_s"] is None
    assert calls["worker-g2"]["on_time"] is True and calls["worker-g2"]["answer_s"] == 29.0
    assert calls["worker-g2"]["within_5min"] and not calls["worker-g1"]["within_5min"]
    assert calls["committee-yicun"]["on_time"] is None  # still waiting, not due when the drill ended
    steps = {(o["department"], o["step"]): o for o in r["orders"]}
    assert steps[("fire", "sign")]["on_time"] is True and steps[("property-yicun", "sign")]["late_s"] == 5.0
    # Never done: late once due (the drill ended at 600, the arrival was due at 400), by no measure.
    assert steps[("property-yicun", "arrive")]["on_time"] is False
    assert [(x["who"], x["what"], x["late_s"]) for x in r["late"]] == [
        ("worker-g1", "call", None), ("property-yicun", "sign", 5.0), ("property-yicun", "arrive", None),
        ("g1", "knock", None)]  # nobody knocked at 李伯伯's door: the grid is named
    f = r["figures"]
    # On time: g2's call, fire's sign and arrive, the reached knock; the committee's call is not due yet.
    assert (f["steps"], f["steps_on_time"], f["score"]) == (8, 4, 0.5)
    assert (f["door_knocks"], f["door_knocks_done"], f["calls_answered_within_5min"]) == (2, 1, 1)


def test_a_running_drill_counts_only_what_is_due_so_far() -> None:
    r = compute(records(drill={"id": "d1", "community": YICUN, "scenario": "s", "started_ns": at(0),
                               "ended_ns": None, "bureau": False}), at(60))
    assert r["drill"]["ended_at"] is None
    assert {(x["who"], x["what"]) for x in r["late"]} == {("property-yicun", "sign")}
    assert r["figures"]["steps"] == 5  # what is done (g2's call, both signs, an arrival, a knock) or due


def test_the_late_are_named_in_both_languages() -> None:
    r = compute(records(), at(700))
    zh, en = as_html(r, "zh-CN"), as_html(r, "en")
    assert "张伟 (worker-g1)" in zh and "未完成" in zh and "物业 (property-yicun)" in zh
    assert "not done" in en and "Drill report" in en
    assert [t for t, _ in tables(r, "en")] == ["Figures", "Late", "Drill alerts", "叫应 calls",
                                               "Whistles' work orders", "Door knocks"]


def test_nothing_measured_has_no_score() -> None:
    r = compute(records(alerts=[], events=[], calls=[], orders=[], knocks=[]), at(700))
    assert r["figures"]["score"] is None and r["late"] == [] and "无人迟到" in as_html(r, "zh-CN")
