"""The scorecards' trend (docs/resilience.md): a community's scores over time, read back from the
`resilience` measurement the history writes — from InfluxDB, which answers InfluxQL; the embedded SQLite
store keeps no category per point, so there the trend is None ("no history yet").

    InfluxDB "resilience" ─► SELECT score … GROUP BY category ─► {category: [(ts_ns, score), …]}
"""

from __future__ import annotations

from typing import Any

from kernel.errors import Reason, Refused, StoreError

MEASUREMENT = "resilience"
MAX_POINTS = 400  # per category: the latest ones


def _literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


async def read_trend(store: Any, community: str, since_ns: int) -> dict[str, list[tuple[int, float]]] | None:
    """Each category's (and `overall`'s) scores since since_ns, oldest first; None when the store cannot be
    asked (Refused, unavailable, when it does not answer)."""
    select = getattr(store, "select", None)
    if select is None:
        return None
    q = (f'SELECT "score" FROM "{MEASUREMENT}" WHERE "community" = \'{_literal(community)}\' '
         f'AND time >= {int(since_ns)} GROUP BY "category" ORDER BY time DESC LIMIT {MAX_POINTS}')
    try:
        series = await select(q)
    except StoreError as exc:
        raise Refused(Reason.UNAVAILABLE, f"the reading store does not answer: {exc}") from None
    out: dict[str, list[tuple[int, float]]] = {}
    for s in series:
        category = (s.get("tags") or {}).get("category", "")
        at = s["columns"].index("time"), s["columns"].index("score")
        points = [(int(v[at[0]]), float(v[at[1]])) for v in s["values"] if v[at[1]] is not None]
        out.setdefault(category, []).extend(points)
    return {k: sorted(v) for k, v in out.items()}
