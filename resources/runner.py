"""The async side of resources: commit each change with the alerts it raises (through the alerts' own
commit, kernel.alerting transitions and this package's writes in one transaction), open door knocks when
a building's alert turns red, and run the deadlines (door knocks late, supplies expiring at midnight)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from kernel.alerting import Level, Transition
from kernel.clock import NS, Clock
from kernel.deadlines import DeadlineLoop
from kernel.metrics import Registry
from kernel.writes import Write
from resources.book import Changes, KnockList, ResourceBook
from resources.store import SCHEMA, SELECT_CONDITIONS, SELECT_KNOCKS, SELECT_OCCUPANCY, SELECT_STOCK

log = logging.getLogger("cbrain.resources")
# The alerts' commit: transitions and these writes in one transaction, then their notifications.
Apply = Callable[..., Awaitable[None]]
Select = Callable[..., Awaitable[list[tuple[Any, ...]]]]
KEEP_KNOCKS_S = 30 * 86_400  # door-knock lists kept in memory (older ones stay in the store)


class ResourcesRunner:
    """Wires the resource book to the alerts' commit and the clock."""

    def __init__(self, book: ResourceBook, clock: Clock, metrics: Registry, apply: Apply) -> None:
        self.book = book
        self.clock = clock
        self.apply = apply
        self._lock = asyncio.Lock()
        self.deadlines = DeadlineLoop(clock, lambda: book.next_deadline(clock.now_ns()), self._tick)
        self._opening: set[asyncio.Task[None]] = set()
        # Told after every committed change (the pages' live view, the dashboards' points).
        self.listeners: list[Callable[[], None]] = []
        self.m_changes = metrics.counter("cb_resource_changes_total", "Changes to stock, occupancy and door "
                                         "knocks, by kind", ["kind"])
        metrics.gauge("cb_door_knocks_pending", "Door knocks of red alerts not yet recorded",
                      source=lambda: float(sum(kl.pending() for kl in book.lists.values())))

    async def recover(self, script: Callable[[str], Awaitable[None]], select: Select,
                      open_alerts: Iterable[Any]) -> None:
        """Create the tables, restore what they hold, look at the calendar, and open the door knocks of red
        alerts that have none (a crash between an alert's commit and its knocks' commit)."""
        await script(SCHEMA)
        since = self.clock.now_ns() - KEEP_KNOCKS_S * NS
        self.book.restore(await select(SELECT_STOCK), await select(SELECT_OCCUPANCY), await select(SELECT_CONDITIONS),
                          await select(SELECT_KNOCKS, (since,)))
        async with self._lock:
            await self._commit(self.book.evaluate(self.clock.now_ns()), "calendar")
        for a in list(open_alerts):
            await self.open_knocks(a.id, a.level, a.community, a.building, a.grid)

    async def _commit(self, changes: Changes, kind: str, also: list[Write] | None = None) -> None:
        writes = changes.writes + (also or [])
        if not writes and not changes.transitions:
            return
        await self.apply(changes.transitions, also=writes)
        self.m_changes.inc(1, kind)
        for listener in self.listeners:
            listener()
        self.deadlines.wake()

    async def move(self, supply_id: str, delta: int, reason: str, note: str | None, actor: str, role: str,
                   also: Callable[[int, int], list[Write]]) -> int:
        """A stock movement, committed with `also(quantity, now)` (the audit log's row); the new quantity."""
        async with self._lock:
            now = self.clock.now_ns()
            quantity, changes = self.book.move(supply_id, delta, reason, note, actor, role, now)
            await self._commit(changes, "movement", also(quantity, now))
            return quantity

    async def occupy(self, shelter_id: str, count: int, actor: str, also: Callable[[int], list[Write]]) -> None:
        """A shelter's occupancy, committed with `also(now)`."""
        async with self._lock:
            now = self.clock.now_ns()
            changes = self.book.occupy(shelter_id, count, actor, now)
            await self._commit(changes, "occupancy", also(now))

    async def knock(self, alert_id: str, vulnerable_id: str, status: str, note: str | None, actor: str,
                    also: Callable[[KnockList, int], list[Write]]) -> KnockList:
        """A door knock, committed with `also(list, now)`."""
        async with self._lock:
            now = self.clock.now_ns()
            kl, changes = self.book.knock(alert_id, vulnerable_id, status, note, actor, now)
            await self._commit(changes, "door_knock", also(kl, now))
            return kl

    async def open_knocks(self, alert_id: str, level: Level | str, community: str, building: str,
                          grid: str) -> None:
        """A red building alert's door knocks, if its building has vulnerable residents."""
        async with self._lock:
            changes = self.book.open_knocks(alert_id, Level(level), community, building, grid, self.clock.now_ns())
            if changes.writes:
                await self._commit(changes, "door_knocks_opened")
                log.info("alert %s: %d door knocks to do", alert_id, len(self.book.lists[alert_id].knocks))

    def alert_events(self, events: list[tuple[dict[str, Any], str, int]]) -> None:
        """Committed alert changes (AlertsRunner.event_listeners): a red one of a building opens its knocks."""
        for alert, _event, _at in events:
            if alert.get("level") == Level.RED and alert.get("status") != "resolved" \
                    and alert["id"] not in self.book.lists and self.book.catalog.by_building.get(
                        (alert["community"], alert["building"])):
                task = asyncio.create_task(self.open_knocks(alert["id"], alert["level"], alert["community"],
                                                            alert["building"], alert["grid"]), name="door-knocks")
                self._opening.add(task)
                task.add_done_callback(self._opened)

    def _opened(self, task: asyncio.Task[None]) -> None:
        self._opening.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("door knocks not opened (they are at the next start): %s", task.exception())

    async def run(self) -> None:
        """Door knocks late, and supplies that start to expire, as their time comes."""
        await self.deadlines.run()

    async def _tick(self, now: int) -> None:
        async with self._lock:
            await self._commit(self.book.on_tick(now), "deadline")


__all__ = ["ResourcesRunner", "Transition"]
