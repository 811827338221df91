"""Figures of the alert benchmark: percentiles, the receiver's records, problems in the service's log."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# ---- helpers -------------------------------------------------------------------------------------


def parse_metrics_labels(text: str) -> tuple[dict[str, float], dict[str, float]]:
    """Prometheus text -> ({name: value summed over labels}, {series with labels: value})."""
    sums: dict[str, float] = defaultdict(float)
    series: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        try:
            name_part, value = line.rsplit(" ", 1)
            v = float(value)
        except ValueError:
            continue
        sums[name_part.split("{", 1)[0]] += v
        series[name_part] = v
    return dict(sums), series


def pctl(values: list[float], q: float) -> float | None:
    """Percentile with linear interpolation between closest ranks (q in 0..100)."""
    if not values:
        return None
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def stats_ms(seconds: list[float]) -> dict[str, Any]:
    """n, p50, p90, p99, max, mean in milliseconds."""
    ms = [x * 1000.0 for x in seconds]
    if not ms:
        return {"n": 0}
    return {"n": len(ms), "p50": round(pctl(ms, 50) or 0, 1), "p90": round(pctl(ms, 90) or 0, 1),
            "p99": round(pctl(ms, 99) or 0, 1), "max": round(max(ms), 1), "min": round(min(ms), 1),
            "mean": round(sum(ms) / len(ms), 1)}


def fmt_stats(s: dict[str, Any]) -> str:
    if not s or not s.get("n"):
        return "-"
    return f"{s['p50']:.0f}/{s['p90']:.0f}/{s['p99']:.0f}/{s['max']:.0f} (n={s['n']})"


def rfc3339_ms(text: str | None) -> int | None:
    """'2025-01-02T03:04:05.678Z' -> epoch milliseconds."""
    if not text:
        return None
    try:
        dt = datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return round(dt.timestamp() * 1000)


class Records:
    """Follows the receiver's output file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.all: list[dict[str, Any]] = []
        self._rest = b""

    def read_new(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self._rest + data
        lines = data.split(b"\n")
        self._rest = lines.pop()
        new = [json.loads(ln) for ln in lines if ln.strip()]
        self.all.extend(new)
        return new


def expand(records: list[dict[str, Any]], seen: set[str] | None = None) -> tuple[list[dict[str, Any]], int]:
    """One entry per notification (a grouped message stands for each member alert), deduplicated by event id
    as receivers must; and how many were duplicates."""
    seen = set() if seen is None else seen
    out: list[dict[str, Any]] = []
    dups = 0
    for r in records:
        if "group" in r:
            members = r["group"]
            for eid, dev, rule, started, updated, aid, level in members:
                if eid in seen:
                    dups += 1
                    continue
                seen.add(eid)
                out.append({"t": r["t"], "id": eid, "event": r.get("event"), "recipient": r.get("recipient"),
                            "rule": rule, "device": dev, "started_at": started, "updated_at": updated, "alert": aid,
                            "level": level, "grouped": True, "message": r.get("id"), "group_size": len(members)})
        else:
            eid = r.get("id")
            if eid in seen:
                dups += 1
                continue
            if eid:
                seen.add(eid)
            out.append({**r, "grouped": False, "message": eid, "group_size": 1})
    return out, dups


def every(series: list[tuple[float, Any]], step: float) -> list[tuple[float, Any]]:
    """The first point at or after each multiple of step (from the first point)."""
    out: list[tuple[float, Any]] = []
    nxt = None
    for t, v in series:
        if nxt is None or t >= nxt:
            out.append((t, v))
            nxt = (t if nxt is None else nxt) + step
    return out


def log_problems(text: str) -> dict[str, int]:
    """WARNING/ERROR lines (timestamps cut) and each traceback's exception line, counted."""
    import re

    out: Counter[str] = Counter()
    lines = text.splitlines()
    for i, ln in enumerate(lines):
        if ln.startswith("Traceback"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
                j += 1
            # the frame of ours nearest the exception, and the exception
            ours = [x.strip() for x in lines[i:j] if x.strip().startswith('File "/work/main/')
                    and "/.venv/" not in x]
            where = ours[-1] if ours else ""
            out[f"Traceback: {lines[j] if j < len(lines) else '?'}  [{where}]"] += 1
        elif " WARNING " in ln or " ERROR " in ln or ln.startswith("ERROR:"):
            out[re.sub(r"^\S+ \S+ ", "", ln)[:200]] += 1
    return dict(out.most_common(20))
