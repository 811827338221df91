"""The one deadline loop: run what falls due on the service clock, sleep until the next deadline or
until woken because one may have moved earlier. Alerts' escalations, work orders' 督办, rules' `for:`
timers and the loss findings all run through it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from kernel.clock import Clock

NextDeadline = Callable[[], int | None]
Fire = Callable[[int], Awaitable[None]]
Before = Callable[[], Awaitable[bool]]


class DeadlineLoop:
    """Calls `fire(now)` whenever `next_deadline()` (epoch ns, or None for none) is at or before now.

    `before`, when given, runs at the top of every turn; it returns False to start the turn again
    (for example after waiting for a batch that is being evaluated).
    """

    __slots__ = ("_before", "_fire", "_next", "_wake", "clock")

    def __init__(self, clock: Clock, next_deadline: NextDeadline, fire: Fire, *, before: Before | None = None) -> None:
        self.clock = clock
        self._next = next_deadline
        self._fire = fire
        self._before = before
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A deadline may have moved earlier: look again."""
        self._wake.set()

    async def run(self) -> None:
        """Run deadlines as they fall due, until cancelled."""
        while True:
            if self._before is not None and not await self._before():
                continue
            due, now = self._next(), self.clock.now_ns()
            if due is None or due > now:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), None if due is None else (due - now) / 1e9)
                continue
            await self._fire(now)


def earliest(*deadlines: int | None) -> int | None:
    """The earliest of some deadlines, None where there are none."""
    return min((d for d in deadlines if d is not None), default=None)
