"""Whistles and work orders seen through the HTTP layer: queries over the state database, actions
through the orders runner, as plain JSON-ready values."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from kernel.clock import Clock, rfc3339
from kernel.ids import UNKNOWN
from kernel.orders import Grade, Step
from kernel.settings import Department, Scope, Settings
from kernel.site import Site
from notify.store import SELECT_SENT_BETWEEN
from orders.model import Whistle, WorkOrder
from orders.runner import OrdersRunner
from orders.stats import order_stats
from orders.store import (
    SELECT_EVENTS_OF,
    SELECT_ONE_WHISTLE,
    SELECT_ORDERS_OF,
    SELECT_ORDERS_SINCE,
    SELECT_WHISTLES_SINCE,
)

Select = Callable[..., Awaitable[list[tuple[Any, ...]]]]
NS = 1_000_000_000


class WhistleView:
    """What the API and the pages may ask of and do to whistles."""

    def __init__(self, settings: Settings, site: Site, clock: Clock, runner: OrdersRunner, select: Select) -> None:
        self.settings, self.site, self.clock, self.runner, self._select = settings, site, clock, runner, select
        self.book = runner.book
        self.names = {r.id: r.name for r in settings.recipients}

    def departments(self) -> list[Department]:
        """The departments of the site file, in its order."""
        return list(self.settings.departments)

    def may_blow(self, role: str) -> bool:
        """Whether a role may blow a whistle."""
        return role == "admin" or role in self.settings.whistles.blowers

    def place_text(self, community: str, building: str | None = None, device_id: str | None = None) -> str:
        """community › building › location, as people read it."""
        c = self.site.communities.get(community)
        parts = [c.name if c else community]
        b = next((x for x in (c.buildings if c else []) if x.id == building), None)
        if building and building != UNKNOWN:
            parts.append(b.name if b else building)
        entry = self.site.registered.get((community, device_id or ""))
        text = entry.location.text if entry is not None and entry.location is not None else None
        if text:
            parts.append(text)
        return " › ".join(parts)

    # ---- actions ---------------------------------------------------------------------------------

    async def blow(self, *, grade: str, what: str, where: str, community: str, grid: str, alert_id: str | None,
                   blower: str, departments: list[str]) -> dict[str, Any]:
        """Blow a whistle (Refused when it is not right)."""
        w = await self.runner.blow(grade=Grade(grade), what=what, place=where, community=community, grid=grid,
                                   alert_id=alert_id, blower=blower, blower_name=self.names.get(blower, blower),
                                   departments=departments)
        return self.whistle_object(w)

    async def step(self, order_id: str, step: str, actor: str, note: str | None) -> dict[str, Any]:
        """A department's step on its work order."""
        w, o = await self.runner.step(order_id, Step(step), actor, note)
        return self.book.order_object(w, o)

    async def confirm(self, whistle_id: str, department: str, actor: str, rating: int,
                      note: str | None) -> dict[str, Any]:
        """The whistle-blower confirms and rates one department's work order."""
        w, o = await self.runner.confirm(f"{whistle_id}.{department}", actor, rating, note)
        return self.book.order_object(w, o)

    # ---- queries ---------------------------------------------------------------------------------

    async def select(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """The rows of one of the orders' queries (a cluster asks each partition's: app/cluster/whistles.py)."""
        return await self._select(sql, params)

    def whistle_object(self, w: Whistle) -> dict[str, Any]:
        """A whistle with its work orders (the object of docs/api.md)."""
        now = self.clock.now_ns()
        orders = []
        for o in w.orders.values():
            body = self.book.order_object(w, o)
            body["late_now"] = [s.value for s in o.late_now(now)] if o.done_ns is None else []
            orders.append(body)
        return {"id": w.id, "grade": w.grade.value, "what": w.what, "where": w.place, "community": w.community,
                "grid": w.grid, "alert_id": w.alert_id, "blower": w.blower, "blower_name": w.blower_name,
                "created_at": rfc3339(w.created_ns), "updated_at": rfc3339(w.updated_ns), "status": w.status,
                "overdue": any(o["late_now"] for o in orders), "orders": orders}

    async def _load(self, since_ns: int) -> list[Whistle]:
        whistles = {w.id: w for w in (Whistle.from_row(r) for r in await self._select(SELECT_WHISTLES_SINCE,
                                                                                     (since_ns,)))}
        for o in (WorkOrder.from_row(r) for r in await self._select(SELECT_ORDERS_SINCE, (since_ns,))):
            if o.whistle_id in whistles:
                whistles[o.whistle_id].orders[o.department] = o
        return list(whistles.values())

    async def whistles(self, scope: Scope | None, *, status: str | None = None, community: str | None = None,
                       since_ns: int | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Whistles in scope, newest first."""
        since = since_ns if since_ns is not None else self.clock.now_ns() - int(
            self.settings.whistles.stats_window_s * NS)
        out = []
        for w in await self._load(since):
            if not self.site.in_scope(scope, w.community, w.grid):
                continue
            if community is not None and w.community != community:
                continue
            body = self.whistle_object(w)
            if status == "overdue" and not body["overdue"]:
                continue
            if status not in (None, "overdue") and w.status != status:
                continue
            out.append(body)
            if len(out) >= limit:
                break
        return out

    async def whistle(self, scope: Scope | None, whistle_id: str) -> dict[str, Any] | None:
        """One whistle with its orders, their trail and the notifications sent; None if absent or out of scope."""
        rows = await self._select(SELECT_ONE_WHISTLE, (whistle_id,))
        if not rows:
            return None
        w = Whistle.from_row(rows[0])
        if not self.site.in_scope(scope, w.community, w.grid):
            return None
        for o in (WorkOrder.from_row(r) for r in await self._select(SELECT_ORDERS_OF, (whistle_id,))):
            w.orders[o.department] = o
        body = self.whistle_object(w)
        history: dict[str, list[dict[str, Any]]] = {}
        for order_id, at, event, actor, note in await self._select(SELECT_EVENTS_OF, (whistle_id,)):
            history.setdefault(order_id, []).append({"at": rfc3339(at), "event": event, "actor": actor,
                                                     "actor_name": self.names.get(actor or "", actor),
                                                     "note": note})
        sent: dict[str, list[dict[str, Any]]] = {}
        for order_id, recipient, event, status, delivered, created in await self._select(
                SELECT_SENT_BETWEEN, (f"{whistle_id}.", f"{whistle_id}/")):
            sent.setdefault(order_id, []).append({"recipient": recipient, "event": event, "status": status,
                                                  "delivered_at": rfc3339(delivered), "created_at": rfc3339(created)})
        for o in body["orders"]:
            o["history"] = history.get(o["id"], [])
            o["notifications"] = sent.get(o["id"], [])
        return body

    async def order_by_id(self, order_id: str) -> dict[str, Any] | None:
        """A work order (with its whistle's what and where) for its department's link."""
        whistle_id, _, department = order_id.rpartition(".")
        body = await self.whistle(None, whistle_id)
        if body is None:
            return None
        return next((o | {"whistle": {k: v for k, v in body.items() if k != "orders"}}
                     for o in body["orders"] if o["department"] == department), None)

    async def stats(self, scope: Scope | None, since_ns: int | None = None) -> dict[str, Any]:
        """Open, overdue and closed orders, response times and ratings per department and per community."""
        now = self.clock.now_ns()
        since = since_ns if since_ns is not None else now - int(self.settings.whistles.stats_window_s * NS)
        found = [w for w in await self._load(since) if self.site.in_scope(scope, w.community, w.grid)]
        names = {d.id: d.name for d in self.settings.departments}
        communities = {c.id: c.name for c in self.settings.communities}
        return order_stats(found, now, names, communities) | {"since": rfc3339(since), "at": rfc3339(now)}
