"""The fleet's schedule without I/O: readings of many simulated devices, due on a schedule that holds its
rate exactly, with their faults.

```
 DeviceSpec ─► SimDevice (model, seq, skew, topic) ─► Cycle (devices of one link and one interval, in phase order)
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
import heapq
import math
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from device_sim.model import Model
from device_sim.mqtt import Will, encode_topic
from device_sim.specs import DeviceSpec, Faults
from device_sim.types import make_model
from kernel.ids import DeviceType
from kernel.topics import status_topic, telemetry_topic

if TYPE_CHECKING:
    from device_sim.routes import Route


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


class Link:
    """One connection to the broker (a gateway for many devices, or a device's own), or the pusher of the
    push sources' devices."""

    __slots__ = ("acked_base", "client", "client_id", "devices", "dirty", "http", "index", "own", "password",
                 "task", "up", "username", "will")

    def __init__(self, index: int, client_id: str, own: SimDevice | None, *, http: bool = False) -> None:
        self.index = index
        self.http = http  # the service's HTTP pushes (device_sim.pusher), not a broker connection
        self.client_id = client_id
        self.own = own
        self.devices: list[SimDevice] = []
        self.username: str | None = None
        self.password: str | None = None
        self.will: Will | None = None
        self.client: Sink | None = None
        self.up = False
        self.dirty = False
        self.acked_base = 0  # readings acknowledged on this link's earlier connections
        self.task: asyncio.Task[None] | None = None


class SimDevice:
    """One simulated device on the schedule: its model, its topics, its next seq, its link."""

    __slots__ = ("held", "link", "model", "on", "route", "seq", "skew", "spec", "status", "topic")

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
        self.link: Link | None = None
        self.route: Route | None = None  # how it reports through its source (spec.via), if it has one


class Cycle:
    """The devices of one link and one interval, in phase order: reading k of device j is due at
    (slots[j] + k·period) · unit wall seconds after the start."""

    __slots__ = ("base", "devices", "idx", "link", "period", "slots", "unit")

    def __init__(self, link: Link, unit: float, period: int, members: list[tuple[int, SimDevice]]) -> None:
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
        self.devices: dict[str, SimDevice] = {}
        for spec in devices:
            skew = skew_rng.uniform(-self.faults.skew_s, self.faults.skew_s) if self.faults.skew_s else 0.0
            self.devices[spec.device_id] = SimDevice(spec, make_model(spec.device_type, rngs[spec.device_type]),
                                                   prefix, skew)
        # Devices that report through other systems: their routes (a strip's ports share one).
        self.routes: list[Route] = []
        if any(spec.via is not None for spec in devices):
            from device_sim.routes import make_routes  # (loads the sources' encoders)

            self.routes = make_routes(list(self.devices.values()))
        self.links: list[Link] = []
        self._link(own_ids, every_own, connections, client_id_prefix)
        # One slot per native device and per route (its first device's).
        self._schedule([d for d in self.devices.values() if d.route is None or d is d.route.members[0]], rate)

        self.stats = Stats(devices=len(self.devices), target_rate=self.target_rate)
        self.limit: int | None = None  # readings to produce in all (a --count run)
        self._dirty: list[Link] = []

    def _link(self, own_ids: set[str], every_own: bool, connections: int, client_id_prefix: str) -> None:
        """Links: a device of its own where asked, the rest spread round-robin over the gateways; a source's
        devices on the gateways (a strip's ports on its first port's), a push source's on the pusher."""
        devices = list(self.devices.values())

        def on_gateway(d: SimDevice) -> bool:
            if d.route is not None:
                return d.route.mqtt and d is d.route.members[0]
            return not (every_own or d.spec.device_id in own_ids)

        gateway_devices = [d for d in devices if on_gateway(d)]
        gateways = [Link(k, f"{client_id_prefix}-gw{k}", None)
                    for k in range(min(connections, len(gateway_devices)))]
        self.links += gateways
        for i, dev in enumerate(gateway_devices):
            dev.link = gateways[i % len(gateways)]
        pusher: Link | None = None
        if any(d.route is not None and not d.route.mqtt for d in devices):
            pusher = Link(len(self.links), f"{client_id_prefix}-push", None, http=True)
            self.links.append(pusher)
        for dev in devices:
            route = dev.route
            if route is not None:
                dev.link = route.members[0].link if route.mqtt else pusher
            if dev.link is None:
                link = Link(len(self.links), f"{client_id_prefix}-{dev.spec.device_id}", dev)
                link.will = Will(_topic_text(dev.status), b"offline", 1, True)
                dev.link = link
                self.links.append(link)
            dev.link.devices.append(dev)

    def _schedule(self, order: list[SimDevice], rate: float | None) -> None:
        """Interval groups (one with `rate`), evenly spread slots, a cycle per link and group. A strip's slot
        gives a reading of each of its ports: with `rate`, the slots are spaced so that the readings
        keep the rate."""
        groups: list[tuple[float, list[SimDevice]]]  # (unit, devices)
        if rate is not None:
            n = len(self.devices)
            groups = [(1.0 / rate if n == len(order) else n / (rate * len(order)), order)]
            self.target_rate = rate
        else:
            by_interval: dict[float, list[SimDevice]] = {}
            for dev in order:
                interval = dev.model.interval_s / self.speed
                if not interval > 0:
                    raise ValueError(f"model of {dev.spec.device_id} has interval {dev.model.interval_s!r}")
                by_interval.setdefault(interval, []).append(dev)
            groups = [(interval / len(devs), devs) for interval, devs in by_interval.items()]
            self.target_rate = sum((len(d.route.members) if d.route is not None else 1) / interval
                                   for interval, devs in by_interval.items() for d in devs)
        self._cycles: list[Cycle] = []
        for unit, devs in groups:
            per_link: dict[int, list[tuple[int, SimDevice]]] = {}
            for slot, dev in enumerate(devs):
                assert dev.link is not None
                per_link.setdefault(dev.link.index, []).append((slot, dev))
            for index, members in per_link.items():
                self._cycles.append(Cycle(self.links[index], unit, len(devs), members))
        self._heap: list[tuple[float, int, Cycle]] = [(c.due(), i, c) for i, c in enumerate(self._cycles)]
        heapq.heapify(self._heap)

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
        blocked: list[tuple[float, int, Cycle]] = []
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
            if dev.route is not None:  # a device of another system: its source's messages (device_sim.routes)
                n = dev.route.produce(self, link, sim0 + due * speed)
                produced += n
                budget -= n
                late_max = now - due if n and now - due > late_max else late_max
                continue
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

    def _send_with_faults(self, dev: SimDevice, client: Sink, payload: bytes) -> None:
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

    def chance(self, p: float) -> bool:
        """A fault with probability p happens (the faults' generator is drawn only when p is not 0)."""
        return bool(p) and self._frng.random() < p

    def touched(self, link: Link) -> None:
        """The link has gathered messages to write at the next flush."""
        if not link.dirty:
            link.dirty = True
            self._dirty.append(link)

    def release_held(self) -> None:
        """Send the readings still held back for reordering (at the end of a run)."""
        for route in self.routes:
            route.release_held(self)
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

    def publish_status(self, dev: SimDevice, state: bytes) -> None:
        """Queue a retained QoS 1 `online` / `offline` for a device on its link (through its source, as
        the source says it, for a device that has one)."""
        link = dev.link
        if link is None or link.client is None:
            return
        if dev.route is not None:
            dev.route.status(self, dev, state == b"online")
            return
        link.client.publish_nowait(dev.status, state, 1, True, 0)
        self.touched(link)

    def announce(self, dev: SimDevice) -> None:
        """Queue a device's status as the run starts: `online`, or `offline` if switched off before it (a
        route's once, for all its devices)."""
        route = dev.route
        if route is None or dev is route.members[0]:
            self.publish_status(dev, b"online" if dev.on else b"offline")

    def peers(self, dev: SimDevice) -> list[SimDevice]:
        """The devices that go off and on the air with this one: those of its address in its source (a
        strip's or a Shelly's switches), or itself."""
        via = dev.spec.via
        if via is None:
            return [dev]
        key = (via.source.id, via.address)
        return [d for d in self.devices.values()
                if d.spec.via is not None and (d.spec.via.source.id, d.spec.via.address) == key]


def _topic_text(encoded: bytes) -> str:
    return encoded[2:].decode()
