"""Every YAML rule test under rules/tests/ passes (the same run as `cbrain rules test rules/tests/*.yaml`)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from rules.timelines import Result, load_tests, run_file

RULE_TESTS = Path(__file__).resolve().parents[2] / "rules" / "tests"
FILES = sorted(RULE_TESTS.glob("*.yaml"))
CASES = [(path, i, case.name) for path in FILES for i, case in enumerate(load_tests(path).tests)]


@cache
def results(path: Path) -> list[Result]:
    return run_file(path)


def test_the_families_are_there() -> None:
    assert {p.stem for p in FILES} >= {"smoke", "ebike", "water", "fire_lane", "device"}


@pytest.mark.parametrize(("path", "index", "name"), CASES, ids=[f"{p.stem}:{n}" for p, _, n in CASES])
def test_rule_case(path: Path, index: int, name: str) -> None:
    result = results(path)[index]
    assert result.name == name
    expected = "\n".join(f"    {line}" for line in result.expected) or "    (no transitions)"
    got = "\n".join(f"    {line}" for line in result.got) or "    (no transitions)"
    assert result.passed, f"{path.name}: {name}\n  expected:\n{expected}\n  got:\n{got}"
