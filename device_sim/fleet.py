"""The fleet: readings of many simulated devices, published on a schedule that holds its rate exactly.

```
 DeviceSpec ─► _Device (model, seq, skew, topic) ─► _Cycle (devices of one link and one interval, in phase order)
                                                      │   heap of cycles by next due time
 wall clock ─► tick every few ms ─► FleetCore.advance: every reading due now, in due order ─► faults ─►
               link (gateway or own connection) ─► MqttClient.publish_nowait ... flush(): one write per link per tick
```

Timing. Device i of an interval group of n devices reports at wall seconds (slot_i + k·n) · unit after
the start (unit = interval / n), so the group's readings are spread evenly and the count due by
any moment follows from the start alone: nothing accumulates, nothing drifts. With `rate` there is one
group of all N devices and unit = 1 / rate. Each tick sends what is due; when a connection's
in-flight window is full its readings wait and the wait shows as `late`. Simulated time is
start + elapsed × speed; a reading's `ts` is the simulated time it was due (plus its device's skew),
so the same seed gives the same readings however busy the machine is.

Randomness: one generator per device type feeds the models and one feeds the faults, used in due
order, so a run is repeatable as long as no connection's window fills (which reorders sending).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import inspect
import math
import random
import ssl as ssl_module
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, fields
from typing import Any, Protocol

import orjson

from device_sim.model import Model
from device_sim.mqtt import BrokerUrl, MqttClient, MqttError, Will, encode_topic, parse_url
from device_sim.types import device_mix, make_model
from kernel.backoff import Backoff
from kernel.devices import CATALOG
from kernel.ids import DeviceType
from kernel.topics import status_topic, telemetry_topic

TICK_S = 0.005
CONNECT_TIMEOUT_S = 10.0
CONNECT_CONCURRENCY = 64  # handshakes at once when every device holds its own connection
DRAIN_TIMEOUT_S = 10.0  # at the end, how long to wait for outstanding PUBACKs
ANNOUNCE_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """Which device to simulate."""

    community: str
    device_type: DeviceType
    device_id: str


@dataclass(slots=True)
class Faults:
    """Imperfections of the devices' network, as probabilities per reading (and a clock skew).

    A dropped reading still takes its seq (the service sees a gap); a duplicate is the same payload
    sent twice; a reordered reading is held back and sent after the device's next one; each device
    draws a fixed clock offset uniformly in ±skew_s and adds it to its timestamps."""

    dropout: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    skew_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("dropout", "duplicate", "reorder"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability between 0 and 1, got {value:g}")
        if not 0.0 <= self.skew_s < math.inf:
            raise ValueError(f"skew must be a number of seconds >= 0, got {self.skew_s:g}")

    @property
    def any(self) -> bool:
        """True when some reading may be dropped, duplicated or reordered."""
        return bool(self.dropout or self.duplicate or self.reorder)

    @classmethod
    def parse(cls, text: str) -> Faults:
        """Faults from `dropout=0.01,duplicate=0.01,reorder=0.01,skew=30`; ValueError says what is wrong."""
        names = {"dropout": "dropout", "duplicate": "duplicate", "reorder": "reorder", "skew": "skew_s",
                 "skew_s": "skew_s"}
        values: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep or key not in names:
                raise ValueError(f"{item!r}: expected one of dropout=P, duplicate=P, reorder=P, skew=SECONDS")
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"{item!r}: {raw.strip()!r} is not a number") from None
            if not math.isfinite(value):
                raise ValueError(f"{item!r}: not a finite number")
            values[names[key]] = value
        return cls(**values)


@dataclass(slots=True)
class Stats:
    """What a run has done so far."""

    devices: int = 0
    connections: int = 0  # connections up now
    readings: int = 0  # readings the schedule produced (each took a seq), dropped ones included
    sent: int = 0  # reading messages published, duplicates included
    acked: int = 0  # of those, acknowledged by the broker
    errors: int = 0  # readings lost to a dropped connection or never acknowledged
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    late_max: float = 0.0  # seconds: the furthest any reading was sent behind its due time
    late_now: float = 0.0  # seconds behind schedule at the last tick
    elapsed: float = 0.0  # wall seconds since the schedule started
    target_rate: float = 0.0  # readings per wall second the schedule asks for
    reconnects: int = 0

    @property
    def rate(self) -> float:
        """Readings per wall second so far."""
        return self.readings / self.elapsed if self.elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Every figure, the rate included."""
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"rate": self.rate}


