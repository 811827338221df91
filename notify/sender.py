"""Channel sends on an event loop of their own thread.

Under load the service's event loop runs the ingest pipeline's pieces (a delivery take, a piece of
a rule batch) between everything else, each a few milliseconds long. One webhook POST through
httpx takes about seven turns of a loop (connection checkout, write, read of the head, read of the
body, release), so in the service's loop a notification waited behind tens of milliseconds of
ingest before it reached its receiver. On a loop of its own it waits only for the GIL, which the
event loop's thread gives up at least every switch interval (app/service.py).

Everything a channel does runs on this loop: its HTTP client and its own state (a robot's quota)
are used from this thread only. The deliverer awaits each send from the service's loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class SenderThread:
    """An event loop in a daemon thread; `run(coro)` runs a coroutine there and awaits its result."""

    def __init__(self, name: str = "alert-sender") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    @property
    def alive(self) -> bool:
        """Whether the thread's loop is running."""
        return self._thread.is_alive()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """The coroutine's result, run on the sender's loop; cancelling the caller cancels it there."""
        return await self.submit(coro)

    def submit(self, coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        """Start the coroutine on the sender's loop now, from the caller's loop: its result as a
        future of the caller's loop (cancelling that cancels it there)."""
        if not self.alive:
            coro.close()
            raise RuntimeError("the alert sender thread has stopped")
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def stop(self, *last: Coroutine[Any, Any, object]) -> None:
        """Run `last` on the sender's loop (closing what it used, e.g. the HTTP client), then stop it."""
        for coro in last:
            await self.run(coro)
        if self.alive:
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join, 5)
