"""The fleet: the schedule's readings (device_sim.schedule) published to a broker over gateway
connections or one connection per device, with reconnects, wills, `online` / `offline` and actions
at simulated times (a scenario's events). Devices that report through other systems (a DeviceSpec's
`via`) speak as their source does (device_sim.routes): on the gateway connections for a source on the
broker, pushed to the service's HTTP endpoint (`service_url`) for a carrier platform."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import inspect
import math
import random
import ssl as ssl_module
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, cast

from device_sim.model import Model
from device_sim.mqtt import BrokerUrl, MqttClient, MqttError, parse_url
from device_sim.schedule import FleetCore, Link, SimDevice, Stats
from device_sim.specs import DeviceSpec, Faults, generate_devices
from kernel.backoff import Backoff

if TYPE_CHECKING:
    from device_sim.pusher import Pusher

# What a fleet is given (devices, faults) and gives back (its figures) is defined beside it; the
# composition root and the benchmarks take them from here, with the fleet.
__all__ = ["DeviceSpec", "Faults", "Fleet", "Stats", "generate_devices"]

TICK_S = 0.005
CONNECT_TIMEOUT_S = 10.0
CONNECT_CONCURRENCY = 64  # handshakes at once when every device holds its own connection
DRAIN_TIMEOUT_S = 10.0  # at the end, how long to wait for outstanding PUBACKs
ANNOUNCE_TIMEOUT_S = 30.0


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first error of a task group, unwrapped."""
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


