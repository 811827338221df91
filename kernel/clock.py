"""Clocks: the service reads time only through one of these, so tests can drive it."""

from __future__ import annotations

import time
from typing import Protocol

# Nanoseconds in a second: every service time is epoch nanoseconds.
NS = 1_000_000_000


class Clock(Protocol):
    """Wall-clock time in nanoseconds since the epoch, and a monotonic counter in seconds."""

    def now_ns(self) -> int: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The machine's clock."""

    def now_ns(self) -> int:
        """Current wall-clock time in epoch nanoseconds."""
        return time.time_ns()

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, never going back."""
        return time.monotonic()


class ManualClock:
    """A clock that only moves when told to; for tests and replay."""

    def __init__(self, start_ns: int = 1_700_000_000 * 1_000_000_000) -> None:
        self._now_ns = start_ns
        self._mono = 0.0

    def now_ns(self) -> int:
        """The time last set."""
        return self._now_ns

    def monotonic(self) -> float:
        """Seconds advanced so far."""
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self._now_ns += int(seconds * 1_000_000_000)
        self._mono += seconds

    def set_ns(self, now_ns: int) -> None:
        """Jump the wall clock (the monotonic clock follows forward jumps only)."""
        delta = (now_ns - self._now_ns) / 1e9
        self._now_ns = now_ns
        if delta > 0:
            self._mono += delta


def rfc3339(ns: int | None) -> str | None:
    """An epoch-nanosecond time as RFC 3339 in UTC with millisecond precision."""
    if ns is None:
        return None
    seconds, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1_000_000:03d}Z"
