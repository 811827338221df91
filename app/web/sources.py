"""The devices heard from through a source (a Zigbee2MQTT hub, ChirpStack, Tasmota, Shelly, CTWing,
OneNET) that nobody registered (待登记设备): each address with its source, when it was first and last
heard, how often, a sample of what it sent, and the `devices:` line an installer copies into the site
file. A grid worker has none: an unregistered device is in no grid yet."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from app.auth import Principal
from app.view import ServiceView
from app.web.kit import PageKit
from app.words import span_words, words
from kernel.clock import NS, rfc3339

# The keys of a `devices:` line left for the installer to fill in (`building: ?`).
TO_FILL = re.compile(r"\b(id|type|community|building): \?")


def sees_unregistered(who: Principal) -> bool:
    """Whether a role has the list: everybody but a grid worker (whose scope is one grid)."""
    return who.role != "grid_worker" and (who.scope is None or who.scope.grid is None)


def seen(text: str | None, now_ns: int, zone: ZoneInfo, t: dict[str, str]) -> dict[str, str]:
    """A time heard as people read it: how long ago, and the date and time in the site's time zone."""
    if not text:
        return {"iso": "", "ago": "–", "at": ""}
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    ago = span_words(max(0.0, now_ns / NS - at.timestamp()), t)
    return {"iso": text, "ago": t["ago_fmt"].format(span=ago), "at": at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")}


def rows(view: ServiceView, who: Principal, lang: str) -> list[dict[str, Any]]:
    """The unregistered addresses in scope, the most recently heard first, with their words."""
    t, now, zone = words(lang), view.now_ns(), ZoneInfo(view.settings.timezone)
    out = []
    for u in view.sources.unregistered(who.scope):
        c = view.site.communities.get(u["community"]) if u["community"] else None
        out.append({**u, "source_words": t.get(f"src_{u['source_type']}", u["source_type"]),
                    "community_name": c.name if c is not None else u["community"],
                    "first": seen(u["first_seen"], now, zone, t), "last": seen(u["last_seen"], now, zone, t),
                    "to_fill": [t[f"fill_{k}"] for k in TO_FILL.findall(u["devices_line"])],
                    "key": f"{u['source']}/{u['address']}/{u['port'] or ''}"})
    return out


def router(kit: PageKit) -> APIRouter:
    """/devices/unregistered."""
    r = APIRouter(include_in_schema=False)
    view = kit.view

    @r.get("/devices/unregistered", response_class=HTMLResponse)
    async def unregistered(request: Request) -> Response:
        s, who = kit.viewer(request)
        if not sees_unregistered(who):
            resp = kit.render(request, "missing.html", s, message=words(kit.lang_of(request))["unreg_grid"],
                              now=rfc3339(view.now_ns()))
            resp.status_code = 403
            return resp
        return kit.render(request, "unregistered.html", s, items=rows(view, who, kit.lang_of(request)),
                          now=rfc3339(view.now_ns()))

    return r
