"""The scorecard's figures as pure functions of rows (docs/resilience.md): no clock, no database, so each one
is tested on rows made by hand (tests/unit/test_resilience.py). Times are epoch nanoseconds in, seconds out."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

NS = 1_000_000_000
Interval = tuple[int, int]  # [start_ns, end_ns)


def quantile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0–1) of the values by linear interpolation between the closest ranks (numpy's
    default, "linear"); None for no values."""
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float | None:
    """The median (quantile 0.5); None for no values."""
    return quantile(values, 0.5)


def share(hits: int, total: int) -> float | None:
    """hits / total in per cent; None when there is nothing to count."""
    return 100.0 * hits / total if total else None


def mean(values: Sequence[float]) -> float | None:
    """The arithmetic mean; None for no values."""
    return sum(values) / len(values) if values else None


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Overlapping or touching intervals merged, in order of start."""
    out: list[list[int]] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(a, b) for a, b in out]


def clip(intervals: Iterable[Interval], lo: int, hi: int) -> list[Interval]:
    """The parts of the intervals within [lo, hi)."""
    return [(max(a, lo), min(b, hi)) for a, b in intervals if min(b, hi) > max(a, lo)]


def coverage(buildings: Iterable[str], device_buildings: Iterable[str]) -> float | None:
    """Share (%) of the buildings with at least one registered device; None for a community without buildings."""
    listed = set(buildings)
    return share(len(listed & set(device_buildings)), len(listed))


def uptime(devices: int, offline: dict[str, list[Interval]], lo: int, hi: int) -> float | None:
    """1 − offline device-time / device-time over [lo, hi), in per cent: each device's offline intervals
    merged (overlapping alerts of one device count once) and clipped to the window. None without devices."""
    if devices <= 0 or hi <= lo:
        return None
    down = sum(b - a for spans in offline.values() for a, b in clip(merge(spans), lo, hi))
    return 100.0 * max(0.0, 1.0 - down / (devices * (hi - lo)))


def within(delays_s: Iterable[tuple[float | None, float, bool]]) -> float | None:
    """Share (%) of things done within their target: each (delay_s or None when not done, target_s, whether
    its target has passed). Counted: those done, and those not done whose target has passed; a thing not
    done whose target is still ahead is not counted yet."""
    hits = total = 0
    for delay, target, passed in delays_s:
        if delay is None and not passed:
            continue
        total += 1
        hits += delay is not None and delay <= target
    return share(hits, total)


# ---- PEOPLES: the functionality curve of an event --------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventAlert:
    """One alert of an event: when it started, was acknowledged (or None) and resolved (or None: open)."""

    started_ns: int
    acked_ns: int | None
    resolved_ns: int | None


def episodes(alerts: Iterable[EventAlert], now_ns: int) -> list[tuple[Interval, list[EventAlert]]]:
    """Events: alerts' spans [start, resolve or now) merged where they overlap, each with its alerts."""
    spans = merge((a.started_ns, a.resolved_ns if a.resolved_ns is not None else now_ns) for a in alerts)
    out: list[tuple[Interval, list[EventAlert]]] = [(s, []) for s in spans]
    for a in alerts:
        for (start, end), members in out:
            if start <= a.started_ns <= end:
                members.append(a)
                break
    return out


def handled_share(alerts: Sequence[EventAlert], t: int) -> float:
    """Of the event's alerts started by t, the share (0–1) acknowledged or resolved by t (1 when none started)."""
    started = [a for a in alerts if a.started_ns <= t]
    if not started:
        return 1.0
    done = sum(1 for a in started if (a.acked_ns is not None and a.acked_ns <= t)
               or (a.resolved_ns is not None and a.resolved_ns <= t))
    return done / len(started)


def online_share(devices: int, offline: dict[str, list[Interval]], t: int) -> float | None:
    """Share (0–1) of the community's devices online at t (a device is offline within one of its offline
    intervals); None without devices."""
    if devices <= 0:
        return None
    down = sum(1 for spans in offline.values() if any(a <= t < b for a, b in spans))
    return max(0.0, 1.0 - down / devices)


def sample_times(start: int, end: int, step_ns: int = 60 * NS, least: int = 60) -> list[int]:
    """When the curve is sampled: every step (a minute), but at least `least` intervals over a short event,
    the end included."""
    span = end - start
    if span <= 0:
        return [start]
    step = min(step_ns, max(1, span // least))
    times = list(range(start, end, step))
    return [*times, end] if times[-1] != end else times


def curve(span: Interval, alerts: Sequence[EventAlert], devices: int,
          offline: dict[str, list[Interval]]) -> list[tuple[int, float]]:
    """Q(t) over the event: the mean of the share of devices online and the share of its alerts handled
    (only the latter without devices), at each sample time."""
    out = []
    for t in sample_times(*span):
        parts = [handled_share(alerts, t)]
        online = online_share(devices, offline, t)
        if online is not None:
            parts.append(online)
        out.append((t, sum(parts) / len(parts)))
    return out


def area(points: Sequence[tuple[int, float]]) -> float | None:
    """The normalised area ∫Q dt / T (0–1) of a curve by the trapezoid rule; Q itself for a single point."""
    if not points:
        return None
    if len(points) == 1:
        return points[0][1]
    total = sum((t2 - t1) * (q1 + q2) / 2 for (t1, q1), (t2, q2) in pairwise(points))
    return total / (points[-1][0] - points[0][0])


# ---- scores and ratings ----------------------------------------------------------------------------


def score(value: float | None, target: float, worst: float) -> float:
    """0–100, linear from `worst` (0) to `target` (100), clamped; works both ways (a time, lower is better,
    has worst > target). No value scores 0."""
    if value is None:
        return 0.0
    if worst == target:
        return 100.0 if value == target else 0.0
    return round(100.0 * min(1.0, max(0.0, (value - worst) / (target - worst))), 1)


def rating(points: float) -> str:
    """low < 50 ≤ medium < 80 ≤ high."""
    return "high" if points >= 80 else "medium" if points >= 50 else "low"
