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


def series_key(measurement: str, tags: dict[str, str]) -> str:
    """The line's start: measurement and sorted tags, escaped (LineProtocolError if they cannot be)."""
    return _series(measurement, tuple(tags.items()))


_FIELD_KEYS: dict[str, str] = {}
# The text of float values met lately. A device's readings repeat a few values (a sensor reports in
# steps of its resolution: 30.5, 30.6 °C), and repr() of a float (the shortest text that reads back
# the same) costs 1,800-4,000 instructions (2.0 to 1.2345), three times in an e-bike port's reading;
# a look-up here costs a few hundred. Zero is never kept (0.0 and -0.0 are one key, with two texts),
# nor what is not finite (encode_field refuses it). Emptied when full.
_FLOAT_TEXT: dict[float, str] = {}
FLOAT_TEXT_MAX = 16_384


def encode_line(series: str, fields: dict[str, FieldValue], ts_ns: int) -> bytes:
    """One line (without the newline) of a series (series_key) with these fields at ts_ns."""
    parts = []
    keys = _FIELD_KEYS
    texts = _FLOAT_TEXT
    for name, value in fields.items():
        key = keys.get(name)
        if key is None:
            key = _field_key(name)
            if len(keys) < 4096:
                keys[name] = key
        if type(value) is float:
            text = texts.get(value)
            if text is None:
                if not (value and math.isfinite(value)):
                    parts.append(key + encode_field(value))
                    continue
                if len(texts) >= FLOAT_TEXT_MAX:
                    texts.clear()
                text = texts[value] = repr(value)
            parts.append(key + text)
        else:
            parts.append(key + encode_field(value))
    if not parts:
        raise LineProtocolError("a point needs at least one field")
    return f"{series} {','.join(parts)} {ts_ns}".encode()


def _point_line(point: Point) -> bytes:
    return encode_line(series_key(point.measurement, point.tags), point.fields, point.ts_ns)


def encode_point(point: Point) -> str:
    """One line (without the newline)."""
    return _point_line(point).decode()


def encode_batch(points: list[Point]) -> bytes:
    """A request body for `/write?precision=ns`."""
    return b"\n".join(map(_point_line, points))


def encode_lines(points: list[Point]) -> tuple[list[bytes], list[tuple[Point, str]]]:
    """Each point's line, and the points line protocol cannot carry, with the reason."""
    lines: list[bytes] = []
    refused: list[tuple[Point, str]] = []
    for point in points:
        try:
            lines.append(_point_line(point))
        except LineProtocolError as exc:
            refused.append((point, str(exc)))
    return lines, refused


def _unescape_until(text: str, i: int, stops: str, escaped: str = ", =") -> tuple[str, int]:
    """Text from i up to the first unescaped character of stops (or the end), with the escaped
    characters unescaped; and the index it stopped at."""
    out: list[str] = []
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n and text[i + 1] in escaped:
            out.append(text[i + 1])
            i += 2
            continue
        if ch in stops:
            break
        out.append(ch)
        i += 1
    return "".join(out), i


def decode_line(line: str) -> Point:
    """The point of one line as encode_point writes it (numbers come back as floats); ValueError if not."""
    try:
        return _decode_line(line)
    except IndexError:  # a quoted string that does not end
        raise ValueError(f"not a line of line protocol: {line[:80]!r}") from None


def _decode_line(line: str) -> Point:
    measurement, i = _unescape_until(line, 0, ", ", ", ")  # a measurement escapes no '='
    tags: dict[str, str] = {}
    while i < len(line) and line[i] == ",":
        key, i = _unescape_until(line, i + 1, "=")
        value, i = _unescape_until(line, i + 1, ", ")
        tags[key] = value
    if i >= len(line) or line[i] != " " or not measurement:
        raise ValueError(f"not a line of line protocol: {line[:80]!r}")
    fields: dict[str, FieldValue] = {}
    i += 1
    while True:
        key, i = _unescape_until(line, i, "=")
        i += 1
        if line[i:i + 1] == '"':
            j, chars = i + 1, []
            while line[j] != '"':
                if line[j] == "\\" and line[j + 1] in '"\\':
                    j += 1
                chars.append(line[j])
                j += 1
            fields[key], i = "".join(chars), j + 1
        else:
            end = i
            while end < len(line) and line[end] not in ", ":
                end += 1
            raw = line[i:end]
            fields[key] = True if raw == "true" else False if raw == "false" else float(raw)
            i = end
        if line[i:i + 1] != ",":
            break
        i += 1
    if line[i:i + 1] != " ":
        raise ValueError(f"not a line of line protocol: {line[:80]!r}")
    return Point(measurement, tags, fields, int(line[i + 1:]))


def decode_lines(body: bytes) -> list[Point]:
    """The points of a body of lines (the inverse of encode_lines)."""
    return [decode_line(line) for line in body.decode().split("\n") if line]
