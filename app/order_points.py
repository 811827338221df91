"""Work-order figures for Grafana (docs/storage.md, `work_orders`), beside the wall's community_summary.

    OrdersRunner (a change) ─┐
    every stats_interval_s ──┴─► OrderPointsWriter ─► work_orders (per department, per community, all)
                                                      └─► Store (InfluxDB, or SQLite when embedded)

Each point is a snapshot of the stats window that the next one supersedes, written straight to the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from app.whistle_view import WhistleView
from ingest.store_writer import Store
from kernel.errors import BadPointError, StoreError
from kernel.metrics import Registry
from kernel.reading import Point

log = logging.getLogger("cbrain.orders")
ALL = "all"
# After a change, wait this long for the rest of it (both departments signing) before writing.
SETTLE_S = 0.5
FIELDS = ("orders", "open", "overdue", "done", "closed", "late", "sign_s_avg", "arrive_s_avg", "done_s_avg",
          "rating_avg", "ratings")


def order_points(stats: dict[str, Any], now_ns: int) -> list[Point]:
    """One work_orders point per department (community "all"), per community (department "all"), and the total."""
    rows = ([({"community": ALL, "department": d["id"]}, d) for d in stats["departments"]]
            + [({"community": c["id"], "department": ALL}, c) for c in stats["communities"]]
            + [({"community": ALL, "department": ALL}, stats["total"])])
    points = []
    for tags, figures in rows:
        fields: dict[str, float | bool | str] = {k: float(figures[k]) for k in FIELDS if figures[k] is not None}
        points.append(Point("work_orders", tags, fields, now_ns))
    return points


class OrderPointsWriter:
    """Writes the work-order figures periodically, and soon after a work order changes."""

    def __init__(self, view: WhistleView, store: Store, interval_s: float, metrics: Registry | None = None) -> None:
        self.view, self.store, self.interval_s = view, store, interval_s
        self._changed = asyncio.Event()
        self.m_points = metrics.counter("cb_work_order_points_total", "work_orders points written for the dashboards"
                                        ) if metrics else None

    def changed(self) -> None:
        """A work order changed (an OrdersRunner listener): write soon."""
        self._changed.set()

    async def write_once(self) -> int:
        """Compute the figures and write them; the number of points written (0 when the store refused)."""
        stats = await self.view.stats(None)
        points = order_points(stats, self.view.clock.now_ns())
        try:
            await self.store.write(points)
        except (StoreError, BadPointError) as exc:
            log.debug("work_orders points not written: %s", exc)  # the next snapshot replaces them
            return 0
        if self.m_points is not None:
            self.m_points.inc(len(points))
        return len(points)

    async def run(self) -> None:
        """Write on change and on the interval, forever."""
        while True:
            self._changed.clear()
            try:
                await self.write_once()
            except Exception:  # a fault of ours must not stop the service; the next round tries again
                log.exception("work_orders points failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.interval_s)
                await asyncio.sleep(SETTLE_S)
