"""The async side of work orders: commit each change, then hand its notifications to delivery; the
deadline task that reports overdue steps (督办)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from kernel.clock import Clock
from kernel.metrics import Registry
from kernel.orders import Grade, Step
from orders.book import OrderBook, OrderChanges, OrderNotification
from orders.model import Whistle, WorkOrder
from orders.store import SCHEMA, SELECT_OPEN_ORDERS, SELECT_OPEN_WHISTLES

Write = tuple[str, list[tuple[Any, ...]]]
Persist = Callable[[list[Write]], Awaitable[None]]
Select = Callable[..., Awaitable[list[tuple[Any, ...]]]]
Send = Callable[[list[OrderNotification]], None]


class OrdersRunner:
    """Wires the order book to the commit, the clock and delivery (the alerts' outbox and deliverer)."""

    def __init__(self, book: OrderBook, clock: Clock, metrics: Registry, persist: Persist, send: Send) -> None:
        self.book = book
        self.clock = clock
        self.persist = persist
        self.send = send
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        # Told after every committed change (the dashboards' writer).
        self.listeners: list[Callable[[], None]] = []
        # Told of every committed notification (the API's event stream carries them as it does alerts').
        self.notification_listeners: list[Send] = []
        self.m_events = metrics.counter("cb_work_order_events_total", "Work-order events, by event", ["event"])
        metrics.gauge("cb_work_orders_open", "Work orders not yet done", source=self._open)

    def _open(self) -> float:
        return float(sum(1 for w in self.book.whistles.values() for o in w.orders.values()
                         if o.done_ns is None))

    async def recover(self, script: Callable[[str], Awaitable[None]], select: Select) -> int:
        """Create the tables; load the whistles not yet closed with their work orders and deadlines."""
        await script(SCHEMA)
        whistles = [Whistle.from_row(r) for r in await select(SELECT_OPEN_WHISTLES)]
        orders = [WorkOrder.from_row(r) for r in await select(SELECT_OPEN_ORDERS)]
        self.book.restore(whistles, orders)
        return len(self.book.whistles)

    async def _commit(self, changes: OrderChanges) -> None:
        if changes.writes:
            await self.persist(changes.writes)
        for n in changes.notifications:
            self.m_events.inc(1, n.event)
        if changes.notifications:
            self.send(changes.notifications)
            for tell in self.notification_listeners:
                tell(changes.notifications)
        for listener in self.listeners:
            listener()
        self._wake.set()

    async def blow(self, *, grade: Grade, what: str, place: str, community: str, grid: str, alert_id: str | None,
                   blower: str, blower_name: str, departments: list[str]) -> Whistle:
        """Blow a whistle, commit, tell the departments."""
        async with self._lock:
            w, changes = self.book.blow(grade=grade, what=what, place=place, community=community, grid=grid,
                                        alert_id=alert_id, blower=blower, blower_name=blower_name,
                                        departments=departments, now=self.clock.now_ns())
            await self._commit(changes)
            return w

    async def step(self, order_id: str, step: Step, actor: str, note: str | None) -> tuple[Whistle, WorkOrder]:
        """A department's step, committed; the whistle-blower is told."""
        async with self._lock:
            w, o, changes = self.book.step(order_id, step, actor, note, self.clock.now_ns())
            await self._commit(changes)
            return w, o

    async def confirm(self, order_id: str, actor: str, rating: int, note: str | None) -> tuple[Whistle, WorkOrder]:
        """The whistle-blower's confirmation and rating, committed; the department is told."""
        async with self._lock:
            w, o, changes = self.book.confirm(order_id, actor, rating, note, self.clock.now_ns())
            await self._commit(changes)
            return w, o

    async def run(self) -> None:
        """Report overdue steps as their deadlines pass."""
        while True:
            due, now = self.book.next_deadline(), self.clock.now_ns()
            if due is None or due > now:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), None if due is None else (due - now) / 1e9)
                continue
            async with self._lock:
                await self._commit(self.book.on_tick(now))