class Sink(Protocol):
    """Where a link's messages go: an MqttClient, or a recorder in tests."""

    acked_tagged: int

    def room(self) -> int: ...

    def publish_nowait(self, topic: bytes, payload: bytes, qos: int = 1, retain: bool = False,
                       tag: int = 0) -> None: ...

    def flush(self) -> None: ...


class _Link:
    """One connection to the broker: a gateway for many devices, or a device's own."""

    __slots__ = ("acked_base", "client", "client_id", "devices", "dirty", "index", "own", "password", "task",
                 "up", "username", "will")

    def __init__(self, index: int, client_id: str, own: _Device | None) -> None:
        self.index = index
        self.client_id = client_id
        self.own = own
        self.devices: list[_Device] = []
        self.username: str | None = None
        self.password: str | None = None
        self.will: Will | None = None
        self.client: Sink | None = None
        self.up = False
        self.dirty = False
        self.acked_base = 0  # readings acknowledged on this link's earlier connections
        self.task: asyncio.Task[None] | None = None


class _Device:
    __slots__ = ("held", "link", "model", "on", "seq", "skew", "spec", "status", "topic")

    def __init__(self, spec: DeviceSpec, model: Model, prefix: str, skew: float) -> None:
        self.spec = spec
        self.model = model
        t = spec.device_type.value
        self.topic = encode_topic(telemetry_topic(prefix, spec.community, t, spec.device_id))
        self.status = encode_topic(status_topic(prefix, spec.community, t, spec.device_id))
        self.seq = 0
        self.skew = skew
        self.on = True
        self.held: bytes | None = None  # a reading held back to be sent after the next one
        self.link: _Link | None = None


class _Cycle:
    """The devices of one link and one interval, in phase order: reading k of device j is due at
    (slots[j] + k·period) · unit wall seconds after the start."""

    __slots__ = ("base", "devices", "idx", "link", "period", "slots", "unit")

    def __init__(self, link: _Link, unit: float, period: int, members: list[tuple[int, _Device]]) -> None:
        members.sort(key=lambda m: m[0])
        self.link = link
        self.unit = unit
        self.period = period
        self.slots = [s for s, _ in members]
        self.devices = [d for _, d in members]
        self.idx = 0
        self.base = 0  # k·period for the current round

    def due(self) -> float:
        """Wall seconds after the start at which the next reading is due."""
        return (self.slots[self.idx] + self.base) * self.unit


