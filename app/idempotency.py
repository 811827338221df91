"""Actions taken once: a retry with the same idempotency key answers what the first attempt did."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from kernel.errors import Reason, Refused

# Keys remembered (a poor network retries within minutes; the oldest are forgotten first).
KEPT = 10_000


class ActionLedger:
    """The outcome of each action by its key: the first attempt runs, retries get its answer."""

    def __init__(self, kept: int = KEPT) -> None:
        self._done: OrderedDict[str, tuple[Reason | None, Any]] = OrderedDict()
        self._running: dict[str, asyncio.Future[tuple[Reason | None, Any]]] = {}
        self.kept = kept

    async def run(self, key: str | None, action: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """Run action once per key (no key: every time); raise Refused as the first attempt did."""
        if key is None:
            return await action()
        found = self._done.get(key)
        if found is None and key in self._running:
            found = await asyncio.shield(self._running[key])
        if found is None:
            future: asyncio.Future[tuple[Reason | None, Any]] = asyncio.get_running_loop().create_future()
            self._running[key] = future
            try:
                found = (None, await action())
            except Refused as exc:
                found = (exc.reason, str(exc))
            finally:
                self._running.pop(key, None)
            future.set_result(found)
            self._done[key] = found
            while len(self._done) > self.kept:
                self._done.popitem(last=False)
        reason, body = found
        if reason is not None:
            raise Refused(reason, str(body))
        return dict(body) if isinstance(body, dict) else {}
