"""A small metrics registry rendered as Prometheus text; counters are plain ints, cheap on hot paths."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable
from typing import TypeVar

LabelValues = tuple[str, ...]


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: LabelValues, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Family:
    kind = "untyped"

    def __init__(self, name: str, help_text: str, labelnames: Iterable[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.labelnames = tuple(labelnames)

    def samples(self) -> Iterable[tuple[str, str, float]]:
        return ()

    def render(self) -> str:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        lines += [f"{name}{labels} {_fmt(value)}" for name, labels, value in self.samples()]
        return "\n".join(lines)


class Counter(_Family):
    """A monotonically increasing count, optionally split by labels."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labelnames: Iterable[str] = ()) -> None:
        super().__init__(name, help_text, labelnames)
        self.values: dict[LabelValues, float] = {} if self.labelnames else {(): 0.0}

    def inc(self, amount: float = 1.0, *labels: str) -> None:
        """Add amount to the series with these label values (in labelnames order)."""
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def get(self, *labels: str) -> float:
        """Current value of one series."""
        return self.values.get(labels, 0.0)

    def total(self) -> float:
        """Sum over every series."""
        return sum(self.values.values())

    def samples(self) -> Iterable[tuple[str, str, float]]:
        for labels, value in sorted(self.values.items()):
            yield self.name, _labels(self.labelnames, labels), value


class Gauge(_Family):
    """A value that goes up and down; set directly or read from a callback at render time."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, labelnames: Iterable[str] = (),
                 source: Callable[[], dict[LabelValues, float] | float] | None = None) -> None:
        super().__init__(name, help_text, labelnames)
        self.values: dict[LabelValues, float] = {}
        self.source = source

    def set(self, value: float, *labels: str) -> None:
        """Set the series with these label values."""
        self.values[labels] = value

    def get(self, *labels: str) -> float:
        """Current value of one series."""
        return self._current().get(labels, 0.0)

    def _current(self) -> dict[LabelValues, float]:
        if self.source is None:
            return self.values
        got = self.source()
        return got if isinstance(got, dict) else {(): float(got)}

    def samples(self) -> Iterable[tuple[str, str, float]]:
        for labels, value in sorted(self._current().items()):
            yield self.name, _labels(self.labelnames, labels), value


class Histogram(_Family):
    """Observations in cumulative buckets, with sum and count."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Iterable[float]) -> None:
        super().__init__(name, help_text)
        self.bounds = sorted(buckets)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Record one observation."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def samples(self) -> Iterable[tuple[str, str, float]]:
        running = 0
        for bound, n in zip([*self.bounds, math.inf], self.counts, strict=True):
            running += n
            yield f"{self.name}_bucket", _labels((), (), f'le="{_fmt(bound)}"'), running
        yield f"{self.name}_sum", "", self.sum
        yield f"{self.name}_count", "", self.count


_F = TypeVar("_F", bound=_Family)


class Registry:
    """The families one service exposes on /metrics."""

    def __init__(self) -> None:
        self.families: dict[str, _Family] = {}

    def _add(self, family: _F) -> _F:
        if family.name in self.families:
            raise ValueError(f"metric {family.name} registered twice")
        self.families[family.name] = family
        return family

    def counter(self, name: str, help_text: str, labelnames: Iterable[str] = ()) -> Counter:
        """Register a counter."""
        return self._add(Counter(name, help_text, labelnames))

    def gauge(self, name: str, help_text: str, labelnames: Iterable[str] = (),
              source: Callable[[], dict[LabelValues, float] | float] | None = None) -> Gauge:
        """Register a gauge, optionally computed at render time by source."""
        return self._add(Gauge(name, help_text, labelnames, source))

    def histogram(self, name: str, help_text: str, buckets: Iterable[float]) -> Histogram:
        """Register a histogram."""
        return self._add(Histogram(name, help_text, buckets))

    def render(self) -> str:
        """Prometheus text exposition format."""
        return "\n".join(f.render() for f in self.families.values()) + "\n"
