"""Durations as people write them in YAML files: `90`, `90s`, `5m`, `8h`, `1.5d`."""

from __future__ import annotations

import re
from typing import Any

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from `90`, `90s`, `5m`, `8h`, `1.5d`, `1m30s`."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like 5m, 8h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        m = _DURATION.match(text)
        if m is not None:
            seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
        elif text and "".join(p.group(0) for p in _PART.finditer(text)) == text:
            seconds = sum(float(p.group(1)) * _UNIT_S[p.group(2)] for p in _PART.finditer(text))
        else:
            raise ValueError(f"{value!r} is not a duration (use e.g. 30s, 5m, 1m30s, 8h)")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """`2m30s`, `45s`, `1h5m`: the short form people read in reports."""
    s = round(seconds)
    if abs(seconds - s) > 0.05 and seconds < 60:
        return f"{seconds:.1f}s"
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (sec, "s")) if v) or "0s"
