"""Platforms that push over HTTP (CTWing, OneNET): how a push proves itself, and how each push
becomes a delivery the pipeline commits like a broker's, answered only once it is durable.

A push's delivery carries the path it came to (`/ingest/{type}/{source_id}`) as its topic and its
raw body as payload; its acknowledgement token is (PUSH_GENERATION, push number, 1), which the MQTT
source never acknowledges, so `Pushes.acked` can release the waiting request instead.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ingest.mqtt_source import AckToken, Delivery
from ingest.sources import Adapter

PUSH_GENERATION = -1


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a push's credentials say: status 200 to take it, or 401/403 with a reason."""

    status: int
    reason: str = ""
    # What to answer at once without taking anything (OneNET's URL check echoes `msg`).
    answer: str | None = None


class PushAdapter(Adapter):
    """A source that pushes: `topic` is its path, `check` its credentials."""

    @property
    def topic(self) -> str:
        return f"/ingest/{self.type}/{self.config.id}"

    def owns(self, topic: str) -> bool:
        return topic == self.topic

    def check(self, method: str, query: Mapping[str, str], body: bytes) -> Verdict:
        """Whether a request proves it comes from the platform (constant-time comparisons)."""
        raise NotImplementedError


def body_digest(payload: bytes) -> str:
    """The identity of a push without its own: a retried push carries the same bytes."""
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


class Pushes:
    """HTTP pushes into the pipeline's stream of deliveries, each waiting until its batch is durable."""

    def __init__(self, put: Callable[[list[Delivery]], None], *, paused: Callable[[], bool]) -> None:
        self._put = put
        self._paused = paused
        self._next = 0
        self._waiting: dict[int, asyncio.Future[None]] = {}

    async def push(self, topic: str, payload: bytes, timeout_s: float) -> bool:
        """Hand one push to the pipeline; True once it is durable, False if it could not be made
        durable in time (the platform is then answered 503 and retries; a retry is a duplicate)."""
        if self._paused():
            return False
        self._next += 1
        number = self._next
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[number] = done
        self._put([Delivery(topic, payload, number, 1, PUSH_GENERATION)])
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiting.pop(number, None)

    def acked(self, tokens: list[AckToken]) -> None:
        """The batch holding these deliveries is durable: release the pushes among them."""
        if not self._waiting:
            return
        for generation, number, _ in tokens:
            if generation == PUSH_GENERATION:
                done = self._waiting.get(number)
                if done is not None and not done.done():
                    done.set_result(None)

    def waiting(self) -> int:
        """Pushes not yet durable."""
        return len(self._waiting)


class WithPushes:
    """The pipeline's source: the broker's deliveries and the pushes, in one stream (see module doc)."""

    def __init__(self, source: Any, pushes: Pushes) -> None:
        self.source = source
        self.pushes = pushes
        self.wait = source.wait
        self.drain = source.drain
        self.pending = source.pending

    def ack(self, tokens: list[AckToken]) -> int:
        self.pushes.acked(tokens)
        return int(self.source.ack(tokens))
