"""The alert lifecycle on a driven clock: who is told, escalation, acknowledgement, reminders, restore.

Pure: the manager is fed transitions and times and answers writes and notifications; nothing is sent.
The example site (examples/site.yaml) decides who is who.
"""

from __future__ import annotations

import copy
import re
import sqlite3
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from alerts.manager import AlertManager, Changes, Message
from alerts.route import DEFAULT_ACK_TIMEOUT_S
from alerts.store import INSERT_EVENT, SCHEMA, SELECT_ACTIVE, UPSERT_ALERT, alert_from_row
from kernel.alerting import AlertStatus, Event, Level, Transition, TransitionKind
from kernel.errors import Reason, Refused
from kernel.settings import parse_settings
from kernel.site import Site
from notify.notification import Notification
from notify.outbox import outbox_row
from notify.store import INSERT_OUTBOX
from notify.store import SCHEMA as OUTBOX_SCHEMA

NS = 1_000_000_000
T0 = 1_777_600_000 * NS
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "site.yaml"
SETTINGS = parse_settings(EXAMPLE.read_text(encoding="utf-8"), source="site.yaml", env={})
SITE = Site(SETTINGS)
YICUN = "linfen-yicun"

WORKER, COMMITTEE, STREET, BUREAU = "worker-g1", "committee-yicun", "street-office", "bureau"
TOLD_AT = {
    Level.BLUE: {WORKER},
    Level.YELLOW: {WORKER, COMMITTEE},
    Level.ORANGE: {WORKER, COMMITTEE, STREET},
    Level.RED: {WORKER, COMMITTEE, STREET, BUREAU},
}
ALERT_KEYS = {"id", "rule", "level", "status", "community", "building", "grid", "device_id", "device_type", "value",
              "started_at", "updated_at", "summary"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def at(seconds: float) -> int:
    return T0 + round(seconds * NS)


def manager(**kw: Any) -> AlertManager:
    return AlertManager(SITE, **kw)


def tr(kind: TransitionKind, level: Level | None, *, rule: str = "smoke.alarm", episode: str = "ep-1",
       device: str = "sd-b01-0501", device_type: str = "smoke_detector", community: str = YICUN,
       previous: Level | None = None, value: float | None = 12.0, at_s: float = 0.0,
       started_s: float = 0.0, building: str | None = None) -> Transition:
    """A transition of a device the site places (or leaves unplaced, when it does not list it)."""
    place = SITE.place(community, device)
    b = building or place.building
    return Transition(kind, rule, episode, level, previous, community, b, SITE.grid_of(community, b), device,
                      device_type, value, at(at_s), at(started_s))


def fire(m: AlertManager, level: Level, at_s: float = 0.0, **kw: Any) -> Changes:
    return m.on_transitions([tr(TransitionKind.FIRE, level, at_s=at_s, started_s=at_s, **kw)], at(at_s))


def told(changes: Changes | Iterable[Message], event: Event | None = None) -> set[str]:
    """Recipients of the notifications (of one event)."""
    ns = changes.messages if isinstance(changes, Changes) else list(changes)
    return {n.recipient for n in ns if event is None or n.event is event}


def events(changes: Changes) -> set[Event]:
    return {n.event for n in changes.messages}


def body(n: Message) -> dict[str, Any]:
    """The notification object delivery sends for a message."""
    result: dict[str, Any] = orjson.loads(Notification.from_message(n).payload)
    return result


# ---- who is told ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", list(Level))
def test_fired_reaches_every_tier_up_to_its_level(level: Level) -> None:
    m = manager()
    changes = fire(m, level)
    assert events(changes) == {Event.FIRED}
    assert told(changes) == TOLD_AT[level]
    assert len(changes.messages) == len(TOLD_AT[level])  # one notification per recipient, nobody twice
    assert len({n.event_id for n in changes.messages}) == len(changes.messages)
    alert = m.open["ep-1"]
    assert (alert.level, alert.status, alert.building, alert.grid) == (level, AlertStatus.FIRING, "b01", "g1")


def test_a_device_in_another_community_reaches_that_communitys_people_only() -> None:
    changes = fire(manager(), Level.ORANGE, device="sd-b11-0301", community="linfen-ercun")
    assert told(changes) == {"worker-g3", "committee-ercun", STREET}


@pytest.mark.parametrize(("level", "expected"), [(Level.BLUE, {COMMITTEE}), (Level.YELLOW, {COMMITTEE}),
                                                 (Level.ORANGE, {COMMITTEE, STREET})])
def test_an_unplaced_device_goes_to_its_communitys_committee_from_blue_on(level: Level, expected: set[str]) -> None:
    m = manager()
    changes = fire(m, level, device="sd-not-listed", rule="device.battery")
    assert told(changes) == expected
    alert = m.open["ep-1"]
    assert (alert.community, alert.building, alert.grid) == (YICUN, "unknown", "unknown")


# ---- escalation ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("level", "timeout_s", "after"), [
    (Level.BLUE, 3600, {WORKER, COMMITTEE}),
    (Level.YELLOW, 900, {WORKER, COMMITTEE, STREET}),
    (Level.ORANGE, 300, {WORKER, COMMITTEE, STREET, BUREAU}),
    (Level.RED, 120, {WORKER, COMMITTEE, STREET, BUREAU}),  # already the top tier: re-sent
])
def test_an_unacknowledged_alert_escalates_one_tier_exactly_at_its_levels_deadline(
        level: Level, timeout_s: int, after: set[str]) -> None:
    m = manager()
    fire(m, level)
    assert DEFAULT_ACK_TIMEOUT_S[level] == timeout_s
    assert m.next_deadline() == at(timeout_s)
    early = m.on_tick(at(timeout_s) - 1)
    assert early.messages == [] and early.writes == []
    changes = m.on_tick(at(timeout_s))
    assert events(changes) == {Event.ESCALATED}
    assert told(changes) == after
    assert all(body(n)["alert"]["level"] == level.value for n in changes.messages)  # the level stays


