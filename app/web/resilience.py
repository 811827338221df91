"""韧性评估 (docs/pages.md, docs/resilience.md): a community's scorecard at a glance (each category and
indicator with its rating in words, the PEOPLES curve of its latest event, the trend from the history),
and for the street office, bureau and admins the street comparing its communities side by side."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from app.auth import Principal
from app.web.kit import PageKit
from app.words import span_words, words
from kernel.clock import NS
from kernel.errors import Refused

# Who has the page (a department's contact has not); who sees the street's communities compared.
ROLES = frozenset({"admin", "bureau", "street_office", "community", "grid_worker"})
STREET = frozenset({"admin", "bureau", "street_office"})
RATING_ICONS = {"low": "✗", "medium": "▲", "high": "✓"}
CURVE_W, CURVE_H, PAD_L, PAD_B = 340, 170, 40, 26  # the PEOPLES chart's plot and its margins (SVG units)
SPARK_W, SPARK_H = 300, 56


def sees_resilience(role: str) -> bool:
    """Whether a role has the 韧性评估 page (and its link in the top bar)."""
    return role in ROLES


def fill(text: str, **values: Any) -> str:
    """A sentence of the words with its blanks filled in."""
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    return text


def number(v: float) -> str:
    """A figure as people read it: 100, 97.5, 0.873."""
    return f"{v:.3f}".rstrip("0").rstrip(".") if abs(v) < 10 else f"{v:.1f}".rstrip("0").rstrip(".")


def amount(v: float, unit: str, t: dict[str, str]) -> str:
    """A value with its unit in words: 4分钟, 97.5 %, 2 次, 4.5 / 5, 0.873."""
    if unit == "s":
        return span_words(v, t)
    if unit == "%":
        return f"{number(v)} %"
    if unit == "count":
        return fill(t["rs_times"], n=number(v))
    if unit == "rating":
        return fill(t["rs_of_5"], v=number(v))
    return number(v)


def rated(thing: dict[str, Any], t: dict[str, str]) -> dict[str, Any]:
    """A score's rating in words (低/中/高) and its icon, beside its colour."""
    return thing | {"rating_word": t[f"rs_{thing['rating']}"], "icon": RATING_ICONS[thing["rating"]]}


def short_span(seconds: float, t: dict[str, str]) -> str:
    """A duration on the chart's time axis: tenths of a second under ten seconds, else as people say it."""
    return f"{seconds:.1f}{t['sec']}" if 0 < seconds < 10 else span_words(seconds, t)


def curve_chart(ind: dict[str, Any], t: dict[str, str]) -> dict[str, Any] | None:
    """The latest event's functionality curve as SVG: the line, the area under it shaded, the axes."""
    pts = ind.get("curve") or []
    if not pts:
        return None
    span = max(pts[-1][0] - pts[0][0], 1e-9)
    xy = [(PAD_L + (s - pts[0][0]) / span * CURVE_W, 8 + (1 - q) * CURVE_H) for s, q in pts]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    base = 8 + CURVE_H
    ticks = [{"x": PAD_L + f * CURVE_W, "label": short_span(f * span, t) if f else "0",
              "anchor": ("start", "middle", "end")[int(f * 2)]} for f in (0, 0.5, 1)]
    return {"line": line, "area": f"{PAD_L},{base} {line} {xy[-1][0]:.1f},{base}",
            "levels": [{"y": 8 + (1 - q) * CURVE_H, "label": f"{int(q * 100)}%"} for q in (0, 0.5, 1)],
            "ticks": ticks, "left": PAD_L, "right": PAD_L + CURVE_W, "base": base,
            "width": PAD_L + CURVE_W + 8, "height": base + PAD_B, "span": short_span(span, t)}


def sparkline(points: list[tuple[int, float]], width: int = SPARK_W, height: int = SPARK_H) -> str:
    """Scores (0–100) over time as an SVG polyline's points."""
    t0, t1 = points[0][0], points[-1][0]
    span = max(t1 - t0, 1)
    return " ".join(f"{(ts - t0) / span * width:.1f},{height - v / 100 * height:.1f}" for ts, v in points)


