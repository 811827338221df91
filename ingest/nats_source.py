"""One partition of the cluster's MQTT stream as the pipeline's source (docs/scaling.md).

The NATS server stores each QoS 1 publish of a device in its replicated MQTT stream before it
acknowledges the device; a durable pull consumer per partition reads that stream. The instance that
holds a partition pulls its messages in stream order and hands them to the pipeline like the MQTT
source's deliveries. A message is acknowledged to the stream only once a checkpoint of the
partition's state that holds its effects is in the cluster (`acks_upto`, called by the checkpoint):
until then the stream keeps it, and whoever holds the partition next reads it again.

On taking a partition over from an instance that died holding messages, those messages come back
only after their ack wait, after newer ones may already have been handed out: the source first
gathers the ones outstanding at the takeover and hands them over in stream order (`barrier`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ingest.mqtt_source import AckToken, Delivery

log = logging.getLogger("cbrain.cluster")

PULL_BATCH = 1000
PULL_EXPIRES_S = 1.0


class NatsPartitionSource:
    """Pulls one partition's consumer; acknowledges what a checkpoint holds, never before."""

    protocol = "nats"
    session_present: bool | None = None

    def __init__(self, subscription: Any, *, generation: int, topic_of: Callable[[str], str],
                 may_pull: Callable[[], bool], outstanding: int = 0, barrier_s: float = 0.0) -> None:
        self.subscription = subscription  # nats-py's pull subscription bound to the partition's consumer
        self.generation = generation
        self.topic_of = topic_of
        self.may_pull = may_pull  # False while this instance cannot be sure it still holds the partition
        self._inbox: deque[Delivery] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._msgs: dict[int, Any] = {}  # stream sequence -> message not yet acknowledged to the stream
        self._committed: list[int] = []  # stream sequences committed locally, not yet in a checkpoint
        self.subscribed = False
        self.connects = 0
        self.last_error: str | None = None
        self.received = 0
        self.acked = 0
        # Takeover: messages the last holder had been handed and never acknowledged come first.
        self._outstanding = outstanding
        self._barrier_until = time.monotonic() + barrier_s if outstanding else 0.0
        self.barrier_held = 0

    def start(self) -> None:
        """Start pulling into the inbox."""
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._pull(), name="nats-pull")

    async def stop(self) -> None:
        """Stop pulling; what was pulled and not acknowledged comes back to the partition's next holder."""
        task = self._task
        # Cancelled again until it ends: a cancellation that comes as a fetch completes can be swallowed
        # by asyncio.wait_for in Python 3.11 (gh-86296), and the loop would go round again.
        for _ in range(100):
            if task is None or task.done():
                break
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
        if task is not None and task.done() and not task.cancelled():
            with contextlib.suppress(Exception):
                task.exception()
        self.subscribed = False

    async def wait(self) -> None:
        """Return once deliveries are waiting."""
        assert self._wake is not None
        if not self._inbox:
            await self._wake.wait()
        self._wake.clear()

    def drain(self, limit: int) -> list[Delivery]:
        """Take up to limit waiting deliveries, oldest first."""
        inbox = self._inbox
        out = [inbox.popleft() for _ in range(min(limit, len(inbox)))]
        if inbox and self._wake is not None:
            self._wake.set()
        return out

    def put(self, deliveries: list[Delivery]) -> None:
        """Deliveries from elsewhere: a partition takes only its stream's."""
        raise RuntimeError("a partition of the cluster takes no deliveries but its stream's")

    def pending(self) -> int:
        """Deliveries pulled but not yet drained."""
        return len(self._inbox)

    def ack(self, tokens: list[AckToken]) -> int:
        """The pipeline committed these locally: they are acknowledged with the next checkpoint."""
        mine = [mid for gen, mid, _qos in tokens if gen == self.generation]
        self._committed.extend(mine)
        return len(mine)

    def committed_mark(self) -> int:
        """How many local commits have been seen: a checkpoint taken after this holds them."""
        return len(self._committed)

    async def acks_upto(self, mark: int) -> int:
        """Acknowledge to the stream the messages of the first `mark` local commits (a checkpoint holds them)."""
        done, self._committed = self._committed[:mark], self._committed[mark:]
        for seq in done:
            msg = self._msgs.pop(seq, None)
            if msg is not None:
                with contextlib.suppress(Exception):  # (one lost is read again: the next holder drops it by seq)
                    await msg.ack()
        self.acked += len(done)
        return len(done)

    def unacknowledged(self) -> int:
        """Messages pulled and not yet acknowledged to the stream."""
        return len(self._msgs)

    async def _pull(self) -> None:
        held: dict[int, Any] = {}  # the barrier's, by stream sequence: newer ones wait for the outstanding
        seen_old = 0
        while True:
            if not self.may_pull():
                self.subscribed = False
                await asyncio.sleep(0.1)
                continue
            try:
                msgs = await self.subscription.fetch(PULL_BATCH, timeout=PULL_EXPIRES_S)
            except TimeoutError:
                msgs = []
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # (the node went away: nats-py reconnects to another)
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.subscribed = False
                await asyncio.sleep(0.2)
                continue
            if not self.subscribed:
                self.subscribed, self.last_error = True, None
                self.connects += 1
            if self._outstanding:
                # The barrier: what the last holder left comes back as redeliveries; hold the rest.
                for m in msgs:
                    seq = m.metadata.sequence.stream
                    if seq not in held:
                        seen_old += m.metadata.num_delivered > 1
                        held[seq] = m
                if seen_old < self._outstanding and time.monotonic() < self._barrier_until:
                    self.barrier_held = len(held)
                    continue
                if seen_old < self._outstanding:
                    log.warning("took over with %d messages outstanding, %d came back in time; going on",
                                self._outstanding, seen_old)
                msgs = [held[seq] for seq in sorted(held)]
                held, self._outstanding, self.barrier_held = {}, 0, 0
            self._take(msgs)

    def _take(self, msgs: list[Any]) -> None:
        if not msgs:
            return
        out = []
        for m in msgs:
            seq = m.metadata.sequence.stream
            if seq in self._msgs:
                continue  # handed out again while still ours: the first copy is on its way
            self._msgs[seq] = m
            try:
                topic = self.topic_of(m.subject)
            except ValueError:  # (not a device's topic: the decoder rejects it, counted, by its subject)
                topic = m.subject
            out.append(Delivery(topic, m.data, seq, 1, self.generation))
        self.received += len(out)
        self._inbox.extend(out)
        if self._wake is not None:
            self._wake.set()