def test_an_unacknowledged_orange_alert_escalates_at_300s_and_again_later_at_the_top_tier() -> None:
    m = manager()
    fire(m, Level.ORANGE)
    assert m.on_tick(at(299.999)).messages == []
    first = m.on_tick(at(300))
    assert told(first, Event.ESCALATED) == {WORKER, COMMITTEE, STREET, BUREAU}
    assert m.open["ep-1"].tier == 3
    assert m.on_tick(at(599)).messages == []
    second = m.on_tick(at(600))
    assert told(second, Event.ESCALATED) == {WORKER, COMMITTEE, STREET, BUREAU}  # re-sent, still the top tier
    assert {n.event_id for n in first.messages}.isdisjoint(n.event_id for n in second.messages)
    third = m.on_tick(at(900))
    assert told(third, Event.ESCALATED) == {WORKER, COMMITTEE, STREET, BUREAU}
    assert m.open["ep-1"].tier == 3 and m.open["ep-1"].level is Level.ORANGE


def test_a_late_tick_escalates_once_not_once_per_missed_deadline() -> None:
    m = manager()
    fire(m, Level.RED)
    changes = m.on_tick(at(1000))  # the service was busy (or asleep) past several deadlines
    assert len(changes.messages) == 4
    assert m.next_deadline() == at(1120)


def test_configured_ack_timeouts_replace_the_defaults() -> None:
    m = manager(ack_timeout_s={Level.BLUE: 1, Level.YELLOW: 2, Level.ORANGE: 2, Level.RED: 2})
    fire(m, Level.ORANGE)
    assert m.on_tick(at(1.999)).messages == []
    assert told(m.on_tick(at(2)), Event.ESCALATED) == TOLD_AT[Level.RED]


