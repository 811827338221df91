"""Every partition's committed alert changes and notifications, as this instance streams them: the
holders forward them (app/cluster/view_serve.py) to `{name}.changes` and `{name}.notifications`; here
each change is numbered again in this instance's own sequence and kept for a live stream that
reconnects (Last-Event-ID: the numbers are this instance's, as a stream stays with one instance)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import orjson

from app.change_log import ChangeLog
from app.view import AlertChange, NotificationOut
from kernel.clock import Clock

log = logging.getLogger("cbrain.cluster")


class Feed:
    """The site's live changes and notifications on one instance."""

    def __init__(self, nc: Any, name: str, clock: Clock) -> None:
        self.nc, self.name = nc, name
        self.log = ChangeLog(clock)  # numbered in this instance's own sequence
        self._note_listeners: list[Callable[[list[NotificationOut]], None]] = []
        self._subs: list[Any] = []
        self.changes = 0
        self.notifications = 0

    async def start(self) -> None:
        """Listen to every partition's forwards."""
        self._subs = [await self.nc.subscribe(f"{self.name}.changes", cb=self._on_changes),
                      await self.nc.subscribe(f"{self.name}.notifications", cb=self._on_notifications)]

    async def stop(self) -> None:
        """Stop listening."""
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs = []

    async def _on_changes(self, msg: Any) -> None:
        try:
            rows = orjson.loads(msg.data)["c"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("a forward of alert changes of no known shape on %s", msg.subject)
            return
        self.take_changes([(str(community), str(grid), str(data).encode()) for community, grid, data in rows])

    def take_changes(self, rows: list[tuple[str, str, bytes]]) -> list[AlertChange]:
        """Number committed changes (community, grid, data) in this instance's sequence and hand them on."""
        batch = self.log.add(rows)
        self.changes += len(batch)
        return batch

    async def _on_notifications(self, msg: Any) -> None:
        try:
            rows = orjson.loads(msg.data)["n"]
            batch = [NotificationOut(str(e), str(r), str(c), str(g), str(p).encode()) for e, r, c, g, p in rows]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("a forward of notifications of no known shape on %s", msg.subject)
            return
        self.notifications += len(batch)
        for listener in list(self._note_listeners):
            try:
                listener(batch)
            except Exception:
                log.exception("a listener of notifications failed")

    def subscribe_notifications(self, listener: Callable[[list[NotificationOut]], None]) -> Callable[[], None]:
        """Call listener with each batch of committed notifications; returns the unsubscribe function."""
        self._note_listeners.append(listener)
        return lambda: self._note_listeners.remove(listener)
