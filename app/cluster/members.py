"""The live instances of the cluster, and which of them should hold each partition.

Each instance puts its record into a key-value bucket every BEAT_S; the bucket forgets a record
failover_s after it was written, so the keys present are the live instances. Every instance ranks
the live ones for each partition the same way (rendezvous hashing: a join or a leave moves only the
partitions of that instance), so they agree on the wanted holder without talking to each other.

The instance's own beats are also its lease: while none has been stored for LEASE_SHARE of
failover_s, the instance is not sure it still holds its partitions and writes nothing (app/gate.py).
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import orjson
from nats.js.errors import NoKeysError, NotFoundError

log = logging.getLogger("cbrain.cluster")

BEAT_S = 1.0
# The lease: beats unstored for this share of failover_s shut the instance's gate (the others take
# its partitions only after the whole of failover_s).
LEASE_SHARE = 0.5


def wanted_holder(partition: int, live: list[str]) -> str | None:
    """The live instance that should hold the partition (the same answer on every instance)."""
    if not live:
        return None
    return max(live, key=lambda name: hashlib.sha256(f"{partition}/{name}".encode()).digest())


class Members:
    """This instance's beats, and the records of the live instances."""

    def __init__(self, js: Any, bucket: str, me: str, failover_s: float, replicas: int) -> None:
        self.js = js
        self.bucket = bucket
        self.me = me
        self.failover_s = failover_s
        self.replicas = replicas
        self.kv: Any = None
        self.fresh_until = 0.0  # monotonic: the lease, extended by each stored beat
        self.live: dict[str, dict[str, Any]] = {}
        self.beat_error: str | None = None

    async def open(self) -> None:
        """The bucket (made on first use)."""
        from nats.js.api import KeyValueConfig

        try:
            self.kv = await self.js.key_value(self.bucket)
        except NotFoundError:
            self.kv = await self.js.create_key_value(KeyValueConfig(
                bucket=self.bucket, history=1, ttl=self.failover_s, replicas=self.replicas))

    def fresh(self) -> bool:
        """Whether this instance's lease holds (its last beat was stored recently enough)."""
        return time.monotonic() < self.fresh_until

    async def beat(self, record: dict[str, Any]) -> bool:
        """Store this instance's record; True if it was stored."""
        sent = time.monotonic()
        try:
            await self.kv.put(self.me, orjson.dumps(record | {"beat_ms": int(time.time() * 1000)}))
        except Exception as exc:  # (a node down: nats-py is reconnecting; the lease runs out meanwhile)
            self.beat_error = f"{type(exc).__name__}: {exc}"
            return False
        self.beat_error = None
        self.fresh_until = sent + self.failover_s * LEASE_SHARE
        return True

    async def refresh(self) -> dict[str, dict[str, Any]]:
        """The live instances' records, by name."""
        try:
            names = await self.kv.keys()
        except NoKeysError:
            names = []
        live = {}
        for name in names:
            try:
                entry = await self.kv.get(name)
            except Exception:  # (expired between the listing and the read)
                continue
            if entry.value:
                live[name] = orjson.loads(entry.value)
        self.live = live
        return live

    async def leave(self) -> None:
        """Take this instance's record out at a clean shutdown (the others take over at once)."""
        try:
            await self.kv.delete(self.me)
        except Exception as exc:
            log.warning("could not take this instance out of the cluster's members: %s", exc)