class FleetCore:
    """The fleet without I/O: devices, links, the schedule, payloads and faults; `advance` is driven by a clock."""

    def __init__(self, prefix: str, devices: list[DeviceSpec], *, seed: int = 1, speed: float = 1.0,
                 start: float = 0.0, rate: float | None = None, connections: int = 4,
                 own_connection: Iterable[str] = (), every_own: bool = False, faults: Faults | None = None,
                 client_id_prefix: str = "cbrain-sim") -> None:
        if not devices:
            raise ValueError("no devices to simulate")
        if speed <= 0 or not math.isfinite(speed):
            raise ValueError("speed must be a positive number")
        if rate is not None and (rate <= 0 or not math.isfinite(rate)):
            raise ValueError("rate must be a positive number of readings per second")
        if connections < 1:
            raise ValueError("connections must be at least 1")
        listed = Counter(d.device_id for d in devices)
        twice = [i for i, n in listed.items() if n > 1]
        if twice:
            raise ValueError(f"device {twice[0]!r} is listed twice")
        own_ids = set(own_connection)
        unknown = own_ids - set(listed)
        if unknown:
            raise ValueError(f"own_connection names devices that are not simulated: {', '.join(sorted(unknown))}")
        self.prefix = prefix
        self.speed = speed
        self.start = start
        self.faults = faults or Faults()
        rngs = {t: random.Random(f"{seed}/model/{t.value}") for t in DeviceType}
        skew_rng = random.Random(f"{seed}/skew")
        self._frng = random.Random(f"{seed}/faults")
        self.devices: dict[str, _Device] = {}
        for spec in devices:
            skew = skew_rng.uniform(-self.faults.skew_s, self.faults.skew_s) if self.faults.skew_s else 0.0
            self.devices[spec.device_id] = _Device(spec, make_model(spec.device_type, rngs[spec.device_type]),
                                                   prefix, skew)

        # Links: a device of its own where asked, the rest spread round-robin over the gateways.
        self.links: list[_Link] = []
        gateway_devices = [d for d in self.devices.values() if not (every_own or d.spec.device_id in own_ids)]
        gateways = [_Link(k, f"{client_id_prefix}-gw{k}", None)
                    for k in range(min(connections, len(gateway_devices)))]
        self.links += gateways
        for i, dev in enumerate(gateway_devices):
            dev.link = gateways[i % len(gateways)]
            dev.link.devices.append(dev)
        for dev in self.devices.values():
            if dev.link is None:
                link = _Link(len(self.links), f"{client_id_prefix}-{dev.spec.device_id}", dev)
                link.will = Will(_topic_text(dev.status), b"offline", 1, True)
                link.devices.append(dev)
                dev.link = link
                self.links.append(link)

        # The schedule: interval groups (one with `rate`), evenly spread slots, a cycle per link and group.
        order = list(self.devices.values())
        groups: list[tuple[float, list[_Device]]]  # (unit, devices)
        if rate is not None:
            groups = [(1.0 / rate, order)]
            self.target_rate = rate
        else:
            by_interval: dict[float, list[_Device]] = {}
            for dev in order:
                interval = dev.model.interval_s / speed
                if not interval > 0:
                    raise ValueError(f"model of {dev.spec.device_id} has interval {dev.model.interval_s!r}")
                by_interval.setdefault(interval, []).append(dev)
            groups = [(interval / len(devs), devs) for interval, devs in by_interval.items()]
            self.target_rate = sum(1.0 / unit for unit, _ in groups)
        self._cycles: list[_Cycle] = []
        for unit, devs in groups:
            per_link: dict[int, list[tuple[int, _Device]]] = {}
            for slot, dev in enumerate(devs):
                assert dev.link is not None
                per_link.setdefault(dev.link.index, []).append((slot, dev))
            for index, members in per_link.items():
                self._cycles.append(_Cycle(self.links[index], unit, len(devs), members))
        self._heap: list[tuple[float, int, _Cycle]] = [(c.due(), i, c) for i, c in enumerate(self._cycles)]
        heapq.heapify(self._heap)

        self.stats = Stats(devices=len(self.devices), target_rate=self.target_rate)
        self.limit: int | None = None  # readings to produce in all (a --count run)
        self._dirty: list[_Link] = []

    @property
    def exhausted(self) -> bool:
        """True when a reading limit is set and reached."""
        return self.limit is not None and self.stats.readings >= self.limit

    def next_due(self) -> float:
        """Wall seconds after the start at which the next reading is due (inf when none ever is)."""
        return self._heap[0][0] if self._heap else math.inf

    def advance(self, now: float, limit: float | None = None, *, strict: bool = False) -> int:
        """Produce every reading due at or before `limit` (before it if strict; default `now`), oldest first.

        `now` is the wall time (seconds after the start) the readings go out at, for lateness. A
        connection whose window is full keeps its readings due for a later call."""
        if limit is None:
            limit = now
        if strict:
            limit = math.nextafter(limit, -math.inf)
        heap = self._heap
        st = self.stats
        sim0, speed = self.start, self.speed
        dumps = orjson.dumps
        faulty = self.faults.any
        budget = math.inf if self.limit is None else self.limit - st.readings
        blocked: list[tuple[float, int, _Cycle]] = []
        dirty = self._dirty
        produced = 0
        first_due: float | None = None
        late_max = st.late_max
        while heap and budget > 0:
            entry = heap[0]
            due = entry[0]
            if due > limit:
                break
            cyc = entry[2]
            link = cyc.link
            client = link.client
            dev = cyc.devices[cyc.idx]
            if dev.on and link.up and client is not None and client.room() <= 0:
                blocked.append(heapq.heappop(heap))  # window full: stays due, measured as late
                continue
            if first_due is None:
                first_due = due
            cyc.idx += 1
            if cyc.idx == len(cyc.slots):
                cyc.idx = 0
                cyc.base += cyc.period
            heapq.heapreplace(heap, ((cyc.slots[cyc.idx] + cyc.base) * cyc.unit, entry[1], cyc))
            if not dev.on:
                continue  # switched off: no reading, no seq
            seq = dev.seq
            dev.seq = seq + 1
            st.readings += 1
            produced += 1
            budget -= 1
            if not link.up or client is None:
                st.errors += 1  # the connection is down: the reading is lost (its seq stays used)
                continue
            t = sim0 + due * speed
            body = {"ts": round((t + dev.skew) * 1000.0), "seq": seq}
            body.update(dev.model.fields(t))
            payload = dumps(body)
            if faulty:
                self._send_with_faults(dev, client, payload)
            else:
                client.publish_nowait(dev.topic, payload, 1, False, 1)
                st.sent += 1
            if not link.dirty:
                link.dirty = True
                dirty.append(link)
            if now - due > late_max:
                late_max = now - due
        st.late_max = late_max
        for entry in blocked:
            heapq.heappush(heap, entry)
        if blocked:
            st.late_now = max(0.0, now - min(e[0] for e in blocked))
        else:
            st.late_now = max(0.0, now - first_due) if first_due is not None else 0.0
        st.late_max = max(st.late_max, st.late_now)
        return produced

    def _send_with_faults(self, dev: _Device, client: Sink, payload: bytes) -> None:
        """Send one reading through the faults: maybe drop it, hold it back, or send it twice."""
        f, r, st = self.faults, self._frng.random, self.stats
        if f.dropout and r() < f.dropout:
            st.dropped += 1
            return  # a reading held back waits for the next one that is really sent
        if f.reorder and dev.held is None and r() < f.reorder:
            dev.held = payload
            st.reordered += 1
            return
        client.publish_nowait(dev.topic, payload, 1, False, 1)
        st.sent += 1
        if f.duplicate and r() < f.duplicate:
            client.publish_nowait(dev.topic, payload, 1, False, 1)
            st.sent += 1
            st.duplicated += 1
        if dev.held is not None:
            client.publish_nowait(dev.topic, dev.held, 1, False, 1)
            st.sent += 1
            dev.held = None

    def release_held(self) -> None:
        """Send the readings still held back for reordering (at the end of a run)."""
        for dev in self.devices.values():
            link = dev.link
            if dev.held is not None and link is not None and link.up and link.client is not None:
                link.client.publish_nowait(dev.topic, dev.held, 1, False, 1)
                self.stats.sent += 1
                dev.held = None
                if not link.dirty:
                    link.dirty = True
                    self._dirty.append(link)

    def flush(self) -> None:
        """Write what each link gathered since the last flush."""
        for link in self._dirty:
            link.dirty = False
            if link.client is not None:
                link.client.flush()
        self._dirty.clear()

    def publish_status(self, dev: _Device, state: bytes) -> None:
        """Queue a retained QoS 1 `online` / `offline` for a device on its link."""
        link = dev.link
        if link is None or link.client is None:
            return
        link.client.publish_nowait(dev.status, state, 1, True, 0)
        if not link.dirty:
            link.dirty = True
            self._dirty.append(link)


