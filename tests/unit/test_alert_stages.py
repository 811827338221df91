"""The notification pipeline stage by stage: who each stage tells or withholds, and why."""

from __future__ import annotations

from alerts.manager import AlertManager, Silence
from alerts.route import Router
from alerts.stages import FollowUpStage, Pass, RouteStage, SilenceStage, Told
from kernel.alerting import Event, Level, TransitionKind
from notify.storm import GroupStage
from tests.unit.test_alert_manager import SETTINGS, SITE, YICUN, at, fire, tr

NS = 1_000_000_000


def test_the_route_stage_says_which_tier_each_recipient_is_told_at() -> None:
    m = AlertManager(SITE)
    fire(m, Level.YELLOW)
    (alert,) = m.open.values()
    p = RouteStage(Router(SETTINGS)).exec(Pass(alert, Event.FIRED, at(0), {}))
    assert [t.recipient for t in p.told] == ["worker-g1", "committee-yicun"]
    assert all("tier 2 (community) reached" in t.why for t in p.told), p.told
    assert p.withheld == []


def test_a_silence_withholds_everyone_and_says_which_silence() -> None:
    m = AlertManager(SITE)
    fire(m, Level.ORANGE)
    (alert,) = m.open.values()
    silence = Silence("s1", YICUN, None, None, None, at(0), at(600), "消防演练", "street-office", at(0))
    p = Pass(alert, Event.REMINDER, at(10), {}, told=[Told("worker-g1", "route")])
    p = SilenceStage({"s1": silence}).exec(p)
    assert p.told == [] and [(w.recipient, w.stage) for w in p.withheld] == [("worker-g1", "silence")]
    assert "消防演练" in p.withheld[0].why and p.audit == [("silenced", "street-office", p.withheld[0].why)]
    # An acknowledgement is never silenced.
    ack = SilenceStage({"s1": silence}).exec(Pass(alert, Event.ACKNOWLEDGED, at(10), {},
                                                  told=[Told("worker-g1", "route")]))
    assert [t.recipient for t in ack.told] == ["worker-g1"]


def test_follow_ups_go_to_those_told_and_say_why_the_others_are_not() -> None:
    m = AlertManager(SITE)
    fire(m, Level.BLUE)
    (alert,) = m.open.values()
    told: dict[str, set[str]] = {alert.id: {"worker-g1"}}
    p = Pass(alert, Event.RESOLVED, at(10), {}, told=[Told("worker-g1", "r"), Told("committee-yicun", "r")])
    p = FollowUpStage(told).exec(p)
    assert [t.recipient for t in p.told] == ["worker-g1"]
    assert [(w.recipient, w.why) for w in p.withheld] == [("committee-yicun", "was not told of the alert")]


def test_changes_carry_who_the_stages_told_and_withheld() -> None:
    m = AlertManager(SITE)
    fire(m, Level.ORANGE, episode="alarm-1")
    multi = tr(TransitionKind.FIRE, Level.RED, rule="smoke.multi", episode="multi-b01", device="building:b01",
               building="b01", at_s=10, started_s=10)
    second = tr(TransitionKind.FIRE, Level.ORANGE, episode="alarm-2", device="sd-b01-0502", at_s=10, started_s=10)
    changes = m.on_transitions([second, multi], at(10))
    by_alert = {d.alert_id: d for d in changes.decisions}
    assert {t.recipient for t in by_alert["multi-b01"].told} == {"worker-g1", "committee-yicun", "street-office",
                                                                   "bureau"}
    inhibited = by_alert["alarm-2"]
    assert inhibited.told == ()
    assert {(w.recipient, w.stage) for w in inhibited.withheld} == {
        (r, "inhibit") for r in ("worker-g1", "committee-yicun", "street-office")}
    assert all("multi-b01 (smoke.multi)" in w.why for w in inhibited.withheld)


def test_the_group_stage_groups_past_the_threshold_within_the_window() -> None:
    from tests.unit.test_alert_storm import notification

    g = GroupStage(3, 60 * NS)
    keys = [key for _n, key in g.exec([notification(i) for i in range(5)], at(0))]
    assert keys[:3] == [None, None, None] and keys[3] == keys[4] == ("worker-g1", "device.offline", "yicun")
    # A minute later the storm is over: the next one goes alone.
    assert g.exec([notification(9)], at(61)) == [(notification(9), None)]
    # Acknowledgements are never grouped.
    assert g.exec([notification(10, event=Event.ACKNOWLEDGED) for _ in range(5)], at(62))[-1][1] is None