def test_an_acknowledged_alert_does_not_escalate() -> None:
    m = manager()
    fire(m, Level.ORANGE)
    alert, changes = m.acknowledge("ep-1", WORKER, "到场", at(10))
    assert alert.status is AlertStatus.ACKNOWLEDGED and alert.acked_by == WORKER
    assert told(changes, Event.ACKNOWLEDGED) == TOLD_AT[Level.ORANGE]
    assert all(body(n)["alert"]["status"] == "acknowledged" for n in changes.messages)
    for s in (300, 310, 600, 3600, 86400):
        assert m.on_tick(at(s)).messages == [], s
    assert m.open["ep-1"].tier == 2
    with pytest.raises(Refused) as again:
        m.acknowledge("ep-1", "admin", None, at(20))
    assert again.value.reason is Reason.CONFLICT


def test_a_resolved_alert_stops_everything() -> None:
    m = manager(reminders_s={"smoke.alarm": 60})
    fire(m, Level.ORANGE)
    alert, changes = m.resolve("ep-1", STREET, "误报", at(30))
    assert alert.status is AlertStatus.RESOLVED and (alert.resolved_by, alert.resolve_note) == (STREET, "误报")
    assert told(changes, Event.RESOLVED) == TOLD_AT[Level.ORANGE]
    assert "ep-1" not in m.open
    for s in (60, 120, 300, 600, 3600):
        assert m.on_tick(at(s)).messages == [], s
    assert m.next_deadline() is None
    with pytest.raises(Refused):
        m.acknowledge("ep-1", WORKER, None, at(40))
    with pytest.raises(Refused):
        m.resolve("ep-1", WORKER, None, at(40))
    # The rule's own CLEAR of an alert a person already resolved changes nothing.
    assert m.on_transitions([tr(TransitionKind.CLEAR, None, previous=Level.ORANGE, at_s=50)], at(50)).writes == []


def test_the_rule_clearing_resolves_and_tells_everyone_told_so_far() -> None:
    m = manager()
    fire(m, Level.ORANGE)
    m.on_tick(at(300))  # escalated to the bureau
    changes = m.on_transitions([tr(TransitionKind.CLEAR, None, previous=Level.ORANGE, value=1.0, at_s=400)], at(400))
    assert told(changes, Event.RESOLVED) == TOLD_AT[Level.RED]
    b = body(changes.messages[0])["alert"]
    assert (b["status"], b["value"]) == ("resolved", 1.0)
    assert m.on_tick(at(600)).messages == []


# ---- level changes and duplicates ---------------------------------------------------------------------------


def test_a_level_raise_reaches_the_new_tier_and_needs_a_fresh_acknowledgement() -> None:
    m = manager()
    fire(m, Level.YELLOW, rule="water.level", device="wl-gate-east", device_type="water_level", value=16)
    m.acknowledge("ep-1", COMMITTEE, None, at(60))
    assert m.on_tick(at(900)).messages == []
    raised = m.on_transitions([tr(TransitionKind.RAISE, Level.ORANGE, previous=Level.YELLOW, rule="water.level",
                                  device="wl-gate-east", device_type="water_level", value=26, at_s=1000)], at(1000))
    # wl-gate-east is in building b03, grid g2.
    assert told(raised, Event.LEVEL_RAISED) == {"worker-g2", COMMITTEE, STREET}
    alert = m.open["ep-1"]
    assert (alert.level, alert.status, alert.acked_by, alert.value) == (Level.ORANGE, AlertStatus.FIRING, None, 26)
    assert body(raised.messages[0])["alert"]["level"] == "orange"
    # Not acknowledged again: escalates after the orange deadline, counted from the raise.
    assert m.on_tick(at(1299)).messages == []
    assert told(m.on_tick(at(1300)), Event.ESCALATED) == {"worker-g2", COMMITTEE, STREET, BUREAU}
    _, acked = m.acknowledge("ep-1", COMMITTEE, None, at(1310))
    assert told(acked, Event.ACKNOWLEDGED) == {"worker-g2", COMMITTEE, STREET, BUREAU}


