"""The rule kinds' catalog (rules.kinds): every kind is complete, and the rules file and the engine
know the kinds only through it."""

from __future__ import annotations

from typing import get_args

from kernel.settings import Settings
from kernel.site import Site
from rules.engine import Engine
from rules.kinds import KINDS, kind_of
from rules.machine import Hooks, Machine
from rules.model import RuleBase
from rules.spec import _UNION_STEPS, default_rules_text, parse_rules

SITE = Site(Settings.model_validate({
    "communities": [{"id": "yicun", "name": "一村", "grids": [{"id": "g1", "name": "g"}],
                     "buildings": [{"id": "b03", "name": "3", "grid": "g1"}]}]}))
HOOKS = ("on_reading", "on_late", "on_status", "on_source", "reevaluate", "on_deadline", "next_deadline",
         "dump", "load")


def test_every_kind_names_itself_and_has_a_model_and_a_machine() -> None:
    assert {"state", "rate", "offline", "correlation"} <= set(KINDS)
    assert next(iter(KINDS)) == "state"  # the default comes first
    for name, kind in KINDS.items():
        assert kind.name == name
        assert issubclass(kind.spec, RuleBase)
        assert get_args(kind.spec.model_fields["kind"].annotation) == (name,)
        assert callable(kind.machine)
        assert name in _UNION_STEPS  # the rules file's union is built from the catalog


def test_every_kind_is_in_the_built_in_rules_and_builds_a_whole_machine() -> None:
    # (so every kind is played by the timeline tests of the built-in rules, rules/tests/)
    ruleset = parse_rules(default_rules_text(), source="defaults.yaml")
    engine = Engine(ruleset, SITE)
    seen = set()
    for rule in ruleset.rules:
        kind = kind_of(rule)
        assert isinstance(rule, kind.spec)
        seen.add(kind.name)
        device_type = "smoke_detector" if rule.applies_to("smoke_detector") else str(rule.device_types[0])
        machine: Machine = kind.machine(rule, device_type, engine)
        assert isinstance(machine, Hooks)
        assert all(callable(getattr(machine, hook)) for hook in HOOKS)
        assert machine.rule == rule.id and machine.episode.level is None
        again = kind.machine(rule, device_type, engine)
        again.load(machine.dump())
        assert again.dump() == machine.dump()
    assert seen == set(KINDS)


def test_references_and_fields_say_where_they_are_named() -> None:
    ruleset = parse_rules(default_rules_text(), source="defaults.yaml")
    ids = {r.id for r in ruleset.rules}
    refs = {r.id: [ref for _w, ref in r.references()] for r in ruleset.rules}
    assert refs["smoke.multi"] == ["smoke.alarm"]
    assert refs["water.rising"] == ["water.level"]
    assert all(ref in ids for found in refs.values() for ref in found)
    overcurrent = ruleset.rule("ebike.overcurrent").fields()
    assert overcurrent and all(where[-1] == "field" or where[0] == "hysteresis" for where, _f in overcurrent)
    assert "current_a" in {f for _w, f in overcurrent}
    assert ruleset.rule("device.offline").fields() == [] and ruleset.rule("device.offline").references() == []
