"""GET /api/v1/events: Server-Sent Events of notifications as they are committed."""

# No `from __future__ import annotations`: FastAPI resolves the local dependency alias at definition time.
import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from app.auth import Principal, TokenBook
from app.http.caller import bearer
from app.view import NotificationOut, ServiceView

KEEP_ALIVE_S = 15.0
QUEUE = 1000


async def sse(request: Request, view: ServiceView, queue: "asyncio.Queue[bytes]", unsubscribe: Callable[[], None],
              first: bytes = b": connected\n\n", heartbeat: Callable[[], bytes] | None = None,
              every_s: float = KEEP_ALIVE_S) -> AsyncIterator[bytes]:
    """The body of an event stream: what the queue holds, and a heartbeat when it is quiet."""
    try:
        yield first
        stopping = asyncio.ensure_future(view.stopping.wait())
        try:
            while not await request.is_disconnected() and not stopping.done():
                got = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({got, stopping}, timeout=every_s, return_when=asyncio.FIRST_COMPLETED)
                if got in done:
                    yield got.result()
                else:
                    got.cancel()
                    if not done:
                        yield heartbeat() if heartbeat is not None else b": keep-alive\n\n"
        finally:
            stopping.cancel()
    finally:
        unsubscribe()


def offer(queue: "asyncio.Queue[bytes]", item: bytes) -> None:
    """Queue an event; a reader that falls behind loses the oldest, not the service."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(item)


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
