"""The latest rejected messages, for the API; counts by reason live in the metrics."""

from __future__ import annotations

from collections import deque

from ingest.decode import Rejection


class RejectionLog:
    """A bounded log: the newest `size` rejections, newest first when listed."""

    def __init__(self, size: int) -> None:
        self._items: deque[Rejection] = deque(maxlen=size)

    def add(self, rejection: Rejection) -> None:
        """Remember one rejection, forgetting the oldest beyond the bound."""
        self._items.append(rejection)

    def latest(self, limit: int) -> list[Rejection]:
        """Up to limit rejections, newest first."""
        out: list[Rejection] = []
        for item in reversed(self._items):
            if len(out) >= limit:
                break
            out.append(item)
        return out

    def __len__(self) -> int:
        return len(self._items)
