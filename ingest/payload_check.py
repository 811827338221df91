"""A quick check of a decoded payload that stands in for the pydantic model when it can.

The catalog's pydantic models (kernel.reading, kernel.devices) are the contract. Validating a
JSON object with one and turning the model back into the stored fields took about 3.5 µs of a
reading's ~6 µs decode; this check, compiled from the same model at start-up, does it in about
1 µs for the usual reading. It only ever says "accepted, with these fields" or "ask pydantic":
anything it is not sure of (a wrong type, a value out of range, a bool where a number belongs, an
int too large to be a float exactly, a model validator it cannot run) goes to the model, which
then accepts or rejects with its own reason and message. So a payload is accepted here only if
the model accepts it with the same values (tests/unit/test_payload_check.py checks this as a
property), and every rejection is still the model's.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any, Literal

import annotated_types

from kernel.reading import FieldValue, ReadingPayload

# A float field takes an int only while the int is exact as a float (pydantic's strict float
# refuses some larger ones); beyond it the model decides.
_EXACT_INT = 2**53

# How one field is checked: (kind, ge, le, allowed literals); kind is "float", "bool", "int",
# "ts" (str or int) or "literal".
FieldCheck = tuple[str, Any, Any, frozenset[str] | None]
Checked = tuple[dict[str, FieldValue], str | int | None, int | None, int]


class _Fields:
    """What a model's after-validator sees of the payload: its fields set, and the values."""

    def __init__(self, fields_set: set[str], values: dict[str, Any]) -> None:
        self.model_fields_set = fields_set
        self.__dict__.update(values)


class PayloadCheck:
    """The quick check of one payload model; see the module docstring."""

    __slots__ = ("after", "checks", "required")

    def __init__(self, checks: dict[str, FieldCheck], required: frozenset[str],
                 after: list[Callable[[Any], Any]]) -> None:
        self.checks = checks
        self.required = required
        self.after = after

    def __call__(self, obj: dict[str, Any]) -> Checked | None:
        """(fields as stored, ts, seq, ignored fields) if the model would accept obj so; else None."""
        checks = self.checks
        fields: dict[str, FieldValue] = {}
        ts: str | int | None = None
        seq: int | None = None
        extra = 0
        for name, value in obj.items():
            check = checks.get(name)
            if check is None:
                extra += 1
                continue
            kind, ge, le, allowed = check
            t = type(value)
            if kind == "float":
                if t is float:
                    pass
                elif t is int and -_EXACT_INT <= value <= _EXACT_INT:
                    value = float(value)
                else:
                    return None
                if (ge is not None and not value >= ge) or (le is not None and not value <= le):
                    return None
                fields[name] = value
            elif kind == "bool":
                if t is not bool:
                    return None
                fields[name] = value
            elif kind == "int":  # seq
                if t is not int or (ge is not None and value < ge) or (le is not None and value > le):
                    return None
                seq = value
            elif kind == "ts":
                if t is not int and t is not str:
                    return None
                ts = value
            else:  # literal
                if t is not str or allowed is None or value not in allowed:
                    return None
                fields[name] = value
        if self.required and not self.required.issubset(obj):
            return None
        if self.after:
            present = set(obj).intersection(checks)
            seen = _Fields(present, {**fields, "ts": ts, "seq": seq})
            try:
                for validator in self.after:
                    validator(seen)
            except Exception:  # the model's own error (or a validator this stand-in cannot run)
                return None
        return fields, ts, seq, extra


def compile_check(model: type[ReadingPayload]) -> PayloadCheck | None:
    """The quick check of a payload model, or None when the model has something it cannot mirror."""
    config = model.model_config
    if not (config.get("strict") and config.get("allow_inf_nan") is False and config.get("extra") == "allow"):
        return None
    decorators = model.__pydantic_decorators__
    if decorators.field_validators or decorators.validators or decorators.root_validators \
            or decorators.field_serializers or decorators.computed_fields:
        return None
    after: list[Callable[[Any], Any]] = []
    for dec in decorators.model_validators.values():
        if dec.info.mode != "after":
            return None
        after.append(dec.func)
    checks: dict[str, FieldCheck] = {}
    required: set[str] = set()
    for name, info in model.model_fields.items():
        if info.alias is not None or info.validation_alias is not None:
            return None
        found = _field_check(name, info.annotation, info.metadata)
        if found is None:
            return None
        if info.is_required():
            required.add(name)
        elif info.default is not None:
            return None  # a default would be a value the payload did not carry
        checks[name] = found
    return PayloadCheck(checks, frozenset(required), after)


def _field_check(name: str, annotation: Any, metadata: list[Any]) -> FieldCheck | None:
    ge = le = None
    for m in metadata:
        if isinstance(m, annotated_types.Ge):
            ge = m.ge  # as declared: an int bound stays exact (seq's 2**63 - 1)
        elif isinstance(m, annotated_types.Le):
            le = m.le
        else:
            return None
    args = _without_none(annotation)
    if name == "ts" and set(args) == {str, int} and ge is None and le is None:
        return ("ts", None, None, None)
    if len(args) != 1:
        return None
    (only,) = args
    if only is float:
        return ("float", ge, le, None)
    if only is bool and ge is None and le is None:
        return ("bool", None, None, None)
    if only is int and name == "seq":
        return ("int", ge, le, None)
    if typing.get_origin(only) is Literal and ge is None and le is None:
        values = typing.get_args(only)
        if all(type(v) is str for v in values):
            return ("literal", None, None, frozenset(values))
    return None


def _without_none(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(a for a in typing.get_args(annotation) if a is not type(None))
    return (annotation,)

