"""GET /api/v1/events: Server-Sent Events of notifications as they are committed."""

# No `from __future__ import annotations`: FastAPI resolves the local dependency alias at definition time.
import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from app.auth import Principal, TokenBook
from app.event_stream import offer, sse
from app.http.caller import bearer
from app.view import NotificationOut, ServiceView

QUEUE = 1000


def router(view: ServiceView, tokens: TokenBook) -> APIRouter:
    """The live stream of notifications."""
    r = APIRouter(prefix="/api/v1")
    Caller = Annotated[Principal, Depends(bearer(tokens))]

    @r.get("/events", summary="Server-Sent Events: notifications as they are committed")
    async def events(who: Caller, request: Request) -> StreamingResponse:
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=QUEUE)

        def listener(notifications: list[NotificationOut]) -> None:
            for n in notifications:
                if who.recipient is not None and n.recipient != who.recipient:
                    continue
                if not view.site.in_scope(who.scope, n.community, n.grid):
                    continue
                offer(queue, b"id: " + n.event_id.encode() + b"\nevent: notification\ndata: " + n.payload + b"\n\n")

        unsubscribe = view.subscribe_notifications(listener)
        return StreamingResponse(sse(request, view, queue, unsubscribe), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return r
