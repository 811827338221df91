"""The body of a Server-Sent Events stream, for the API's notifications and the pages' alert changes:
what a queue holds, a heartbeat when it is quiet, until the client leaves or the service stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from starlette.requests import Request

from app.view import ServiceView

KEEP_ALIVE_S = 15.0


async def sse(request: Request, view: ServiceView, queue: asyncio.Queue[bytes], unsubscribe: Callable[[], None],
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


def offer(queue: asyncio.Queue[bytes], item: bytes) -> None:
    """Queue an event; a reader that falls behind loses the oldest, not the service."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(item)