def test_a_raise_of_an_alert_a_person_resolved_is_not_lost() -> None:
    """Someone closed the yellow alert while the water stayed; it then reaches red: somebody must hear of it."""
    m = manager()
    fire(m, Level.YELLOW, rule="water.level", device="wl-gate-east", device_type="water_level", value=16)
    m.resolve("ep-1", COMMITTEE, "已处理", at(60))
    raised = m.on_transitions([tr(TransitionKind.RAISE, Level.RED, previous=Level.YELLOW, rule="water.level",
                                  device="wl-gate-east", device_type="water_level", value=41, at_s=120)], at(120))
    assert told(raised, Event.LEVEL_RAISED) == {"worker-g2", COMMITTEE, STREET, BUREAU}
    alert = m.open["ep-1"]
    assert (alert.level, alert.status, alert.resolved_by) == (Level.RED, AlertStatus.FIRING, None)
    assert all(body(n)["alert"]["status"] == "firing" for n in raised.messages)
    assert m.next_deadline() == at(120 + 120)


def test_a_lower_level_writes_the_change_but_tells_nobody() -> None:
    m = manager()
    fire(m, Level.ORANGE, rule="water.level", device="wl-gate-east", device_type="water_level", value=26)
    lowered = m.on_transitions([tr(TransitionKind.LOWER, Level.YELLOW, previous=Level.ORANGE, rule="water.level",
                                   device="wl-gate-east", device_type="water_level", value=16, at_s=100)], at(100))
    assert lowered.messages == []
    statements = [s for s, _ in lowered.writes]
    assert INSERT_OUTBOX not in statements
    assert UPSERT_ALERT in statements and INSERT_EVENT in statements
    event_rows = next(rows for s, rows in lowered.writes if s == INSERT_EVENT)
    assert [(r[2], r[3]) for r in event_rows] == [("level_lowered", "yellow")]
    alert = m.open["ep-1"]
    assert (alert.level, alert.value, alert.status) == (Level.YELLOW, 16, AlertStatus.FIRING)
    assert "黄色" in alert.summary


def test_a_duplicate_fire_of_the_same_episode_makes_no_second_alert() -> None:
    m = manager()
    first = fire(m, Level.ORANGE)
    again = m.on_transitions([tr(TransitionKind.FIRE, Level.ORANGE, at_s=5)] * 2, at(5))
    assert again.messages == [] and again.writes == []
    assert list(m.open) == ["ep-1"]
    assert len(first.messages) == 3
    # A new episode of the same rule and device is a new alert.
    other = m.on_transitions([tr(TransitionKind.FIRE, Level.ORANGE, episode="ep-2", at_s=7)], at(7))
    assert told(other, Event.FIRED) == TOLD_AT[Level.ORANGE]
    assert set(m.open) == {"ep-1", "ep-2"}


def test_one_batch_with_fire_and_raise_of_the_same_episode() -> None:
    m = manager()
    changes = m.on_transitions([tr(TransitionKind.FIRE, Level.YELLOW),
                                tr(TransitionKind.RAISE, Level.RED, previous=Level.YELLOW)], at(0))
    assert told(changes, Event.FIRED) == TOLD_AT[Level.YELLOW]
    assert told(changes, Event.LEVEL_RAISED) == TOLD_AT[Level.RED]


# ---- reminders -----------------------------------------------------------------------------------------------


def test_reminders_every_300s_while_firing_stop_on_acknowledgement() -> None:
    m = manager(reminders_s={"fire_lane.blocked": 300})
    fire(m, Level.YELLOW, rule="fire_lane.blocked", device="fl-lane-north", device_type="fire_lane", value=None)
    assert m.on_tick(at(299)).messages == []
    r1 = m.on_tick(at(300))
    assert events(r1) == {Event.REMINDER} and told(r1) == TOLD_AT[Level.YELLOW]
    assert m.on_tick(at(599)).messages == []
    r2 = m.on_tick(at(600))
    assert events(r2) == {Event.REMINDER} and told(r2) == TOLD_AT[Level.YELLOW]
    m.acknowledge("ep-1", WORKER, None, at(650))
    for s in (900, 1200, 1800, 3600):
        assert m.on_tick(at(s)).messages == [], s


