"""Storm grouping: many new alerts of one rule in one community for one recipient go as one message.

A storm's grouping needs time to pass (its members wait `group_wait_s`), so it runs in delivery, on
notifications already committed (notify/deliver.py): GroupStage says which of them join a storm.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from kernel.alerting import Event
from notify.notification import Notification

StormKey = tuple[str, str, str]


class GroupStage:
    """A storm: more than `threshold` new alerts of one rule in one community for one recipient
    within `window_ns`. Notifications of a storm are grouped in delivery, one message for many."""

    name = "group"

    def __init__(self, threshold: int, window_ns: int) -> None:
        self.threshold, self.window_ns = threshold, window_ns
        self._recent: dict[StormKey, deque[int]] = {}

    def exec(self, notifications: Iterable[Notification], now: int) -> list[tuple[Notification, StormKey | None]]:
        """Each notification with the storm it belongs to (None: it goes alone)."""
        return [(n, self._storm(n, now)) for n in notifications]

    def _storm(self, n: Notification, now: int) -> StormKey | None:
        if n.event is not Event.FIRED or self.threshold <= 0:
            return None
        key = (n.recipient, n.rule, n.community)
        recent = self._recent.setdefault(key, deque())
        while recent and recent[0] <= now - self.window_ns:
            recent.popleft()
        recent.append(now)
        if len(self._recent) > 10_000:  # forget storms that are over
            self._recent = {k: v for k, v in self._recent.items() if v and v[-1] > now - self.window_ns}
        return key if len(recent) > self.threshold else None
