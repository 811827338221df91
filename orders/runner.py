"""The async side of work orders: commit each change with its messages' outbox rows (delivery's,
kernel.outgoing.Outbox, given by app), then release them to delivery; the deadline task that
reports overdue steps (督办)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from kernel.clock import Clock
from kernel.deadlines import DeadlineLoop
from kernel.metrics import Registry
from kernel.orders import Grade, Step
from kernel.outgoing import Outbox
from kernel.writes import Write
from orders.book import OrderBook, OrderChanges
from orders.model import Whistle, WorkOrder
from orders.store import SCHEMA, SELECT_OPEN_ORDERS, SELECT_OPEN_WHISTLES

Persist = Callable[[list[Write]], Awaitable[None]]
Select = Callable[..., Awaitable[list[tuple[Any, ...]]]]


class OrdersRunner:
    """Wires the order book to the commit, the clock and delivery's outbox."""

    def __init__(self, book: OrderBook, clock: Clock, metrics: Registry, persist: Persist, outbox: Outbox) -> None:
        self.book = book
        self.clock = clock
        self.persist = persist
        self.outbox = outbox
        self._lock = asyncio.Lock()
        self.deadlines = DeadlineLoop(clock, book.next_deadline, self._tick)
        # Told after every committed change (the dashboards' writer).
        self.listeners: list[Callable[[], None]] = []
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
        posting = self.outbox.post(changes.messages)
        writes = changes.writes + posting.writes
        if writes:
            await self.persist(writes)
        for m in changes.messages:
            self.m_events.inc(1, m.event.value)
        posting.deliver()
        for listener in self.listeners:
            listener()
        self.deadlines.wake()

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
        await self.deadlines.run()

    async def _tick(self, now: int) -> None:
        async with self._lock:
            await self._commit(self.book.on_tick(now))
