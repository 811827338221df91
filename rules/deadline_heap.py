"""Each device's earliest deadline on the service clock, and which comes first.

A dict holds the live entry of each device; a heap orders them. An entry brought earlier is pushed
again and the one it replaces stays in the heap until it comes up (and is skipped then). Under load
the entries follow the devices' clock offsets (rules.engine: a reading whose offset is smaller
brings the device's reading-time deadlines that much earlier), thousands a second, so once the heap
holds more than twice the live entries (and a few) it is made again from the dict.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
# Replaced entries the heap may hold beyond twice the live ones before it is made again.
SLACK = 16


class DeadlineHeap(Generic[K]):
    """`due[key]`: the key's entry (service time, ns); `earlier`, `first`, `pop`."""

    __slots__ = ("due", "heap")

    def __init__(self) -> None:
        self.due: dict[K, int] = {}
        self.heap: list[tuple[int, K]] = []

    def earlier(self, key: K, due: int) -> None:
        """Set key's entry to due unless it has one that is earlier or the same."""
        current = self.due.get(key)
        if current is not None and current <= due:
            return
        self.due[key] = due
        heap = self.heap
        heapq.heappush(heap, (due, key))
        if len(heap) > 2 * len(self.due) + SLACK:
            heap[:] = [(d, k) for k, d in self.due.items()]
            heapq.heapify(heap)

    def first(self) -> int | None:
        """The earliest entry."""
        heap, due = self.heap, self.due
        while heap and due.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop(self, now: int) -> K | None:
        """A key whose entry is at or before now, its entry removed; None when there is none."""
        heap, due = self.heap, self.due
        while heap and heap[0][0] <= now:
            at, key = heapq.heappop(heap)
            if due.get(key) == at:
                del due[key]
                return key
        return None
