"""Committed alert changes, numbered for the live stream's replay (SSE `Last-Event-ID`): what the
single-process view and a cluster instance's feed both keep."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable

from app.view import AlertChange
from kernel.clock import Clock

log = logging.getLogger("cbrain")

REPLAY_BUFFER = 5000


class ChangeLog:
    """Numbers changes, keeps the last REPLAY_BUFFER of them, and hands each batch to the listeners."""

    def __init__(self, clock: Clock) -> None:
        self._replay: deque[AlertChange] = deque(maxlen=REPLAY_BUFFER)
        # Numbers go on from the wall-clock millisecond of start-up, so a stream that reconnects across
        # a restart sees a gap (and loads the page again) rather than numbers used twice.
        self._seq = clock.now_ns() // 1_000_000 * 1000
        self._listeners: list[Callable[[list[AlertChange]], None]] = []

    def add(self, rows: Iterable[tuple[str, str, bytes]]) -> list[AlertChange]:
        """Number committed changes (community, grid, data) and hand them on as one batch."""
        batch = []
        for community, grid, data in rows:
            self._seq += 1
            change = AlertChange(self._seq, community, grid, data)
            self._replay.append(change)
            batch.append(change)
        for listener in list(self._listeners):
            try:
                listener(batch)
            except Exception:
                log.exception("a listener of alert changes failed")
        return batch

    def subscribe(self, listener: Callable[[list[AlertChange]], None]) -> Callable[[], None]:
        """Call listener with each batch of changes; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def after(self, seq: int) -> list[AlertChange] | None:
        """Changes after seq still kept; None when some of them are no longer kept."""
        if seq >= self._seq:
            return []
        if not self._replay or self._replay[0].seq > seq + 1:
            return None
        return [c for c in self._replay if c.seq > seq]

    def last(self) -> int:
        """The newest change's number."""
        return self._seq
