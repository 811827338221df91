"""Pushes to the service over HTTP, as the carrier platforms make them (device_sim.sources: CTWing,
OneNET): the fleet's link for the devices of push sources.

Messages queue on a few lanes (each device always on the same one, so its pushes arrive in order) and
each lane sends one at a time. A push answered anything but 200 (the service answers 503 when it
could not make a push durable in time), or not answered, is sent again up to three times, as AEP
does; then it is given up and counted. The fleet's schedule sees it as a sink (device_sim.schedule):
`room`, `publish_nowait`, `flush`, and `acked_tagged` counting the readings answered 200.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

import httpx

RETRIES = 3
RETRY_DELAYS_S = (0.5, 1.0, 2.0)
LANES = 4


class Pusher:
    """POSTs to one service, in order per lane, retried, with a bounded number outstanding."""

    def __init__(self, base_url: str, *, window: int = 1000, lanes: int = LANES, timeout_s: float = 10.0,
                 retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.window = window
        self.timeout_s = timeout_s
        self.retry_delays_s = retry_delays_s  # before each retry (RETRIES of them)
        self.transport = transport
        self.acked_tagged = 0  # readings whose push was answered 200
        self.answered = 0  # pushes answered 200, statuses included
        self.given_up = 0  # pushes not answered 200 after every retry
        self.lost_tagged = 0  # readings in those
        self.where = self.base_url
        self._lanes: list[deque[tuple[str, bytes, int]]] = [deque() for _ in range(lanes)]
        self._outstanding = 0  # queued or being sent
        self._unacked = 0  # readings in those
        self._wake: list[asyncio.Event] = []
        self._idle: asyncio.Event | None = None
        self._client: httpx.AsyncClient | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Open the HTTP client and start the lanes."""
        self._client = httpx.AsyncClient(timeout=self.timeout_s, headers={"Content-Type": "application/json"},
                                         transport=self.transport)
        self._wake = [asyncio.Event() for _ in self._lanes]
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks = [asyncio.create_task(self._run(i), name=f"push-lane-{i}") for i in range(len(self._lanes))]

    # -- the sink --

    def room(self) -> int:
        """How many more pushes may be queued."""
        return self.window - self._outstanding

    def push(self, lane: int, path: str, body: bytes, tag: int = 0) -> None:
        """Queue a POST of body to path (with its query) on a lane; `tag` readings it carries."""
        self._lanes[lane % len(self._lanes)].append((path, body, tag))
        self._outstanding += 1
        self._unacked += tag
        if self._idle is not None:
            self._idle.clear()

    def publish_nowait(self, topic: bytes, payload: bytes, qos: int = 1, retain: bool = False, tag: int = 0) -> None:
        """A push on the first lane (topic: the path), for callers that speak to every link alike."""
        self.push(0, topic.decode(), payload, tag)

    def flush(self) -> None:
        """Wake the lanes that have something to send."""
        for lane, wake in zip(self._lanes, self._wake, strict=False):
            if lane:
                wake.set()

    def unacked_tagged(self) -> int:
        """Readings in pushes not (yet) answered 200."""
        return self._unacked

    async def wait_room(self) -> None:
        """Wait until a push may be queued."""
        while self.room() <= 0:
            await asyncio.sleep(0.01)

    async def drain(self, timeout_s: float) -> bool:
        """Wait (bounded) until every queued push is answered or given up; True if so."""
        self.flush()
        if self._idle is None or self._outstanding == 0:
            return self._outstanding == 0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        return self._outstanding == 0

    async def close(self) -> None:
        """Stop the lanes (what is still queued is not sent) and close the client."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- sending --

    async def _run(self, index: int) -> None:
        lane, wake = self._lanes[index], self._wake[index]
        while True:
            if not lane:
                wake.clear()
                await wake.wait()
                continue
            path, body, tag = lane[0]
            ok = await self._send(path, body)
            lane.popleft()
            self._outstanding -= 1
            self._unacked -= tag
            if ok:
                self.answered += 1
                self.acked_tagged += tag
            else:
                self.given_up += 1
                self.lost_tagged += tag
            if self._outstanding == 0 and self._idle is not None:
                self._idle.set()

    async def _send(self, path: str, body: bytes) -> bool:
        assert self._client is not None
        url = self.base_url + path
        for attempt in range(RETRIES + 1):
            try:
                answer = await self._client.post(url, content=body)
                if answer.status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            if attempt < RETRIES:
                await asyncio.sleep(self.retry_delays_s[min(attempt, len(self.retry_delays_s) - 1)])
        return False
