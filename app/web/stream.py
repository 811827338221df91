"""/stream: the pages' live updates (Server-Sent Events) of alert changes in the viewer's scope and
language, caught up after a reconnect, with a heartbeat of the buildings' device counts and the door-knock
counts of red alerts (and, asked for with `strip=1` by the wall of an instance of a cluster, its cluster
strip rendered again)."""

from __future__ import annotations

import asyncio

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from app.event_stream import offer, sse
from app.view import AlertChange
from app.web.cluster_strip import cluster_strip
from app.web.kit import PageKit
from app.web.resources import knock_counts
from app.web.sessions import principal_of
from kernel.clock import rfc3339

HEARTBEAT_S = 5.0


def router(kit: PageKit) -> APIRouter:
    """/stream."""
    r = APIRouter(include_in_schema=False)
    view = kit.view

    @r.get("/stream")
    async def stream(request: Request) -> Response:
        s = kit.page_session(request)
        if s is None:
            return JSONResponse({"detail": "no session"}, status_code=401)
        who = principal_of(s)
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=2000)
        aw = kit.words_of(request)

        def frame(c: AlertChange) -> bytes:
            change = orjson.loads(c.data)
            a = change["alert"]
            a["place"] = aw.place(a)
            a["summary"] = aw.summary(a)
            return b"id: " + str(c.seq).encode() + b"\nevent: alert\ndata: " + orjson.dumps(change) + b"\n\n"

        def listener(batch: list[AlertChange]) -> None:
            for c in batch:
                if view.site.in_scope(who.scope, c.community, c.grid):
                    offer(queue, frame(c))

        unsubscribe = view.subscribe_changes(listener)
        first = b"retry: 1000\n\n"
        last = request.headers.get("last-event-id") or request.query_params.get("after")
        if last and last.isdigit():
            missed = view.changes_after(int(last))
            if missed is None:
                first += b"event: reload\ndata: {}\n\n"  # too much was missed: the page loads afresh
            else:
                first += b"".join(frame(c) for c in missed if view.site.in_scope(who.scope, c.community, c.grid))

        strip = request.query_params.get("strip") == "1"  # (the wall's, in a cluster)

        def heartbeat() -> bytes:
            counts = {f"{b['community']}/{b['id']}": [b["online"], b["offline"], b["unknown"]]
                      for b in kit.buildings(who)}
            beat = {"now": rfc3339(view.now_ns()), "buildings": counts, "unregistered": kit.unregistered_count(who),
                    "knocks": knock_counts(view, who, view.open_alerts(who.scope))}  # 上门确认: counts only
            shown = cluster_strip(view, kit.lang_of(request)) if strip else None
            if shown is not None:
                beat["cluster"] = kit.fragment(request, "cluster_strip.html", strip=shown)
            return b"event: heartbeat\ndata: " + orjson.dumps(beat) + b"\n\n"

        return StreamingResponse(sse(request, view, queue, unsubscribe, first=first + heartbeat(),
                                     heartbeat=heartbeat, every_s=HEARTBEAT_S),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return r
