"""Grafana's substitutions in an InfluxQL query (macros and template variables), done as Grafana's
InfluxDB data source does them, so that tests and benchmarks run the exact text Grafana would send."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# Grafana's rangeutil.roundInterval steps: an interval is rounded to one of these.
_STEPS_MS = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 15_000, 20_000, 30_000, 60_000, 120_000,
             300_000, 600_000, 900_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000,
             43_200_000, 86_400_000, 604_800_000, 2_592_000_000, 31_536_000_000]
_UNITS = [("y", 31_536_000_000), ("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000),
          ("s", 1000), ("ms", 1)]
# What the provisioned data source sets as its minimum interval (jsonData.timeInterval).
DATASOURCE_MIN_INTERVAL = "10s"
# Grafana's maxDataPoints is the panel's width in pixels; a half-screen panel on 1920×1080.
DEFAULT_MAX_DATA_POINTS = 900
# Characters Grafana's escapeRegex escapes (lodash escapeRegExp plus "-", as in Grafana's utils).
_REGEX_SPECIAL = re.compile(r"[\\^$.*+?()[\]{}|\-/]")


def parse_duration_ms(text: str) -> int:
    """'10s', '5m', '1h' in milliseconds."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d|w|y)", text.strip())
    if not m:
        raise ValueError(f"not a Grafana interval: {text!r}")
    return int(m[1]) * dict((u, ms) for u, ms in _UNITS)[m[2]]


def format_ms(ms: int) -> str:
    """An interval as Grafana writes it ('10s', '5m')."""
    for unit, size in _UNITS:
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def interval_ms(from_ms: int, to_ms: int, *, min_interval: str | None = None,
                max_data_points: int = DEFAULT_MAX_DATA_POINTS) -> int:
    """$__interval: the range over the data points, rounded, and no less than the minimum interval."""
    raw = (to_ms - from_ms) / max_data_points
    rounded = next((s for s in _STEPS_MS if s >= raw), _STEPS_MS[-1])
    floor = parse_duration_ms(min_interval or DATASOURCE_MIN_INTERVAL)
    return max(rounded, floor)


def escape_regex(value: str) -> str:
    """A value put into a /regex/ as Grafana's InfluxDB data source puts it."""
    return _REGEX_SPECIAL.sub(lambda m: "\\" + m[0], value)


@dataclass
class Variable:
    """A dashboard variable's definition and current value(s)."""

    name: str
    value: str | list[str]
    include_all: bool = False
    multi: bool = False
    all_value: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def formatted(self) -> str:
        """The text Grafana substitutes for $name in an InfluxQL query."""
        values = self.value if isinstance(self.value, list) else [self.value]
        if values == ["$__all"]:
            if self.all_value is not None:
                return self.all_value  # a custom all value goes in as written
            values = self.extra.get("options", [])
        if not self.multi and not self.include_all:
            return values[0] if values else ""
        escaped = [escape_regex(v) for v in values]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def substitute(query: str, *, from_ms: int, to_ms: int, variables: dict[str, Variable] | None = None,
               min_interval: str | None = None) -> str:
    """The query as Grafana sends it: time filter, intervals and variables replaced."""
    iv = interval_ms(from_ms, to_ms, min_interval=min_interval)
    time_filter = f"time >= {from_ms}ms and time <= {to_ms}ms"
    macros = {"timeFilter": time_filter, "__timeFilter": time_filter, "__interval": format_ms(iv),
              "interval": format_ms(iv), "__interval_ms": str(iv), "__from": str(from_ms), "__to": str(to_ms)}
    for name, var in (variables or {}).items():
        macros[name] = var.formatted()

    def replace(m: re.Match[str]) -> str:
        name = m[1] or m[2]
        return macros.get(name, m[0])  # $tag_x aliases and unknown names stay as they are

    # Longest names first through one pattern: $__interval_ms is not $__interval followed by "_ms".
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", replace, query)


@dataclass(frozen=True)
class DashboardQuery:
    """One query of a dashboard: where it is, its InfluxQL, and its panel's minimum interval."""

    dashboard: str
    where: str  # "panel <title> <refId>", "variable <name>", "annotation <name>"
    query: str
    min_interval: str | None = None
    time_from: str | None = None  # the panel's relative time override ("10m": the last 10 minutes)

    def range_ms(self, from_ms: int, to_ms: int) -> tuple[int, int]:
        """The range Grafana queries for this panel when the dashboard shows from_ms to to_ms."""
        if self.time_from:
            return to_ms - parse_duration_ms(self.time_from), to_ms
        return from_ms, to_ms


def queries_of(dashboard: dict[str, Any]) -> list[DashboardQuery]:
    """Every panel, template-variable and annotation query of a dashboard's JSON."""
    uid = str(dashboard["uid"])
    out = [DashboardQuery(uid, f"variable {v['name']}", v["query"]) for v in
           dashboard.get("templating", {}).get("list", []) if v.get("type") == "query"]
    for a in dashboard.get("annotations", {}).get("list", []):
        target = a.get("target") or {}
        if "query" in target:
            out.append(DashboardQuery(uid, f"annotation {a['name']}", target["query"]))
    for p in dashboard.get("panels", []):
        for t in p.get("targets", []):
            out.append(DashboardQuery(uid, f"panel {p['title']} {t['refId']}", t["query"], p.get("interval"),
                                      p.get("timeFrom")))
    return out


def variables_of(dashboard: dict[str, Any], chosen: dict[str, str]) -> dict[str, Variable]:
    """The dashboard's variables at their default (All where they have it) or the chosen values."""
    out: dict[str, Variable] = {}
    for v in dashboard.get("templating", {}).get("list", []):
        current = (v.get("current") or {}).get("value")
        value = chosen.get(v["name"], current if current is not None else "")
        out[v["name"]] = Variable(v["name"], value, include_all=bool(v.get("includeAll")), multi=bool(v.get("multi")),
                                  all_value=v.get("allValue"))
    return out
