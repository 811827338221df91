"""The pipeline's source held in memory, fed by a test: what it is given is delivered in order, and
acknowledgements are counted, not sent (tests only; the MQTT source's own tests use Mosquitto)."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import orjson

from ingest.mqtt_source import AckToken, Delivery


class MemorySource:
    """The pipeline's source, fed by the test: what `put` or `feed` is given is delivered in order."""

    protocol = "memory"
    session_present: bool | None = None

    def __init__(self) -> None:
        self.subscribed, self.connects, self.last_error = False, 0, None
        self._inbox: deque[Delivery] = deque()
        self._wake = asyncio.Event()
        self._mid = 0

    def start(self) -> None:
        self.subscribed, self.connects = True, 1

    async def stop(self) -> None:
        self.subscribed = False

    async def wait(self) -> None:
        if not self._inbox:
            await self._wake.wait()
        self._wake.clear()

    def drain(self, limit: int) -> list[Delivery]:
        out = [self._inbox.popleft() for _ in range(min(limit, len(self._inbox)))]
        if self._inbox:
            self._wake.set()
        return out

    def put(self, deliveries: list[Delivery]) -> None:
        self._inbox.extend(deliveries)
        self._wake.set()

    def pending(self) -> int:
        return len(self._inbox)

    def ack(self, tokens: list[AckToken]) -> int:
        return len(tokens)

    def feed(self, community: str, device_type: str, device_id: str, payload: dict[str, Any]) -> None:
        self._mid += 1
        self.put([Delivery(f"cb/{community}/{device_type}/{device_id}/telemetry", orjson.dumps(payload), self._mid,
                           1, 0)])