class ResiliencePages:
    """The card of one community and the street's comparison, from view.resilience."""

    def __init__(self, kit: PageKit) -> None:
        self.kit, self.view = kit, kit.view
        self.zone = ZoneInfo(kit.view.settings.timezone)

    def clock(self, ns: int | str, fmt: str = "%m-%d %H:%M") -> str:
        """A time (ns or RFC 3339) in the site's time zone."""
        at = (datetime.fromisoformat(ns.replace("Z", "+00:00")) if isinstance(ns, str)
              else datetime.fromtimestamp(ns / NS, self.zone))
        return at.astimezone(self.zone).strftime(fmt)

    def communities(self, who: Principal) -> list[tuple[str, str]]:
        """(id, name) of each community in the caller's scope, in the site file's order."""
        return [(c.id, c.name) for c in self.view.site.communities.values()
                if who.scope is None or who.scope.community in (None, c.id)]

    def indicator(self, ind: dict[str, Any], t: dict[str, str]) -> dict[str, Any]:
        """An indicator in words: its value with its unit (or 无记录 and why), its target, its score."""
        value = t["rs_no_record"] if ind["value"] is None else amount(ind["value"], ind["unit"], t)
        target = ("≤ " if ind["better"] == "lower" else "≥ ") + amount(ind["target"], ind["unit"], t)
        score = ind["score"]
        return ind | {"value_text": value, "target_text": target,
                      "band": "high" if score >= 80 else "medium" if score >= 50 else "low"}

    def trend(self, found: dict[str, list[tuple[int, float]]] | None, t: dict[str, str],
              names: dict[str, str], live: dict[str, float], now_ns: int) -> dict[str, Any]:
        """The trend section: the overall sparkline and each category's, or why there is none. The
        history holds the scorecards written at start and daily; each line ends at the score as the
        card shows it now (`live`), where the headline stands, not at the last record."""
        overall = (found or {}).get("overall") or []
        if not overall:
            return {"line": t["rs_trend_none"], "state": "none"}
        if len(overall) == 1:
            return {"line": fill(t["rs_trend_one"], at=self.clock(overall[0][0])), "state": "one"}
        ended = {cid: [*pts, (max(now_ns, pts[-1][0]), live[cid])] if cid in live else pts
                 for cid, pts in (found or {}).items()}
        lines = [{"id": cid, "name": names.get(cid, cid), "points": sparkline(pts), "last": pts[-1][1]}
                 for cid, pts in ended.items() if cid != "overall" and len(pts) > 1]
        return {"state": "many", "points": sparkline(ended["overall"]), "first": overall[0][1],
                "last": ended["overall"][-1][1],
                "line": fill(t["rs_trend_points"], n=len(overall), first=self.clock(overall[0][0]),
                             last=self.clock(overall[-1][0])),
                "categories": sorted(lines, key=lambda x: list(names).index(x["id"]) if x["id"] in names else 9),
                "width": SPARK_W, "height": SPARK_H}

    async def card_page(self, request: Request, s: dict[str, Any], cid: str) -> HTMLResponse:
        """One community's card: overall, categories, indicators, the PEOPLES curve and the trend."""
        lang = self.kit.lang_of(request)
        t = words(lang)
        name = self.view.site.communities[cid].name
        try:
            card = await self.view.resilience.card(cid, lang)
        except Refused:
            return self.kit.render(request, "resilience.html", s, mode="card", cname=name, card=None,
                                   message=t["rs_unavailable"], now=self.now())
        assert card is not None
        categories = [rated(c, t) | {"indicators": [self.indicator(i, t) for i in c["indicators"]]}
                      for c in card["categories"]]
        peoples: dict[str, Any] = next((i for c in categories for i in c["indicators"]
                                        if i["id"] == "peoples_area"), {})
        try:
            live = {"overall": card["overall"]["score"], **{c["id"]: c["score"] for c in card["categories"]}}
            trend = self.trend(await self.view.resilience.trend(cid), t, {c["id"]: c["name"] for c in categories},
                               live, self.view.now_ns())
        except Refused:
            trend = {"line": t["rs_trend_unavailable"], "state": "none"}
        chart = curve_chart(peoples, t)
        if chart is not None:
            chart["when"] = fill(t["rs_curve_span"], start=self.clock(peoples["event_start"]),
                                 end=self.clock(peoples["event_end"]), span=chart["span"])
        return self.kit.render(request, "resilience.html", s, mode="card", cname=name, cid=cid,
                               overall=rated(card["overall"], t), categories=categories, peoples=peoples,
                               chart=chart, trend=trend, card=card, street=s["r"] in STREET, now=self.now(),
                               as_of=self.clock(card["as_of"], "%Y-%m-%d %H:%M"))

    async def street_page(self, request: Request, s: dict[str, Any], who: Principal) -> HTMLResponse:
        """The street's communities side by side: overall and each category, rated in words."""
        lang = self.kit.lang_of(request)
        t = words(lang)
        rows: list[dict[str, Any]] = []
        heads: list[tuple[str, str]] = []
        try:
            for cid, name in self.communities(who):
                card = await self.view.resilience.card(cid, lang)
                assert card is not None
                heads = heads or [(c["id"], c["name"]) for c in card["categories"]]
                rows.append({"id": cid, "name": name, "overall": rated(card["overall"], t),
                             "categories": [rated(c, t) for c in card["categories"]]})
        except Refused:
            return self.kit.render(request, "resilience.html", s, mode="street", rows=[], heads=[],
                                   message=t["rs_unavailable"], now=self.now())
        return self.kit.render(request, "resilience.html", s, mode="street", rows=rows, heads=heads,
                               now=self.now())

    def now(self) -> str:
        """The service's time in the site's time zone (the top bar's 更新于)."""
        return datetime.fromtimestamp(self.view.now_ns() / NS, self.zone).isoformat(timespec="milliseconds")


def router(kit: PageKit) -> APIRouter:
    """/resilience: the street's comparison, or (for a community, a grid worker, or ?community=) one card."""
    r = APIRouter(include_in_schema=False)
    pages = ResiliencePages(kit)
    kit.env.globals["sees_resilience"] = sees_resilience  # the top bar's 韧性评估 link

    @r.get("/resilience", response_class=HTMLResponse)
    async def resilience(request: Request) -> Response:
        s, who = kit.viewer(request)
        if not sees_resilience(who.role):
            return kit.render_404(request, s)
        mine = [cid for cid, _name in pages.communities(who)]
        asked = request.query_params.get("community")
        if asked is None and who.role in STREET and (who.scope is None or who.scope.community is None):
            return await pages.street_page(request, s, who)
        cid = asked if asked is not None else (who.scope.community if who.scope else None)
        if cid not in mine:  # another community's card is not found, as one that does not exist
            return kit.render_404(request, s)
        return await pages.card_page(request, s, cid)

    return r
