"""The live instances of the cluster, and which of them should hold each partition.

Each instance puts its record into a key-value bucket every BEAT_S; the bucket forgets a record
failover_s after it was written, so the keys present are the live instances. Every instance ranks
the live ones for each partition the same way (rendezvous hashing: a join or a leave moves only the
partitions of that instance), so they agree on the wanted holder without talking to each other.

The beats are also the instance's lease: while none has been stored for LEASE_SHARE of failover_s,
the instance is not sure it still holds its partitions and writes nothing (app/gate.py). The beats go
from a thread of their own, on a connection of their own: a busy event loop (partitions starting, a
burst of readings) does not lose the lease, a frozen or dead process does. A beat that comes after
the lease ran out does not renew it by itself: the instance first stops every partition it held
(`lapsed`, then `resume()`), since another instance may hold them by now.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from typing import Any

import nats
import orjson
from nats.js.api import KeyValueConfig
from nats.js.errors import NotFoundError

log = logging.getLogger("cbrain.cluster")

BEAT_S = 1.0
# The lease: beats unstored for this share of failover_s shut the instance's gate (the others take
# its partitions only after the whole of failover_s).
LEASE_SHARE = 0.6


def wanted_holder(partition: int, live: list[str]) -> str | None:
    """The live instance that should hold the partition (the same answer on every instance)."""
    if not live:
        return None
    return max(live, key=lambda name: hashlib.sha256(f"{partition}/{name}".encode()).digest())


class Members:
    """This instance's beats (from their own thread), and the records of the live instances."""

    def __init__(self, servers: list[str], bucket: str, me: str, failover_s: float, replicas: int) -> None:
        self.servers = servers
        self.bucket = bucket
        self.me = me
        self.failover_s = failover_s
        self.lease_s = failover_s * LEASE_SHARE
        self.replicas = replicas
        self.record: dict[str, Any] = {}  # what the next beat says of this instance (set by the instance)
        self.fresh_until = 0.0  # monotonic: the lease, extended by each stored beat
        self.lapsed = False  # the lease ran out: no beat renews it until resume()
        self.live: dict[str, dict[str, Any]] = {}
        self.beat_error: str | None = None
        self.beats = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._opened = threading.Event()
        self._open_error: BaseException | None = None

    def fresh(self) -> bool:
        """Whether this instance's lease holds (its last beat was stored recently enough)."""
        return not self.lapsed and time.monotonic() < self.fresh_until

    def resume(self) -> None:
        """The instance stopped what it held when the lease ran out: beats may renew the lease again."""
        self.lapsed = False

    async def start(self) -> None:
        """Start beating; return once the first beat is stored (raise what stopped it)."""
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="cluster-beats", daemon=True)
        self._thread.start()
        await asyncio.to_thread(self._opened.wait, 60)
        if self._open_error is not None:
            raise self._open_error
        if not self._opened.is_set():
            raise TimeoutError("the cluster's members bucket did not answer within 60 s")

    async def stop(self) -> None:
        """Stop beating and take this instance's record out (the others take over at once)."""
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10)

    async def _run(self) -> None:
        try:
            nc = await nats.connect(servers=self.servers, name=f"{self.me}-beats", max_reconnect_attempts=-1,
                                    reconnect_time_wait=0.5, connect_timeout=2)
            js = nc.jetstream(timeout=max(1.0, self.lease_s / 2))
            try:
                kv = await js.key_value(self.bucket)
            except NotFoundError:
                kv = await js.create_key_value(KeyValueConfig(bucket=self.bucket, history=1, ttl=self.failover_s,
                                                              replicas=self.replicas))
            await self._beat(js, kv)
        except BaseException as exc:
            self._open_error = exc
            self._opened.set()
            return
        self._opened.set()
        try:
            while not self._stop.is_set():
                await asyncio.sleep(BEAT_S)
                await self._beat(js, kv)
        finally:
            try:
                await kv.delete(self.me)
            except Exception as exc:
                log.warning("could not take this instance out of the cluster's members: %s", exc)
            await nc.close()

    async def _beat(self, js: Any, kv: Any) -> None:
        sent = time.monotonic()
        if self.fresh_until and sent > self.fresh_until:
            self.lapsed = True  # (the instance stops its partitions, then resume())
        try:
            await kv.put(self.me, orjson.dumps(self.record | {"beat_ms": int(time.time() * 1000)}))
        except Exception as exc:  # (a node down: nats-py reconnects meanwhile; the lease runs out)
            self.beat_error = f"{type(exc).__name__}: {exc}"
            return
        self.beat_error = None
        self.fresh_until = sent + self.lease_s
        self.beats += 1
        try:
            live = await _records(js, kv, self.bucket, [name for name in self.live if name != self.me])
        except Exception as exc:  # (the last list stands)
            self.beat_error = f"reading the members: {type(exc).__name__}: {exc}"
            return
        # This instance's own beat was just stored: it is live whatever the listing says.
        live.setdefault(self.me, self.record)
        self.live = live



async def _records(js: Any, kv: Any, bucket: str, known: list[str]) -> dict[str, dict[str, Any]]:
    """The members' records: the keys of the bucket's stream state (one request; nats-py's `keys()` is a
    watch that misses a key whose record is replaced while it runs, which made beating instances look
    gone), and the `known` instances read by name besides. A read by name finds nothing once the record
    expired (failover_s after the last beat) or was deleted (the instance stopped)."""
    info = await js.stream_info(f"KV_{bucket}", subjects_filter=f"$KV.{bucket}.>")
    names = [subject.split(".", 2)[2] for subject in (info.state.subjects or {})]
    live = {}
    for name in [*names, *(n for n in known if n not in names)]:
        try:
            entry = await kv.get(name)
        except Exception:  # (deleted at a clean shutdown, or expired since the listing)
            continue
        if entry.value:
            live[name] = orjson.loads(entry.value)
    return live