def test_reminders_start_again_when_a_raise_needs_a_fresh_acknowledgement() -> None:
    m = manager(reminders_s={"fire_lane.blocked": 300})
    fire(m, Level.YELLOW, rule="fire_lane.blocked", device="fl-lane-north", device_type="fire_lane", value=None)
    m.acknowledge("ep-1", WORKER, None, at(10))
    assert m.on_tick(at(300)).messages == []
    m.on_transitions([tr(TransitionKind.RAISE, Level.ORANGE, previous=Level.YELLOW, rule="fire_lane.blocked",
                         device="fl-lane-north", device_type="fire_lane", value=None, at_s=600)], at(600))
    assert m.on_tick(at(899)).messages == []
    due = m.on_tick(at(900))  # the orange deadline (600 + 300 s) and the first reminder since the raise
    assert events(due) == {Event.REMINDER, Event.ESCALATED}
    assert told(due, Event.REMINDER) == TOLD_AT[Level.RED]  # everyone told so far, the bureau now too
    m.acknowledge("ep-1", WORKER, None, at(1000))
    assert m.on_tick(at(1200)).messages == [] and m.on_tick(at(3000)).messages == []


def test_a_raise_keeps_the_reminder_rhythm_of_an_unacknowledged_alert() -> None:
    m = manager(reminders_s={"fire_lane.blocked": 300})
    fire(m, Level.YELLOW, rule="fire_lane.blocked", device="fl-lane-north", device_type="fire_lane", value=None)
    m.on_transitions([tr(TransitionKind.RAISE, Level.ORANGE, previous=Level.YELLOW, rule="fire_lane.blocked",
                         device="fl-lane-north", device_type="fire_lane", value=None, at_s=100)], at(100))
    assert events(m.on_tick(at(300))) == {Event.REMINDER}
    assert events(m.on_tick(at(400))) == {Event.ESCALATED}
    assert events(m.on_tick(at(600))) == {Event.REMINDER}


def test_rules_without_reminders_get_none() -> None:
    m = manager(reminders_s={"fire_lane.blocked": 300})
    fire(m, Level.YELLOW, rule="smoke.obscuration")
    assert m.on_tick(at(899)).messages == []  # no reminder at 300 or 600, the escalation comes at 900
    assert events(m.on_tick(at(900))) == {Event.ESCALATED}


# ---- durability ----------------------------------------------------------------------------------------------


def apply(db: sqlite3.Connection, changes: Changes) -> None:
    """Commit a change with its messages' outbox rows, as the runner does with delivery's outbox."""
    outbox = [(INSERT_OUTBOX, [outbox_row(Notification.from_message(m)) for m in changes.messages])]
    for statement, rows in changes.writes + outbox:
        db.executemany(statement, rows)
    db.commit()


def test_writes_are_valid_statements_and_restore_continues_escalation_at_the_stored_time() -> None:
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA + OUTBOX_SCHEMA)
    m = manager()
    fired = fire(m, Level.ORANGE)
    apply(db, fired)
    apply(db, fire(m, Level.ORANGE, at_s=50, episode="ep-acked", device="sd-b01-0502"))
    _, acked = m.acknowledge("ep-acked", WORKER, "on my way", at(60))
    apply(db, acked)
    apply(db, fire(m, Level.BLUE, at_s=70, episode="ep-gone", rule="device.battery"))
    _, resolved = m.resolve("ep-gone", "admin", None, at(80))
    apply(db, resolved)
    assert db.execute("SELECT status, next_escalation_ns, next_reminder_ns FROM alerts WHERE id = 'ep-gone'"
                      ).fetchall() == [("resolved", None, None)]
    assert db.execute("SELECT status, next_escalation_ns FROM alerts WHERE id = 'ep-acked'"
                      ).fetchall() == [("acknowledged", None)]
    outbox = db.execute("SELECT event_id, recipient, event, status FROM outbox").fetchall()
    assert {(e, r, ev, "pending") for e, r, ev, _ in outbox} == set(outbox)
    assert len(outbox) == 3 + 3 + 3 + 1 + 1
    assert {e for e, *_ in outbox} >= {n.event_id for n in fired.messages}

    # A new process: the open alerts come back with their deadlines.
    restarted = manager()
    restarted.restore([alert_from_row(row) for row in db.execute(SELECT_ACTIVE).fetchall()])
    assert set(restarted.open) == {"ep-1", "ep-acked"}
    assert restarted.open["ep-acked"].status is AlertStatus.ACKNOWLEDGED
    assert restarted.open["ep-acked"].ack_note == "on my way"
    assert restarted.next_deadline() == at(300)
    assert restarted.on_tick(at(299)).messages == []
    escalated = restarted.on_tick(at(300))
    assert told(escalated, Event.ESCALATED) == TOLD_AT[Level.RED]
    assert {body(n)["alert"]["id"] for n in escalated.messages} == {"ep-1"}
    assert restarted.on_tick(at(5000)).messages != []  # ep-1 goes on; ep-acked never escalates
    assert all(n.subject_id == "ep-1" for n in restarted.on_tick(at(10_000)).messages)


