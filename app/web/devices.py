"""A device's page: its last hour of readings as charts, its state and its recent alerts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from app.web.kit import PageKit
from kernel.clock import NS, rfc3339


def router(kit: PageKit) -> APIRouter:
    """/device/{id}."""
    r = APIRouter(include_in_schema=False)
    view = kit.view

    @r.get("/device/{device_id}", response_class=HTMLResponse)
    async def device_page(request: Request, device_id: str) -> Response:
        s, who = kit.viewer(request)
        d = next((x for x in view.devices(who.scope) if x["device_id"] == device_id), None)
        if d is None:
            return kit.render_404(request, s)
        readings = await view.readings(who.scope, device_id, view.now_ns() - 3600 * NS, 500) or []
        past = [a for a in await view.alerts(who.scope, community=d["community"], limit=200)
                if a["device_id"] == device_id][:30]
        return kit.render(request, "device.html", s, d=d, charts=charts(readings), alerts=past,
                          now=rfc3339(view.now_ns()), unregistered=kit.unregistered_count(who))

    return r


def charts(readings: list[tuple[int, dict[str, Any]]], width: int = 600, height: int = 160) -> list[dict[str, Any]]:
    """One SVG polyline per numeric field of the readings."""
    series: dict[str, list[tuple[int, float]]] = {}
    for ts, fields in readings:
        for k, v in fields.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                series.setdefault(k, []).append((ts, float(v)))
    out = []
    for name, points in sorted(series.items()):
        if len(points) < 2:
            continue
        t0, t1 = points[0][0], points[-1][0] or 1
        lo, hi = min(v for _, v in points), max(v for _, v in points)
        span_t, span_v = max(t1 - t0, 1), (hi - lo) or 1.0
        pts = " ".join(f"{(t - t0) / span_t * width:.1f},{height - (v - lo) / span_v * height:.1f}"
                       for t, v in points)
        out.append({"name": name, "points": pts, "lo": lo, "hi": hi, "last": points[-1][1], "n": len(points),
                    "width": width, "height": height})
    return out