def _topic_text(encoded: bytes) -> str:
    return encoded[2:].decode()


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
                 ssl_context: ssl_module.SSLContext | None = None) -> None:
        self.broker: BrokerUrl = parse_url(url)
        self.url = url
        self._start_given = start
        self.core = FleetCore(prefix, devices, seed=seed, speed=speed, start=start if start is not None else 0.0,
                              rate=rate, connections=connections, own_connection=own_connection,
                              every_own=credentials is not None, faults=faults, client_id_prefix=client_id_prefix)
        self.inflight = inflight
        self.ssl_context = ssl_context
        if credentials is not None:
            for link in self.core.links:
                assert link.own is not None
                link.username, link.password = credentials(link.own.spec.device_id)
        else:
            for link in self.core.links:
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
        dev.on = False
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
            dev.on = True
        elif link.own is None:
            if not dev.on:
                self.core.publish_status(dev, b"online")
                self.core.flush()
                dev.on = True
        else:
            self._chain(link, lambda: self._raise_own(link))

    def _device(self, device_id: str) -> _Device:
        try:
            return self.core.devices[device_id]
        except KeyError:
            raise ValueError(f"device {device_id!r} is not simulated") from None

    def _chain(self, link: _Link, step: Callable[[], Coroutine[Any, Any, None]]) -> None:
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

    async def _drop_own(self, link: _Link) -> None:
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

    async def _raise_own(self, link: _Link) -> None:
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

    async def _connect(self, link: _Link) -> None:
        """Open a link's connection (with its will) and watch it for an unexpected end."""
        client = await MqttClient.open(self.broker, link.client_id, timeout_s=CONNECT_TIMEOUT_S,
                                       ssl_context=self.ssl_context, username=link.username,
                                       password=link.password, will=link.will, inflight=self.inflight,
                                       on_close=lambda c, error: self._closed(link, c, error))
        link.client = client
        link.up = True

    def _closed(self, link: _Link, client: MqttClient, error: Exception | None) -> None:
        """A connection ended: when by itself, count what it lost and reconnect (in a task, with backoff)."""
        if error is None or link.client is not client:
            return
        link.up = False
        self.core.stats.errors += client.unacked_tagged()
        link.acked_base += client.acked_tagged
        link.client = None
        if not self._stopping:
            self._spawn(self._reconnect(link), f"reconnect-{link.client_id}")

    async def _reconnect(self, link: _Link) -> None:
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

        async def one(link: _Link) -> None:
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
        async def link_online(link: _Link) -> None:
            client = link.client
            assert isinstance(client, MqttClient)
            for dev in link.devices:
                if client.room() <= 0:
                    client.flush()
                    await client.wait_room()
                client.publish_nowait(dev.status, b"online" if dev.on else b"offline", 1, True, 0)
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
        for link in self.core.links:
            link.up = False
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
        clients = [link.client for link in core.links if isinstance(link.client, MqttClient) and link.up]
        await asyncio.gather(*(c.drain(DRAIN_TIMEOUT_S) for c in clients), return_exceptions=True)
        self._refresh()
        core.stats.errors += sum(c.unacked_tagged() for c in clients)
        await self._close_all(graceful=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# ---- devices for a simulation -------------------------------------------------------------------



def generate_devices(n: int, communities: list[str], *, taken: Iterable[str] = ()) -> list[DeviceSpec]:
    """n generated devices (ids like `sd-sim-000123`) spread round-robin over the communities."""
    if not communities:
        raise ValueError("no communities to place devices in")
    used = set(taken)
    out: list[DeviceSpec] = []
    # The mix of a residential street (each simulator model's share): mostly smoke detectors, a few
    # charging ports, some gauges and lanes.
    mix = device_mix()
    i = 0
    while len(out) < n:
        dtype = mix[i % len(mix)]
        device_id = f"{CATALOG[dtype].id_prefix}-sim-{i:06d}"
        if device_id not in used:
            out.append(DeviceSpec(communities[len(out) % len(communities)], dtype, device_id))
        i += 1
    return out

