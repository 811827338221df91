"""Who holds each partition, and its checkpoints: the fencing of the cluster.

A partition's record (key `p<N>` of a key-value bucket) names its holder, an epoch raised by every
claim, and the object (in an object store) with the partition's latest checkpoint: its whole state
database as the holder last committed it. Every change of the record is a compare-and-set on its
revision: a claim, a checkpoint and a release each succeed only if nobody wrote the record since the
writer last read it. An instance that stalled past its lease (a frozen process, a lost network) finds
its next checkpoint refused, knows it no longer holds the partition, and acknowledges nothing.
"""

from __future__ import annotations

import logging
import time
import zlib
from dataclasses import asdict, dataclass, replace
from typing import Any

import orjson
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError

log = logging.getLogger("cbrain.cluster")

COMPRESSED = b"CBZ1"  # what a compressed checkpoint starts with


@dataclass(frozen=True, slots=True)
class Hold:
    """A partition's record: its holder (None: released), the claim's epoch, its latest checkpoint."""

    partition: int
    holder: str | None
    epoch: int
    snapshot: str | None  # the object holding the latest checkpoint
    revision: int  # the record's revision in the bucket (what the next compare-and-set must name)
    at_ms: int = 0  # when the record was written (wall clock, for people)
    released_by: str | None = None  # who gave it up last (for people: a handover's "from")


class Fenced(Exception):
    """Somebody else wrote the partition's record: this instance no longer holds it."""


class Holds:
    """The partitions' records and their checkpoints."""

    def __init__(self, js: Any, name: str, replicas: int) -> None:
        self.js = js
        self.name = name
        self.replicas = replicas
        self.kv: Any = None
        self.obs: Any = None

    async def open(self) -> None:
        """The bucket and the object store (made on first use)."""
        from nats.js.api import KeyValueConfig, ObjectStoreConfig

        try:
            self.kv = await self.js.key_value(f"{self.name}-holds")
        except NotFoundError:
            self.kv = await self.js.create_key_value(KeyValueConfig(
                bucket=f"{self.name}-holds", history=1, replicas=self.replicas))
        try:
            self.obs = await self.js.object_store(f"{self.name}-checkpoints")
        except NotFoundError:
            self.obs = await self.js.create_object_store(f"{self.name}-checkpoints", config=ObjectStoreConfig(
                bucket=f"{self.name}-checkpoints", replicas=self.replicas))

    async def read(self, partition: int) -> Hold | None:
        """The partition's record (None: never held)."""
        try:
            entry = await self.kv.get(f"p{partition}")
        except KeyNotFoundError:
            return None
        d = orjson.loads(entry.value)
        return Hold(partition, d["holder"], d["epoch"], d["snapshot"], entry.revision, d.get("at_ms", 0),
                    d.get("released_by"))

    async def _write(self, hold: Hold, last: int | None) -> Hold:
        record = asdict(hold) | {"at_ms": int(time.time() * 1000)}
        value = orjson.dumps({k: record[k] for k in ("holder", "epoch", "snapshot", "at_ms", "released_by")})
        try:
            revision = (await self.kv.create(f"p{hold.partition}", value) if last is None
                        else await self.kv.update(f"p{hold.partition}", value, last=last))
        except KeyWrongLastSequenceError:
            raise Fenced(f"partition {hold.partition}: its record changed since revision {last}") from None
        except Exception as exc:
            if "wrong last sequence" in str(exc):
                raise Fenced(f"partition {hold.partition}: its record changed since revision {last}") from None
            raise
        return replace(hold, revision=revision, at_ms=record["at_ms"])

    async def claim(self, partition: int, me: str, current: Hold | None) -> Hold:
        """Take the partition (raise Fenced if its record changed since `current` was read)."""
        if current is None:
            return await self._write(Hold(partition, me, 1, None, 0), None)
        return await self._write(replace(current, holder=me, epoch=current.epoch + 1), current.revision)

    async def checkpoint(self, hold: Hold, state: bytes, n: int) -> Hold:
        """Store the partition's state and point its record at it (raise Fenced if it is not ours any more)."""
        name = f"p{hold.partition}-e{hold.epoch}-{n}"
        # Compressed: a state database is mostly free pages and repeated keys (about a fifth of its size),
        # and every checkpoint is stored on three nodes.
        await self.obs.put(name, COMPRESSED + zlib.compress(state, 1))
        try:
            new = await self._write(replace(hold, snapshot=name), hold.revision)
        except Fenced:
            await self._forget(name)
            raise
        if hold.snapshot and hold.snapshot != name:
            await self._forget(hold.snapshot)
        return new

    async def release(self, hold: Hold) -> Hold:
        """Give the partition up (after a last checkpoint), so that its next holder need not wait."""
        return await self._write(replace(hold, holder=None, released_by=hold.holder), hold.revision)

    async def load(self, hold: Hold) -> bytes | None:
        """The partition's latest checkpoint (None: it has none yet)."""
        if hold.snapshot is None:
            return None
        data = bytes((await self.obs.get(hold.snapshot)).data)
        return zlib.decompress(data[len(COMPRESSED):]) if data.startswith(COMPRESSED) else data

    async def _forget(self, name: str) -> None:
        try:
            await self.obs.delete(name)
        except Exception as exc:  # (an orphan object costs space, not correctness)
            log.debug("checkpoint %s not deleted: %s", name, exc)