class Fleet:
    """Publishes readings of many simulated devices over a few gateway connections or one each."""

    def __init__(self, url: str, prefix: str, devices: list[DeviceSpec], *, seed: int = 1, speed: float = 1.0,
                 start: float | None = None, rate: float | None = None, connections: int = 4,
                 own_connection: Iterable[str] = (),
                 credentials: Callable[[str], tuple[str, str]] | None = None,
                 faults: Faults | None = None, client_id_prefix: str = "cbrain-sim", inflight: int = 1000,
                 ssl_context: ssl_module.SSLContext | None = None, service_url: str | None = None) -> None:
        self.broker: BrokerUrl = parse_url(url)
        self.url = url
        self._start_given = start
        self.core = FleetCore(prefix, devices, seed=seed, speed=speed, start=start if start is not None else 0.0,
                              rate=rate, connections=connections, own_connection=own_connection,
                              every_own=credentials is not None, faults=faults, client_id_prefix=client_id_prefix)
        self.inflight = inflight
        self.ssl_context = ssl_context
        self.service_url = service_url
        if service_url is None and any(link.http for link in self.core.links):
            pushed = next(d for link in self.core.links if link.http for d in link.devices)
            raise ValueError(f"device {pushed.spec.device_id} is pushed to the service over HTTP: give the "
                             "service's URL")
        for link in self.core.links:
            # (a source's devices on the gateways connect with the broker URL's user even then)
            if credentials is not None and link.own is not None:
                link.username, link.password = credentials(link.own.spec.device_id)
            else:
                link.username, link.password = self.broker.username, self.broker.password
        self.models: dict[str, Model] = {i: d.model for i, d in self.core.devices.items()}
        self._actions: list[tuple[float, int, Callable[[], Any]]] = []
        self._action_seq = 0
        self._t0: float | None = None
        self._stopping = False
        self._ran = False
        self._live = False  # connected and announced: offline/online now speak to the broker
        self._tasks: set[asyncio.Task[Any]] = set()
        self._backoff_rng = random.Random(seed)

    def _pushers(self, *, up: bool = False) -> list[Pusher]:
        """The pushers of the push sources' devices (those whose link is up)."""
        return [cast("Pusher", link.client) for link in self.core.links
                if link.http and link.client is not None and (link.up or not up)]

    def push_counts(self) -> tuple[int, int] | None:
        """Pushes answered 200 and pushes given up after their retries; None without push sources."""
        if not any(link.http for link in self.core.links):
            return None
        pushers = self._pushers()
        return sum(p.answered for p in pushers), sum(p.given_up for p in pushers)

    @property
    def stats(self) -> Stats:
        """The figures of the run: counts as of the last tick, acknowledgements as of now."""
        self._refresh()
        return self.core.stats

    # -- time and actions --

    def sim_now(self) -> float:
        """The current simulated time (epoch seconds)."""
        core = self.core
        if self._t0 is None:
            return self._start_given if self._start_given is not None else time.time()
        return core.start + (asyncio.get_running_loop().time() - self._t0) * core.speed

    def at(self, t: float, action: Callable[[], Any]) -> None:
        """Run action in the fleet's loop when simulated time reaches t (readings due before t go first)."""
        heapq.heappush(self._actions, (t, self._action_seq, action))
        self._action_seq += 1

    def offline(self, device_id: str) -> None:
        """Take a device off the air: its own connection drops (the broker publishes its will), or its
        gateway publishes retained `offline` for it. Its readings stop."""
        dev = self._device(device_id)
        if not dev.on:
            return
        for peer in self.core.peers(dev):  # a strip's ports, a Shelly's switches go together
            peer.on = False
        link = dev.link
        assert link is not None
        if not self._live:
            return  # before the run: the device starts off the air
        if link.own is None:
            self.core.publish_status(dev, b"offline")
            self.core.flush()
        else:
            self._chain(link, lambda: self._drop_own(link))

    def online(self, device_id: str) -> None:
        """Bring a device back: reconnect with its will, publish retained `online`; readings resume, seq continues."""
        dev = self._device(device_id)
        link = dev.link
        assert link is not None
        if not self._live:
            for peer in self.core.peers(dev):
                peer.on = True
        elif link.own is None:
            if not dev.on:
                self.core.publish_status(dev, b"online")
                self.core.flush()
                for peer in self.core.peers(dev):
                    peer.on = True
        else:
            self._chain(link, lambda: self._raise_own(link))

    def _device(self, device_id: str) -> SimDevice:
        try:
            return self.core.devices[device_id]
        except KeyError:
            raise ValueError(f"device {device_id!r} is not simulated") from None

    def _chain(self, link: Link, step: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run a link's connection changes one after another, in the order they were asked for."""
        prev = link.task

        async def run() -> None:
            if prev is not None:
                with contextlib.suppress(Exception):
                    await prev
            await step()

        link.task = self._spawn(run(), f"link-{link.client_id}")

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _drop_own(self, link: Link) -> None:
        client = link.client
        if client is None or not link.up:
            return
        assert isinstance(client, MqttClient)
        await client.drain(2.0)  # what was sent arrives; then the power goes
        link.up = False
        self.core.stats.errors += client.unacked_tagged()
        link.acked_base += client.acked_tagged
        client.abort()
        link.client = None

    async def _raise_own(self, link: Link) -> None:
        dev = link.own
        assert dev is not None
        if dev.on and link.up:
            return
        backoff = Backoff(0.2, 5.0, rng=self._backoff_rng)
        while not self._stopping:
            try:
                await self._connect(link)
                break
            except MqttError:
                await asyncio.sleep(backoff.next())
        else:
            return
        client = link.client
        assert isinstance(client, MqttClient)
        await client.publish(dev.status, b"online", 1, True)
        dev.on = True

    # -- connections --

    async def _connect(self, link: Link) -> None:
        """Open a link's connection (with its will) and watch it for an unexpected end; or start the pusher."""
        if link.http:
            from device_sim.pusher import Pusher  # (loads the HTTP client)

            assert self.service_url is not None
            pusher = Pusher(self.service_url, window=self.inflight)
            await pusher.start()
            link.client = pusher
            link.up = True
            return
        client = await MqttClient.open(self.broker, link.client_id, timeout_s=CONNECT_TIMEOUT_S,
                                       ssl_context=self.ssl_context, username=link.username,
                                       password=link.password, will=link.will, inflight=self.inflight,
                                       on_close=lambda c, error: self._closed(link, c, error))
        link.client = client
        link.up = True

    def _closed(self, link: Link, client: MqttClient, error: Exception | None) -> None:
        """A connection ended: when by itself, count what it lost and reconnect (in a task, with backoff)."""
        if error is None or link.client is not client:
            return
        link.up = False
        self.core.stats.errors += client.unacked_tagged()
        link.acked_base += client.acked_tagged
        link.client = None
        if not self._stopping:
            self._spawn(self._reconnect(link), f"reconnect-{link.client_id}")

    async def _reconnect(self, link: Link) -> None:
        st = self.core.stats
        backoff = Backoff(0.2, 5.0, rng=self._backoff_rng)
        while not self._stopping:
            await asyncio.sleep(backoff.next())
            if self._stopping or link.client is not None:
                return
            try:
                await self._connect(link)
            except MqttError:
                continue
            st.reconnects += 1
            if link.own is not None and link.own.on:
                new = link.client
                assert isinstance(new, MqttClient)
                with contextlib.suppress(MqttError):
                    await new.publish(link.own.status, b"online", 1, True)
            return

    async def _connect_all(self) -> None:
        """Connect every link, a bounded number at a time; the first failure closes the rest and is raised."""
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one(link: Link) -> None:
            async with gate:
                await self._connect(link)

        try:
            async with asyncio.TaskGroup() as tg:
                for link in self.core.links:
                    if link.own is None or link.own.on:  # a device switched off before the run stays away
                        tg.create_task(one(link))
        except BaseExceptionGroup as group:
            await self._close_all(graceful=False)
            raise _first(group) from None

    async def _announce(self) -> None:
        """Every device says `online` (retained) before its first reading; bounded wait for the acks."""
        async def link_online(link: Link) -> None:
            client: Any = link.client  # an MqttClient, or the pusher
            for dev in link.devices:
                if client.room() <= 0:
                    client.flush()
                    await client.wait_room()
                self.core.announce(dev)
            client.flush()
            await client.drain(ANNOUNCE_TIMEOUT_S)

        try:
            async with asyncio.TaskGroup() as tg:
                for link in self.core.links:
                    if link.client is not None:
                        tg.create_task(link_online(link))
        except BaseExceptionGroup as group:
            raise _first(group) from None
        self._live = True

    async def _close_all(self, *, graceful: bool) -> None:
        clients = [link.client for link in self.core.links if isinstance(link.client, MqttClient)]
        pushers = self._pushers()
        for link in self.core.links:
            link.up = False
        await asyncio.gather(*(p.close() for p in pushers), return_exceptions=True)
        if graceful:
            await asyncio.gather(*(c.disconnect(2.0) for c in clients), return_exceptions=True)
        else:
            for c in clients:
                c.abort()

    # -- running --

    def stop(self) -> None:
        """End the run at the next tick (then outstanding acknowledgements are awaited, bounded)."""
        self._stopping = True

    async def run(self, *, duration: float | None = None, count: int | None = None, until: float | None = None,
                  progress: Callable[[Stats], None] | None = None) -> Stats:
        """Connect, announce, publish on schedule until duration (wall s), count readings or until (simulated
        time) is reached or stop() is called; then wait for acknowledgements and disconnect."""
        if self._ran:
            raise RuntimeError("a Fleet runs once")
        self._ran = True
        if count is not None and count < 0:
            raise ValueError("count must be >= 0")
        core, st = self.core, self.core.stats
        core.limit = count
        loop = asyncio.get_running_loop()
        await self._connect_all()
        try:
            await self._announce()
            st.connections = sum(link.up for link in core.links)
            self._t0 = t0 = loop.time()
            if self._start_given is None:
                core.start = time.time()
            end = math.inf if duration is None else float(duration)
            if until is not None:
                end = min(end, (until - core.start) / core.speed)
            await self._loop(t0, end, progress)
        finally:
            await self._finish()
        return st

    async def _loop(self, t0: float, end: float, progress: Callable[[Stats], None] | None) -> None:
        loop = asyncio.get_running_loop()
        core, st = self.core, self.core.stats
        actions = self._actions
        next_progress = 1.0
        finish_at = math.inf
        while not self._stopping:
            now = loop.time() - t0
            horizon = min(now, end)
            while actions and (actions[0][0] - core.start) / core.speed <= horizon and not self._stopping:
                t, _, action = heapq.heappop(actions)
                core.advance(now, (t - core.start) / core.speed, strict=True)
                core.flush()
                result = action()
                if inspect.isawaitable(result):
                    await result
            core.advance(now, horizon, strict=now >= end)
            core.flush()
            st.elapsed = horizon
            if progress is not None and now >= next_progress:
                self._refresh()
                progress(st)
                next_progress = math.floor(now) + 1.0
            if now >= end or now >= finish_at:
                break
            if core.exhausted and finish_at == math.inf:
                # A count run lasts until the next reading would be due (so count / rate seconds), at most 1 s more.
                finish_at = min(core.next_due(), now + 1.0)
                end = min(end, finish_at)
            next_event = min(core.next_due(), end, next_progress if progress else math.inf,
                             (actions[0][0] - core.start) / core.speed if actions else math.inf)
            wake = max(now + TICK_S, next_event)
            await asyncio.sleep(max(0.0, min(wake, now + 0.1) - (loop.time() - t0)))
        st.elapsed = min(loop.time() - t0, end)

    def _refresh(self) -> None:
        st = self.core.stats
        st.connections = sum(link.up for link in self.core.links)
        st.acked = sum(link.acked_base + (link.client.acked_tagged if link.client is not None else 0)
                       for link in self.core.links)

    async def _finish(self) -> None:
        """Send what is held back, wait (bounded) for outstanding PUBACKs, disconnect gracefully."""
        self._stopping = True
        core = self.core
        if self._t0 is not None:
            core.release_held()
            core.flush()
        for task in list(self._tasks):
            if task.get_name().startswith("link-"):
                with contextlib.suppress(TimeoutError, Exception):
                    async with asyncio.timeout(2.0):
                        await asyncio.shield(task)
        clients: list[MqttClient | Pusher] = [link.client for link in core.links if link.up
                                              and isinstance(link.client, MqttClient)]
        clients += self._pushers(up=True)
        await asyncio.gather(*(c.drain(DRAIN_TIMEOUT_S) for c in clients), return_exceptions=True)
        self._refresh()
        core.stats.errors += sum(c.unacked_tagged() for c in clients)
        core.stats.errors += sum(p.lost_tagged for p in self._pushers())
        await self._close_all(graceful=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