def test_restore_of_a_deadline_missed_while_down_escalates_at_once() -> None:
    m = manager()
    fired = fire(m, Level.RED)
    row = next(rows for s, rows in fired.writes if s == UPSERT_ALERT)[-1]
    restarted = manager()
    restarted.restore([alert_from_row(row)])
    assert restarted.next_deadline() == at(120)
    assert told(restarted.on_tick(at(400)), Event.ESCALATED) == TOLD_AT[Level.RED]


def test_restore_continues_reminders() -> None:
    m = manager(reminders_s={"fire_lane.blocked": 300})
    fired = fire(m, Level.YELLOW, rule="fire_lane.blocked", device="fl-lane-north", device_type="fire_lane")
    row = next(rows for s, rows in fired.writes if s == UPSERT_ALERT)[-1]
    restarted = manager(reminders_s={"fire_lane.blocked": 300})
    restarted.restore([alert_from_row(row)])
    assert restarted.on_tick(at(299)).messages == []
    assert events(restarted.on_tick(at(300))) == {Event.REMINDER}


# ---- what people read ----------------------------------------------------------------------------------------


def test_summaries_name_the_place_in_chinese_by_default() -> None:
    m = manager()
    changes = fire(m, Level.ORANGE, value=12.5)
    summary = body(changes.messages[0])["alert"]["summary"]
    assert "临汾一村" in summary and "1号楼" in summary and "第一网格" in summary
    assert "橙色" in summary and "烟感报警" in summary and "sd-b01-0501" in summary and "12.5" in summary
    assert m.open["ep-1"].summary == summary


def test_summaries_in_english() -> None:
    m = manager(locale="en")
    changes = fire(m, Level.RED, rule="water.level", device="wl-gate-east", device_type="water_level", value=41.5)
    summary = body(changes.messages[0])["alert"]["summary"]
    assert summary.startswith("[red (I)]")
    assert "standing water" in summary and "water gauge" in summary and "41.5" in summary
    assert "临汾一村" in summary and "3号楼" in summary  # the place keeps its own name
    assert not re.search(r"[积水蓝黄橙红预警当前值]", summary)


def test_a_building_wide_alert_names_no_device() -> None:
    changes = fire(manager(), Level.RED, rule="smoke.multi", device="building:b01", building="b01",
                   value=None)
    summary = body(changes.messages[0])["alert"]["summary"]
    assert "1号楼" in summary and "building:" not in summary and "多个烟感" in summary


