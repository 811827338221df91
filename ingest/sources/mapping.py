"""A profile, compiled: the JMESPath of each field searched over a message's body, then map, default,
scale and offset (docs/devices.md, "Profiles")."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import jmespath
from jmespath.parser import ParsedResult

from ingest.sources import SourceFormatError
from kernel.settings.profiles import FieldMap, Profile, as_text

_MISSING = object()
# A path of plain identifiers joined by dots (JMESPath's unquoted identifiers).
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def _getter(keys: tuple[str, ...]) -> Callable[[Any], Any]:
    def get(body: Any) -> Any:
        for key in keys:
            if not isinstance(body, dict):
                return None
            body = body.get(key)
        return body
    return get


class _Field:
    __slots__ = ("default", "has_map", "name", "offset", "scale", "search", "table")

    def __init__(self, name: str, spec: FieldMap) -> None:
        self.name = name
        expr: ParsedResult = jmespath.compile(spec.path)
        # A plain dotted path (most are) is read key by key: the same answer as JMESPath's
        # sub-expressions of fields (null once a step is not an object), at a tenth of the cost.
        keys = tuple(spec.path.split(".")) if _DOTTED.fullmatch(spec.path) else None
        self.search: Callable[[Any], Any] = _getter(keys) if keys else expr.search
        self.has_map = spec.map is not None
        self.table = spec.map or {}
        self.default = spec.default
        self.scale = spec.scale
        self.offset = spec.offset

    def value(self, body: Any, port: int | None, variables: Mapping[str, float | str]) -> Any:
        found = self.search(body)
        if isinstance(found, list) and port is not None:
            found = found[port - 1] if 0 < port <= len(found) else None
        if found is None:
            return _MISSING  # a path that finds nothing leaves the field out
        if self.has_map:
            return self.table.get(as_text(found), self.default if self.default is not None else _MISSING)
        if self.scale is None and self.offset is None:
            return found
        if isinstance(found, bool) or not isinstance(found, int | float):
            raise SourceFormatError("wrong_type", f"{self.name}: {found!r} is not a number to scale")
        return found * _number(self.scale, 1.0, variables) + _number(self.offset, 0.0, variables)


def _number(given: float | str | None, none: float, variables: Mapping[str, float | str]) -> float:
    if given is None:
        return none
    if isinstance(given, str):
        value = variables.get(given)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise SourceFormatError("invalid_value",
                                        f"device variable {given} = {value!r} is not a number") from None
        if value is None:
            raise SourceFormatError("invalid_value", f"the device has no variable {given}")
        return float(value)
    return given


class CompiledProfile:
    """A profile ready to map messages: `fields(body, port, vars)` → the reading's fields."""

    __slots__ = ("_fields", "profile")

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self._fields = [_Field(name, spec) for name, spec in profile.fields.items()]

    def fields(self, body: Any, port: int | None = None,
               variables: Mapping[str, float | str] | None = None) -> dict[str, Any]:
        """The reading's fields found in a body; a field whose path finds nothing is left out."""
        out: dict[str, Any] = {}
        for f in self._fields:
            value = f.value(body, port, variables or {})
            if value is not _MISSING:
                out[f.name] = value
        return out
