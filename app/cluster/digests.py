"""The latest digest of every partition (app/cluster/digest.py), as this instance watches the bucket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from app.cluster import digest
from app.cluster.digest import Digest
from app.cluster.tasks import end

log = logging.getLogger("cbrain.cluster")

# A digest not renewed for this long says its partition's holder has stopped serving it.
STALE_S = 5.0


class Digests:
    """Watches `{name}-views`: the newest digest of each partition, by partition."""

    def __init__(self, js: Any, name: str, replicas: int = 1) -> None:
        self.js, self.name, self.replicas = js, name, replicas
        self.latest: dict[int, Digest] = {}
        self.version = 0  # raised by every digest taken
        self.ready = asyncio.Event()  # set once the bucket's current digests are read
        self.unreadable = 0
        self._changed = asyncio.Event()
        self._watcher: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Read the bucket's digests, then watch it."""
        kv = await digest.views_bucket(self.js, self.name, self.replicas)
        self._watcher = await kv.watchall()
        self._task = asyncio.create_task(self._watch(), name="view-digests")

    async def stop(self) -> None:
        """Stop watching."""
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await self._watcher.stop()
        await end(self._task)

    async def _watch(self) -> None:
        async for entry in self._watcher:
            if entry is None:  # (the bucket's current values are all in: newer ones are timed as they come)
                self.ready.set()
                continue
            self.take(entry.key, entry.value, entry.operation)

    def take(self, key: str, value: bytes | None, operation: str | None) -> None:
        """One update of the bucket."""
        if not key.startswith("p") or not key[1:].isdigit():
            return
        p = int(key[1:])
        if operation in ("DEL", "PURGE") or not value:
            self.latest.pop(p, None)
        else:
            try:
                d = digest.parse(value)
            except Exception as exc:
                self.unreadable += 1
                log.warning("digest of partition %d unreadable: %s", p, exc)
                return
            if self.ready.is_set():
                d.received = time.monotonic()
            self.latest[p] = d
        self.version += 1
        self._changed.set()

    async def changed(self, within_s: float) -> bool:
        """Wait (at most within_s) for the next digest; whether one came."""
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), within_s)
            return True
        return False

    def serving(self, p: int) -> Digest | None:
        """The partition's digest while its holder serves it (renewed, not marked stopped), else None."""
        d = self.latest.get(p)
        return d if d is not None and not d.stopped and d.age_s() <= STALE_S else None

    def all(self) -> list[Digest]:
        """The latest digest of every partition that has one, by partition."""
        return [self.latest[p] for p in sorted(self.latest)]
