"""The routing tree of the site file: matchers, continue, inherited options, extra recipients."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.manager import AlertManager
from alerts.route import Router
from kernel.alerting import Alert, AlertStatus, Event, Level, Transition, TransitionKind
from kernel.errors import ConfigError
from kernel.settings import parse_settings
from kernel.site import Site

SITE = (Path(__file__).resolve().parents[2] / "examples" / "site.yaml").read_text(encoding="utf-8")
TREE = """
alerts:
  routes:
    - name: maintenance
      match: {rule: [device.battery, device.fault]}
      max_tier: grid_worker          # a flat battery is the grid worker's job, never the bureau's
      ack_timeout_s: {blue: 86400}
    - name: ercun
      match: {community: [linfen-ercun]}
      ack_timeout_s: {red: 60}
      routes:
        - name: garage floods
          match: {rule: [water.level, water.rising]}
          recipients: [worker-g1]     # the neighbouring grid's worker keeps the pumps
      continue: true
    - name: red everywhere
      match: {level: [red]}
      recipients: [committee-ercun]
"""
NS = 1_000_000_000


def alert(rule: str, level: Level, community: str = "linfen-yicun", building: str = "b01") -> Alert:
    site = Site(parse_settings(SITE, env={}))
    return Alert("a", rule, level, AlertStatus.FIRING, community, building, site.grid_of(community, building),
                 "d", "water_level", None, 0, 0, "")


@pytest.fixture
def router() -> Router:
    return Router(parse_settings(SITE + TREE, env={}))


def test_without_routes_everything_takes_section_4s_default_route() -> None:
    r = Router(parse_settings(SITE, env={}))
    route = r.route(alert("smoke.alarm", Level.RED))
    assert (route.path, route.max_tier, route.ack_timeout_s[Level.RED]) == (("default",), 3, 120)


def test_the_first_matching_route_is_taken_and_caps_the_tier(router: Router) -> None:
    a = alert("device.battery", Level.BLUE)
    route = router.route(a)
    assert route.path == ("default", "maintenance") and route.ack_timeout_s[Level.BLUE] == 86400
    assert [r.id for r in router.tier_recipients(a, 3)] == ["worker-g1"], "never beyond the grid worker"


def test_a_child_inherits_its_parents_options_and_continue_lets_later_routes_add_recipients(router: Router) -> None:
    a = alert("water.level", Level.RED, community="linfen-ercun", building="b12")
    route = router.route(a)
    assert route.ack_timeout_s[Level.RED] == 60, "inherited from 'ercun'"
    assert set(route.extra) == {"worker-g1", "committee-ercun"}
    assert [r.id for r in router.tier_recipients(a, 3)] == [
        "worker-g3", "committee-ercun", "street-office", "bureau", "worker-g1"]


def test_an_escalation_follows_the_routes_deadline_and_cap() -> None:
    m = AlertManager(Site(parse_settings(SITE + TREE, env={})))
    t0 = 1_777_600_000 * NS
    tr = Transition(TransitionKind.FIRE, "device.battery", "ep", Level.BLUE, None, "linfen-yicun", "b01", "g1",
                    "sd-b01-0501", "smoke_detector", 15.0, t0, t0)
    m.on_transitions([tr], t0)
    assert m.on_tick(t0 + 3600 * NS).messages == [], "the route's 24 h deadline, not blue's 60 min"
    late = m.on_tick(t0 + 86_400 * NS)
    assert {(n.event, n.recipient) for n in late.messages} == {(Event.ESCALATED, "worker-g1")}


def test_a_route_naming_an_unknown_recipient_is_a_located_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(SITE + "alerts:\n  routes:\n    - {match: {level: [red]}, recipients: [nobody]}\n",
                       env={}, source="site.yaml")
    assert "alerts.routes.0.recipients.0: route names recipient 'nobody'" in str(info.value)


def test_a_supplys_alert_goes_to_the_keepers_grid_and_the_community_and_no_higher() -> None:
    r = Router(parse_settings(SITE, env={}))
    a = alert("supplies.expiring", Level.BLUE)
    assert r.route(a).path == ("default", "supplies")
    assert [x.id for x in r.tier_recipients(a, 0)] == ["worker-g1", "committee-yicun"]
    assert [x.id for x in r.tier_recipients(a, 3)] == ["worker-g1", "committee-yicun"], "escalates no higher"
    # A site's own route for them is taken instead (here: up to the street office).
    own = Router(parse_settings(SITE + "alerts:\n  routes:\n    - {match: {rule: [supplies.expiring]}}\n", env={}))
    assert [x.id for x in own.tier_recipients(a, 2)] == ["worker-g1", "committee-yicun", "street-office"]
