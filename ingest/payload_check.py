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
from typing import Any, Literal, cast

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


# A check as the decoder calls it: the payload object in, (fields, ts, seq, ignored) or None out.
PayloadCheck = Callable[[dict[str, Any]], Checked | None]
_MISSING = object()


def _field_source(k: int, name: str, check: FieldCheck, required: bool) -> list[str]:
    """The generated lines that check one field (see _generate); its bounds and literals are the names
    _ge{k}, _le{k} and _allowed{k}."""
    kind, ge, le, _allowed = check
    lines = [f"v = obj.get({name!r}, _MISSING)"]
    if required:
        lines += ["if v is _MISSING:", "    return None"]
    body = ["known += 1", "t = type(v)"]
    if kind == "float":
        body += ["if t is not float:", "    if t is int and -_EXACT_INT <= v <= _EXACT_INT:", "        v = float(v)",
                 "    else:", "        return None"]
        if ge is not None:
            body += [f"if not v >= _ge{k}:", "    return None"]
        if le is not None:
            body += [f"if not v <= _le{k}:", "    return None"]
        body += [f"fields[{name!r}] = v"]
    elif kind == "bool":
        body += ["if t is not bool:", "    return None", f"fields[{name!r}] = v"]
    elif kind == "int":  # seq
        body += ["if t is not int:", "    return None"]
        if ge is not None:
            body += [f"if v < _ge{k}:", "    return None"]
        if le is not None:
            body += [f"if v > _le{k}:", "    return None"]
        body += ["seq = v"]
    elif kind == "ts":
        body += ["if t is not int and t is not str:", "    return None", "ts = v"]
    else:  # literal
        body += [f"if t is not str or v not in _allowed{k}:", "    return None", f"fields[{name!r}] = v"]
    if required:
        return lines + body
    return lines + ["if v is not _MISSING:"] + ["    " + line for line in body]


def _generate(checks: dict[str, FieldCheck], required: frozenset[str]) -> PayloadCheck:
    """One function checking every field of the model in turn, written out for this model: a loop over
    the payload that looked each field's check up and branched on its kind cost about twice as much
    (~15,000 instructions a reading of 6 fields, ~1.5 µs)."""
    namespace: dict[str, Any] = {"_MISSING": _MISSING, "_EXACT_INT": _EXACT_INT}
    lines = ["def check(obj):", "    fields = {}", "    ts = seq = None", "    known = 0"]
    for k, (name, check) in enumerate(checks.items()):
        namespace[f"_ge{k}"], namespace[f"_le{k}"], namespace[f"_allowed{k}"] = check[1], check[2], check[3]
        lines += ["    " + line for line in _field_source(k, name, check, name in required)]
    lines += ["    return fields, ts, seq, len(obj) - known"]
    exec(compile("\n".join(lines), f"<payload check of {len(checks)} fields>", "exec"), namespace)
    return cast(PayloadCheck, namespace["check"])


def _with_validators(run: PayloadCheck, checks: dict[str, FieldCheck],
                     after: list[Callable[[Any], Any]]) -> PayloadCheck:
    """The generated check, then the model's after-validators on what it accepted."""
    def check(obj: dict[str, Any]) -> Checked | None:
        found = run(obj)
        if found is None:
            return None
        fields, ts, seq, _extra = found
        seen = _Fields(set(obj).intersection(checks), {**fields, "ts": ts, "seq": seq})
        try:
            for validator in after:
                validator(seen)
        except Exception:  # the model's own error (or a validator this stand-in cannot run)
            return None
        return found
    return check


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
    run = _generate(checks, frozenset(required))
    return _with_validators(run, checks, after) if after else run


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

