"""Conditions compiled to plain functions of a device's latest values: True, False, or None (unknown)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from kernel.reading import FieldValue
from rules.model import AllOf, AnyOf, Compare, Condition, Not

Values = Mapping[str, FieldValue]
Check = Callable[[Values], bool | None]


def compile_condition(cond: Condition, relax: Mapping[str, float] | None = None) -> Check:
    """A function of latest values; `relax` widens numeric thresholds by the field's hysteresis."""
    if isinstance(cond, Compare):
        return _compare(cond, (relax or {}).get(cond.field, 0.0))
    if isinstance(cond, AnyOf):
        parts = [compile_condition(c, relax) for c in cond.any]

        def any_of(values: Values) -> bool | None:
            unknown = False
            for part in parts:
                got = part(values)
                if got:
                    return True
                unknown |= got is None
            return None if unknown else False
        return any_of
    if isinstance(cond, AllOf):
        parts = [compile_condition(c, relax) for c in cond.all]

        def all_of(values: Values) -> bool | None:
            unknown = False
            for part in parts:
                got = part(values)
                if got is False:
                    return False
                unknown |= got is None
            return None if unknown else True
        return all_of
    assert isinstance(cond, Not)
    # Relaxing the inside of a negation would tighten the whole: hysteresis stops at `not`.
    inner = compile_condition(cond.not_)

    def negation(values: Values) -> bool | None:
        got = inner(values)
        return None if got is None else not got
    return negation


def _compare(c: Compare, h: float) -> Check:
    check = _compare_known(c, h)
    if c.if_missing is None:
        return check
    name, missing = c.field, c.if_missing
    return lambda v: missing if name not in v else check(v)


def _compare_known(c: Compare, h: float) -> Check:
    name = c.field
    if c.is_ is not None:
        want = c.is_
        return lambda v: (None if type(x := v.get(name)) is not bool else x is want)
    if c.equals is not None:
        text = c.equals
        return lambda v: (None if (x := v.get(name)) is None else x == text)
    if c.at_least is not None:
        t = c.at_least - h
        return lambda v: (None if type(x := v.get(name)) is not float else x >= t)
    if c.above is not None:
        t = c.above - h
        return lambda v: (None if type(x := v.get(name)) is not float else x > t)
    if c.at_most is not None:
        t = c.at_most + h
        return lambda v: (None if type(x := v.get(name)) is not float else x <= t)
    assert c.below is not None
    t = c.below + h
    return lambda v: (None if type(x := v.get(name)) is not float else x < t)


def fields_of(cond: Condition) -> set[str]:
    """Every field a condition reads."""
    return {name for _where, name in cond.fields()}
