"""The scorecards' history (docs/resilience.md): every community's scorecard written to the reading store as
measurement `resilience` — tags `community` and `category` (each category, and `overall`), field `score`, and
each indicator's value as a field named by its id — once at start and every `resilience.history_interval_s`.

    every history_interval_s ─► Scorecard.card (each community) ─► resilience points ─► Store (InfluxDB | SQLite)
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from app.resilience.card import Scorecard
from ingest.store_writer import Store
from kernel.errors import BadPointError, Refused, StoreError
from kernel.metrics import Registry
from kernel.reading import Point

log = logging.getLogger("cbrain.resilience")
MEASUREMENT = "resilience"
RETRY_S = 60.0  # after a round the store refused, try again this soon


def resilience_points(card: dict[str, Any], ts_ns: int) -> list[Point]:
    """One point per category (its score and its indicators' values) and one for `overall`."""
    community = card["community"]
    points = [Point(MEASUREMENT, {"community": community, "category": "overall"},
                    {"score": float(card["overall"]["score"])}, ts_ns)]
    for c in card["categories"]:
        fields: dict[str, float | bool | str] = {"score": float(c["score"])}
        fields |= {i["id"]: float(i["value"]) for i in c["indicators"] if i["value"] is not None}
        points.append(Point(MEASUREMENT, {"community": community, "category": c["id"]}, fields, ts_ns))
    return points


class ResilienceHistory:
    """Writes every community's scorecard at start and on the interval."""

    def __init__(self, scorecard: Scorecard, store: Store, interval_s: float, metrics: Registry | None = None) -> None:
        self.scorecard, self.store, self.interval_s = scorecard, store, interval_s
        self.m_points = metrics.counter("cb_resilience_points_total", "resilience points written (scorecard history)"
                                        ) if metrics else None
        self._refused: str | None = None  # what the store said when it last refused a round

    async def write_once(self) -> int:
        """Compute each community's scorecard and write it; the number of points written (0 if refused)."""
        points: list[Point] = []
        for community in self.scorecard.communities:
            card = await self.scorecard.card(community, "en")
            if card is not None:
                points += resilience_points(card, self.scorecard.clock.now_ns())
        if not points:
            return 0
        try:
            await self.store.write(points)
        except (StoreError, BadPointError) as exc:
            # The next round writes a fresh scorecard. Said once while the store says the same (the
            # reading store's writer reports the store's state on /health and in its own line).
            if str(exc) != self._refused:
                log.warning("resilience points not written: %s", exc)
            self._refused = str(exc)
            return 0
        if self._refused is not None:
            log.info("resilience points written again")
            self._refused = None
        if self.m_points is not None:
            self.m_points.inc(len(points))
        return len(points)

    async def run(self) -> None:
        """Write now, then every interval, forever."""
        while True:
            written = 0
            try:
                written = await self.write_once()
            except Refused:
                return  # not served here (a partition of a cluster)
            except Exception:  # a fault of ours must not stop the service; the next round tries again
                log.exception("resilience points failed")
            await asyncio.sleep(self.interval_s if written else min(self.interval_s, RETRY_S))
