"""InfluxDB line protocol: escaping and encoding, as the v1 `/write` endpoint parses it."""

from __future__ import annotations

import math
from functools import lru_cache

from kernel.reading import FieldValue, Point

_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ "})
_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STRING = str.maketrans({'"': r"\"", "\\": "\\\\"})


class LineProtocolError(ValueError):
    """A value line protocol cannot carry."""


def _control(value: str) -> bool:
    return any(ord(ch) < 0x20 or ch == "\x7f" for ch in value)


@lru_cache(maxsize=65536)
def escape_key(value: str) -> str:
    """Escape a tag key, tag value or field key."""
    if not value:
        raise LineProtocolError("tag keys, tag values and field keys cannot be empty")
    if _control(value):
        # InfluxDB ends a point at a line break and drops a leading tab or NUL.
        raise LineProtocolError("tags and field keys cannot contain control characters")
    if "\\" in value:
        # InfluxDB 1.x has no escape for a backslash before a space, comma or equals sign.
        raise LineProtocolError("tags and field keys cannot contain a backslash")
    return value.translate(_KEY)


def escape_measurement(value: str) -> str:
    """Escape a measurement name."""
    # A line starting with '#' is a comment to InfluxDB.
    if not value or _control(value) or value.endswith("\\") or value.startswith("#"):
        raise LineProtocolError(f"bad measurement name {value!r}")
    return value.translate(_MEASUREMENT)


def _key(value: str) -> str:
    """A tag or field key: InfluxDB reserves `time`."""
    if value == "time":
        raise LineProtocolError("'time' cannot be a tag or field key")
    return escape_key(value)


def encode_field(value: FieldValue) -> str:
    """A field value: floats always (no type conflicts), booleans, quoted strings."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        if "\n" in value or "\r" in value:
            # InfluxDB 1.x accepts a quoted line break, but other line-protocol readers end the point there.
            raise LineProtocolError("string fields cannot contain line breaks")
        return '"' + value.translate(_STRING) + '"'
    number = float(value)
    if not math.isfinite(number):
        raise LineProtocolError("fields must be finite numbers")
    return repr(number)


@lru_cache(maxsize=65536)
def _series(measurement: str, tags: tuple[tuple[str, str], ...]) -> str:
    """Measurement and sorted tags: the same for every point of a series, so computed once."""
    return escape_measurement(measurement) + "".join(f",{_key(k)}={escape_key(v)}" for k, v in sorted(tags))


@lru_cache(maxsize=4096)
def _field_key(name: str) -> str:
    return _key(name) + "="


def encode_point(point: Point) -> str:
    """One line (without the newline)."""
    parts = []
    for name, value in point.fields.items():
        if type(value) is float and math.isfinite(value):
            parts.append(_field_key(name) + repr(value))
        else:
            parts.append(_field_key(name) + encode_field(value))
    if not parts:
        raise LineProtocolError("a point needs at least one field")
    return f"{_series(point.measurement, tuple(point.tags.items()))} {','.join(parts)} {point.ts_ns}"


def encode_batch(points: list[Point]) -> bytes:
    """A request body for `/write?precision=ns`."""
    return "\n".join(map(encode_point, points)).encode()
