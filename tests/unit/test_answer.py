"""叫应 on a driven clock: the roster's A person, then B, then the next tier; answers by anyone of the duty;
the calls' deadlines survive a restart; stale rosters are reported; the roster is validated with its line."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from alerts.call_until_answered import MISSED, ROSTER_RULE, Call, CallStage, roster_transitions
from alerts.manager import AlertManager, Changes
from alerts.route import Router
from kernel.alerting import Event, Level, Transition, TransitionKind
from kernel.errors import ConfigError
from kernel.settings import Settings, parse_settings
from kernel.site import Site
from notify.notification import Notification

NS = 1_000_000_000
T0 = 1_777_600_000 * NS
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "site.yaml"
TEXT = EXAMPLE.read_text(encoding="utf-8")
YICUN = "linfen-yicun"


def settings(extra: str = "") -> Settings:
    text = TEXT + extra
    return parse_settings(text, source="site.yaml", env={})


def at(s: float) -> int:
    return T0 + int(s * NS)


def manager(s: Settings) -> AlertManager:
    router = Router(s, {Level.RED: 3600, Level.ORANGE: 3600, Level.YELLOW: 3600, Level.BLUE: 3600})
    return AlertManager(Site(s), router=router, calls=CallStage(s, router))


def fire(m: AlertManager, level: Level, at_s: float = 0.0, device: str = "sd-b01-0501") -> Changes:
    site = m.site
    place = site.place(YICUN, device)
    t = Transition(TransitionKind.FIRE, "smoke.alarm", "ep-1", level, None, YICUN, place.building, place.grid,
                   device, "smoke_detector", 1.0, at(at_s), at(at_s))
    return m.on_transitions([t], at(at_s))


def calls(changes: Changes) -> list[tuple[str, dict[str, Any]]]:
    """(outbox recipient, call object) of the call notifications."""
    out = []
    for n in map(Notification.from_message, changes.messages):
        if n.event is Event.CALL:
            out.append((n.recipient, orjson.loads(n.payload)["call"]))
    return out


def test_a_red_alert_calls_a_then_b_then_the_community_then_the_street() -> None:
    s = settings()
    m = manager(s)
    first = fire(m, Level.RED)
    assert [(r, c["duty"], c["attempt"]) for r, c in calls(first)] == [("worker-g1#0", "网格员", "a")]
    # The red deadline is 300 s by default: nothing before it.
    assert calls(m.on_tick(at(299))) == []
    assert m.next_deadline() == at(300)
    second = m.on_tick(at(300))
    assert [(r, c["attempt"]) for r, c in calls(second)] == [("worker-g2#0", "b")]
    third = m.on_tick(at(600))
    assert [(r, c["duty"]) for r, c in calls(third)] == [("committee-yicun#0", "社区应急负责人")]
    fourth = m.on_tick(at(900))
    assert [(r, c["duty"]) for r, c in calls(fourth)] == [("street-office#0", "街道值班")]
    last = m.on_tick(at(1200))
    assert calls(last) == []
    assert any(row[2] == "unanswered" for stmt, rows in last.writes for row in rows if "alert_events" in stmt)


def test_below_the_level_nobody_is_called_and_the_level_is_configurable() -> None:
    assert calls(fire(manager(settings()), Level.YELLOW)) == []
    s = settings("\n").model_copy(update={"alerts": settings().alerts.model_copy(update={
        "answer": settings().alerts.answer.model_copy(update={"min_level": "yellow"})})})
    assert [r for r, _ in calls(fire(manager(s), Level.YELLOW))] == ["worker-g1#0"]


def test_the_b_person_answering_stops_the_calls_even_after_another_acknowledged() -> None:
    m = manager(settings())
    alert_id = "ep-1"
    fire(m, Level.ORANGE)
    m.on_tick(at(600))  # orange: 600 s; B (worker-g2) is called
    m.acknowledge(alert_id, "bureau", None, at(610))  # somebody else takes the alert on
    _alert, changes = m.acknowledge(alert_id, "worker-g2", "我马上到", at(620), via="sms")
    assert changes.writes  # not a 409: the acknowledgement answers worker-g2's call
    b = next(c for c in m.calls.calls[alert_id] if c.person == "worker-g2")
    assert (b.status, b.answered_via, b.note) == ("answered", "sms", "我马上到")
    assert m.calls.next_deadline() is None
    assert calls(m.on_tick(at(5000))) == []
    with pytest.raises(Exception, match="already acknowledged"):
        m.acknowledge(alert_id, "street-office", None, at(630))  # not called: the usual 409


def test_resolving_ends_the_waiting_calls() -> None:
    m = manager(settings())
    fire(m, Level.RED)
    m.resolve("ep-1", "worker-g1", None, at(10))
    assert m.next_deadline() is None
    assert calls(m.on_tick(at(10_000))) == []


def test_a_restored_tracker_keeps_the_deadline() -> None:
    s = settings()
    m = manager(s)
    fire(m, Level.RED)
    kept = [Call(*c.row()) for c in m.calls.calls["ep-1"]]
    again = manager(s)
    again.restore([(m.open["ep-1"], None, None)])
    again.calls.restore(kept)
    assert again.next_deadline() == at(300)
    assert [r for r, _ in calls(again.on_tick(at(300)))] == ["worker-g2#0"]
    assert again.calls.calls["ep-1"][0].status == MISSED


def test_a_stale_roster_is_reported_to_its_community_and_cleared_once_verified() -> None:
    s = settings()
    fresh = roster_transitions(s, date(2027, 1, 1), [], set(), at(0))
    assert fresh == []
    stale = roster_transitions(s, date(2027, 9, 30), [], set(), at(0))
    assert {(t.rule, t.community, t.level) for t in stale} == {(ROSTER_RULE, "linfen-yicun", Level.BLUE),
                                                               (ROSTER_RULE, "linfen-ercun", Level.BLUE)}
    m = manager(s)
    changes = m.on_transitions(stale, at(0))
    told = {n.recipient for n in changes.messages}
    assert told == {"committee-yicun", "committee-ercun"}  # the communities, nobody is called for a blue alert
    assert roster_transitions(s, date(2027, 9, 30), list(m.open.values()), set(), at(1)) == []
    cleared = roster_transitions(s, date(2027, 1, 1), list(m.open.values()), set(), at(2))
    assert {t.kind for t in cleared} == {TransitionKind.CLEAR}


@pytest.mark.parametrize(("old", "new", "message"), [
    ("a: worker-g1, b: worker-g2", "a: worker-g1, b: nobody", "names recipient 'nobody', which is not listed"),
    ("a: worker-g1, b: worker-g2", "a: worker-g1, b: worker-g1", "the same A and B person"),
    ("街道值班, a: street-office}\n  roster_verified: 2026-09-01", "街道值班, a: street-office}\n  roster_verified: x",
     "date"),
])
def test_a_wrong_roster_is_named_with_its_line(old: str, new: str, message: str) -> None:
    assert old in TEXT
    text = TEXT.replace(old, new, 1)
    line = text[: text.index(new) + len(new)].count("\n") + 1
    with pytest.raises(ConfigError, match=message) as err:
        parse_settings(text, source="site.yaml", env={})
    assert str(err.value).startswith(f"site.yaml:{line}:"), str(err.value)


def test_the_roster_is_optional() -> None:
    plain = parse_settings("communities: [{id: c1, name: C}]\n", source="s.yaml", env={})
    assert plain.communities[0].duties == [] and plain.communities[0].roster_verified is None
