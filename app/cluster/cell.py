"""One partition held by this instance: the single-process service over the partition's communities.

A held partition runs the same pipeline, rules, alerts and delivery as `cbrain run` alone, on a state
database of its own, fed by the partition's stream instead of the broker. Its state moves with it:

    claim (holds.py) ─► last checkpoint ─► state database ─► Service(listen=False, source, gate) ─┐
         ▲                                                                                      │
         └──── every checkpoint_s: the database's bytes ─► object store + record (compare-and-set) ◄┘
                  └─► then the stream is acknowledged up to what that checkpoint holds

Taking a partition over is a restart of the single process from its last checkpoint: what it did
after the checkpoint is read again from the stream; readings already in the checkpoint are dropped
by their `seq`, alerts keep their ids (rules/machine.py: episode ids come from the readings' time),
and notifications keep theirs, which receivers deduplicate (X-CB-Event-Id).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.cluster.holds import Fenced, Hold, Holds
from app.cluster.tasks import end, ended
from app.service import Service
from ingest.nats_source import NatsPartitionSource
from kernel.clock import Clock
from kernel.cluster import partition_of, subject_map
from kernel.settings import Settings

log = logging.getLogger("cbrain.cluster")


def partition_settings(settings: Settings, partition: int, state_dir: Path, instance: str) -> Settings:
    """The site file as one partition sees it: its communities and their devices, its own state."""
    assert settings.cluster is not None
    n = settings.cluster.partitions
    communities = [c for c in settings.communities if partition_of(c.id, n) == partition]
    ids = {c.id for c in communities}
    return settings.model_copy(update={
        "communities": communities,
        "devices": [d for d in settings.devices if d.community in ids],
        "state_dir": str(state_dir),
        "mqtt": settings.mqtt.model_copy(update={"client_id": f"{instance}-p{partition}"}),
        "ingest": settings.ingest.model_copy(update={"writer": "inline"}),
    })


class Cell:
    """A held partition: its service, its stream, its checkpoints."""

    def __init__(self, hold: Hold, *, settings: Settings, holds: Holds, subscription: Any, state_dir: Path,
                 clock: Clock, lease: Callable[[], bool], outstanding: int) -> None:
        assert settings.cluster is not None
        c = settings.cluster
        self.partition = hold.partition
        self.hold = hold
        self.holds = holds
        self.state_dir = state_dir
        self.checkpoint_s = c.checkpoint_s
        self.fenced = False
        self.lease = lease
        subjects = subject_map(settings.mqtt.prefix, c.partitions)
        self.source = NatsPartitionSource(subscription, generation=hold.epoch, topic_of=subjects.topic_of,
                                          may_pull=self.gate, outstanding=outstanding,
                                          barrier_s=2 * c.ack_wait_s)
        self.settings = partition_settings(settings, hold.partition, state_dir, c.instance)
        self.clock = clock
        self.service: Service | None = None
        self._run: asyncio.Task[None] | None = None
        self._checkpoints: asyncio.Task[None] | None = None
        self._n = 0
        self._checkpointing = asyncio.Lock()
        self._changes_at_checkpoint = -1  # the state database's total_changes when the last checkpoint was taken
        self.checkpoints = 0
        self.last_checkpoint_ns: int | None = None
        self.started_s = time.monotonic()
        self.ready_s: float | None = None  # how long the takeover took, once running

    def gate(self) -> bool:
        """Whether this instance may act for the partition: not fenced, and its lease holds."""
        return not self.fenced and self.lease()

    async def start(self, state: bytes | None) -> None:
        """Lay the checkpoint down as the state database and start the partition's service."""
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self.state_dir.mkdir(parents=True)
        if state is not None:
            (self.state_dir / "ingest.db").write_bytes(state)
        self.service = Service(self.settings, clock=self.clock, listen=False, source=self.source, gate=self.gate)
        self.service.warnings = []  # (the instance said them once for the whole site)
        self._run = asyncio.create_task(self.service.run(), name=f"partition-{self.partition}")
        ready = asyncio.create_task(self.service.ready.wait())
        await asyncio.wait({ready, self._run}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            await self._run  # (it ended: raise what stopped it)
        self.ready_s = time.monotonic() - self.started_s
        self._checkpoints = asyncio.create_task(self._checkpoint_loop(), name=f"checkpoints-{self.partition}")

    def running(self) -> bool:
        """Whether the partition's service runs."""
        return self._run is not None and not self._run.done()

    async def checkpoint(self) -> None:
        """Put the partition's state into the cluster, then acknowledge what it holds (raise Fenced)."""
        async with self._checkpointing:  # (the loop's and an action's: one record revision at a time)
            await self._checkpoint()

    async def _checkpoint(self) -> None:
        assert self.service is not None
        if not self.lease():
            raise Fenced(f"partition {self.partition}: the lease ran out")
        mark = self.source.committed_mark()
        changes = self.service.statedb.conn.total_changes  # (every write of the partition's state is on it)
        if mark == 0 and changes == self._changes_at_checkpoint:
            return  # nothing happened since the last one: it still holds
        state = await self.service.state.snapshot()
        self._changes_at_checkpoint = changes
        self._n += 1
        self.hold = await self.holds.checkpoint(self.hold, state, self._n)
        self.checkpoints += 1
        self.last_checkpoint_ns = self.clock.now_ns()
        await self.source.acks_upto(mark)

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(self.checkpoint_s)
            try:
                await self.checkpoint()
            except Fenced as exc:
                log.warning("%s: this instance no longer holds it; stopping it without writing", exc)
                self.fenced = True
                await self._stop_service()
                return
            except Exception as exc:  # (a node down: the next checkpoint tries again; acks wait for it)
                log.warning("partition %d: checkpoint failed, retrying: %s", self.partition, exc)

    async def _stop_service(self) -> None:
        if self.service is not None:
            self.service.stop()
        if self._run is not None:
            await ended(self._run)

    async def release(self) -> None:
        """Stop the partition's service, checkpoint what it did, and give the partition up."""
        async with self._checkpointing:
            # (not cancelled half-way through a checkpoint, whose record may be written with a revision
            # this cell would never learn: its last checkpoint and release would find themselves fenced,
            # leave the record naming this instance, and the partition would stay with nobody)
            await end(self._checkpoints)
        await self._stop_service()
        if self.fenced:
            return
        try:
            self.fenced = True  # (nothing more goes out from here)
            await self._final_checkpoint()
            self.hold = await self.holds.release(self.hold)
        except Fenced as exc:
            log.warning("%s: released by somebody else", exc)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    async def _final_checkpoint(self) -> None:
        async with self._checkpointing:
            await self._last_checkpoint()

    async def _last_checkpoint(self) -> None:
        assert self.service is not None
        mark = self.source.committed_mark()
        state = await asyncio.to_thread(_file_state, self.state_dir / "ingest.db")  # (the service has stopped)
        self._n += 1
        self.hold = await self.holds.checkpoint(self.hold, state, self._n)
        await self.source.acks_upto(mark)

    async def halt(self) -> None:
        """Stop at once without a checkpoint (this instance is shutting down hard, or lost the partition)."""
        self.fenced = True
        await end(self._checkpoints)
        await self._stop_service()


def _file_state(path: Path) -> bytes:
    """A closed state database's bytes, whatever its WAL still holds included."""
    conn = sqlite3.connect(path)
    copy = sqlite3.connect(":memory:")
    try:
        conn.backup(copy)
        return copy.serialize()
    finally:
        copy.close()
        conn.close()