def test_every_notification_has_the_contracts_shape() -> None:
    m = manager(reminders_s={"smoke.alarm": 100})
    out: list[Notification] = []
    out += fire(m, Level.YELLOW).messages
    out += m.on_tick(at(100)).messages  # reminder
    out += m.on_transitions([tr(TransitionKind.RAISE, Level.ORANGE, previous=Level.YELLOW, at_s=150)],
                            at(150)).messages
    out += m.on_tick(at(450)).messages  # escalated (and a reminder)
    out += m.acknowledge("ep-1", WORKER, "在处理", at(460))[1].messages
    out += m.resolve("ep-1", WORKER, None, at(470))[1].messages
    out += fire(m, Level.BLUE, at_s=480, episode="ep-2", device="sd-unlisted", rule="device.offline").messages
    assert {n.event for n in out} == set(Event) - {Event.CALL}  # calls: tests/unit/test_answer.py
    assert len({n.event_id for n in out}) == len(out)
    status_of = {Event.ACKNOWLEDGED: "acknowledged", Event.RESOLVED: "resolved"}
    for n in out:
        b = body(n)
        assert set(b) == {"event_id", "event", "alert", "recipient"}
        assert (b["event_id"], b["event"], b["recipient"]) == (n.event_id, n.event.value, n.recipient)
        assert isinstance(b["event_id"], str) and b["event_id"]
        a = b["alert"]
        assert set(a) == ALERT_KEYS
        assert a["id"] == n.subject_id
        assert a["level"] in {lv.value for lv in Level}
        assert a["status"] == status_of.get(n.event, "firing")
        for key in ("rule", "community", "building", "grid", "device_id", "device_type", "summary"):
            assert isinstance(a[key], str) and a[key], key
        assert a["value"] is None or isinstance(a["value"], float | int)
        for key in ("started_at", "updated_at"):
            assert RFC3339.match(a[key]), a[key]
            datetime.fromisoformat(a[key])
        assert a["updated_at"] >= a["started_at"]
    # Times: started when the episode started, updated when the notification was made.
    resolved = next(body(n)["alert"] for n in out if n.event is Event.RESOLVED)
    assert resolved["started_at"] == "2026-05-01T01:46:40.000Z" and resolved["updated_at"] == "2026-05-01T01:54:30.000Z"


def test_a_buildings_red_smoke_multi_inhibits_its_detectors_own_alarms_to_the_same_people() -> None:
    from alerts.store import INSERT_EVENT

    m = manager()
    first = fire(m, Level.ORANGE, episode="alarm-1")
    assert told(first) == {"worker-g1", "committee-yicun", "street-office"}
    # The second detector's alarm and the building's red come in the same moment: the building speaks.
    multi = tr(TransitionKind.FIRE, Level.RED, rule="smoke.multi", episode="multi-b01", device="building:b01",
               building="b01", at_s=10, started_s=10)
    second = tr(TransitionKind.FIRE, Level.ORANGE, episode="alarm-2", device="sd-b01-0502", at_s=10, started_s=10)
    changes = m.on_transitions([second, multi], at(10))
    assert {(n.subject_id, n.recipient) for n in changes.messages} == {
        ("multi-b01", r) for r in ("worker-g1", "committee-yicun", "street-office", "bureau")}
    audit = [row for stmt, rows in changes.writes if stmt == INSERT_EVENT for row in rows]
    assert ("alarm-2", "inhibited") in {(row[0], row[2]) for row in audit}
    # An escalation of a detector's alarm is withheld too while the building's alert fires...
    assert "alarm-1" not in {n.subject_id for n in m.on_tick(at(305)).messages}
    # A resolution goes to whoever was told the alert fired: nobody heard of the second detector's
    # own alarm (the building spoke for it), everybody of the first one's.
    done = m.on_transitions([tr(TransitionKind.CLEAR, None, episode="alarm-2", device="sd-b01-0502", at_s=400)],
                            at(400))
    assert told(done, Event.RESOLVED) == set()
    assert ("alarm-2", "resolved") in {(row[0], row[2]) for stmt, rows in done.writes if stmt == INSERT_EVENT
                                       for row in rows}
    done = m.on_transitions([tr(TransitionKind.CLEAR, None, episode="alarm-1", at_s=401)], at(401))
    assert told(done, Event.RESOLVED) == {"worker-g1", "committee-yicun", "street-office"}


def test_a_silence_mutes_matching_alerts_while_in_force_and_records_why() -> None:
    from alerts.manager import Silence
    from alerts.store import INSERT_EVENT

    m = manager()
    m.add_silence(Silence("drill", YICUN, "b01", None, None, at(0), at(600), "消防演练", "street-office", at(0)))
    drill = fire(m, Level.ORANGE, at_s=5)
    assert drill.messages == []
    audit = [row for stmt, rows in drill.writes if stmt == INSERT_EVENT for row in rows]
    assert [(row[2], row[4]) for row in audit] == [("fired", None), ("silenced", "street-office")]
    assert "消防演练" in audit[1][5]
    # Another building is not muted; a muted alert's acknowledgement and end are recorded and told to
    # nobody, since nobody was told it fired (a drill ends as quietly as it ran).
    other = fire(m, Level.BLUE, at_s=6, episode="b03", device="sd-b03-0101")
    assert told(other) == {"worker-g2"}
    _alert, ack = m.acknowledge("ep-1", "worker-g1", None, at(7))
    assert told(ack, Event.ACKNOWLEDGED) == set()
    assert [row[2] for stmt, rows in ack.writes if stmt == INSERT_EVENT for row in rows] == ["acknowledged"]
    end = m.on_transitions([tr(TransitionKind.CLEAR, None, at_s=8)], at(8))
    assert told(end, Event.RESOLVED) == set() and "ep-1" not in m.open
    assert told(m.on_transitions([tr(TransitionKind.CLEAR, None, episode="b03", device="sd-b03-0101", at_s=9)],
                                 at(9)), Event.RESOLVED) == {"worker-g2"}
    # After the silence, a new alert of the building is told again.
    later = fire(m, Level.YELLOW, at_s=700, episode="after", device="sd-b01-0502")
    assert told(later) == {"worker-g1", "committee-yicun"}


def test_the_same_changes_made_again_make_the_same_message_ids() -> None:
    """A partition's next holder in the cluster reads again the readings after its last checkpoint: the
    transitions it makes again, at another moment of its clock, carry the ids receivers already saw."""
    def run(now_offset_s: float) -> list[tuple[str, str, str]]:
        m = manager()
        out = m.on_transitions([tr(TransitionKind.FIRE, Level.YELLOW)], at(now_offset_s)).messages
        out += m.on_transitions([tr(TransitionKind.RAISE, Level.ORANGE, at_s=5.0, previous=Level.YELLOW)],
                                at(5.0 + now_offset_s)).messages
        out += m.on_transitions([tr(TransitionKind.CLEAR, None, at_s=9.0, previous=Level.ORANGE)],
                                at(9.0 + now_offset_s)).messages
        return sorted((n.event_id, n.recipient, str(n.event)) for n in out)

    first, again = run(0.0), run(0.7)
    assert first == again
    assert len({i for i, _r, _e in first}) == len(first)  # and no two messages share an id
    assert {e for _i, _r, e in first} == {"fired", "level_raised", "resolved"}


def test_a_restored_alert_escalates_and_reminds_with_the_same_ids() -> None:
    """Escalations and reminders take their ids from their deadlines, which the checkpoint holds."""
    m = manager(reminders_s={"smoke.alarm": 60.0})
    fire(m, Level.YELLOW, 0.0)
    (alert,) = m.open.values()
    kept = [(copy.copy(alert), m.next_escalation[alert.id], m.next_reminder[alert.id])]
    restored = manager(reminders_s={"smoke.alarm": 60.0})
    restored.restore(kept)
    ids = [sorted((n.event_id, str(n.event)) for n in x.on_tick(at(4000.0)).messages) for x in (m, restored)]
    assert ids[0] == ids[1]
    assert {e for _i, e in ids[0]} >= {"escalated", "reminder"}


def test_message_ids_differ_between_episodes_and_recipients() -> None:
    m = manager()
    a = fire(m, Level.ORANGE, 0.0, episode="ep-a").messages
    b = fire(m, Level.ORANGE, 0.0, episode="ep-b").messages
    assert not {n.event_id for n in a} & {n.event_id for n in b}
    assert len({n.event_id for n in a}) == len({n.recipient for n in a})
