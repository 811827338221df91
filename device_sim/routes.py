"""How the fleet sends the readings of devices that report through other systems (device_sim.sources).

A route is one address of a source: its devices (a power strip's ports, whose encoder groups them into
one message; one device otherwise) and its source's encoder. The schedule (device_sim.schedule) keeps
one slot per route, its first device's. When the slot is due every device of the route that is on
takes a reading and a seq, the encoder writes the system's messages, and they go out on the route's
link through the same faults as native readings (a dropped, held back or repeated message counts once
per reading it carries): on a gateway connection to the broker for an MQTT source (topics encoded
once per route), or to the pusher (device_sim.pusher) for a push source, on the route's own lane so
that a device's pushes arrive in order. Messages are tagged with the readings they carry, so the
broker's or the service's acknowledgements count readings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, cast

from device_sim.mqtt import encode_topic
from device_sim.sources import Body, Encoder, Out, Registration, make_encoder

if TYPE_CHECKING:
    from device_sim.schedule import FleetCore, Link, SimDevice, Sink


class PushSink(Protocol):
    """Where a push source's messages go: the pusher (device_sim.pusher), or a recorder in tests."""

    def push(self, lane: int, path: str, body: bytes, tag: int = 0) -> None: ...


class Route:
    """One address of a source: its devices, its encoder, its link's way of sending."""

    __slots__ = ("_topics", "encoder", "held", "lane", "members", "mqtt")

    def __init__(self, encoder: Encoder, members: list[SimDevice], lane: int) -> None:
        self.encoder = encoder
        self.members = members
        self.mqtt = encoder.transport == "mqtt"
        self.lane = lane
        self.held: tuple[list[Out], int] | None = None  # messages held back for reordering, and their readings
        self._topics: dict[str, bytes] = {}

    def produce(self, core: FleetCore, link: Link, t: float) -> int:
        """The route's readings at simulated time t, sent on link; how many readings were taken."""
        on = [d for d in self.members if d.on]
        if not on:
            return 0
        n = len(on)
        st = core.stats
        st.readings += n
        client = link.client
        if not link.up or client is None:
            for d in on:
                d.seq += 1  # the readings are lost; their seq stays used
            st.errors += n
            return n
        regs: list[Registration] = []
        bodies: list[Body] = []
        for d in on:
            body = {"ts": round((t + d.skew) * 1000.0), "seq": d.seq}
            d.seq += 1
            body.update(d.model.fields(t))
            regs.append(_via(d))
            bodies.append(body)
        self._send(core, client, self.encoder.readings(regs, bodies), n)
        core.touched(link)
        return n

    def _send(self, core: FleetCore, client: Sink, outs: list[Out], n: int) -> None:
        """Through the faults, as FleetCore sends a native reading."""
        f, st = core.faults, core.stats
        if core.chance(f.dropout):
            st.dropped += n
            return
        if self.held is None and core.chance(f.reorder):
            self.held = (outs, n)
            st.reordered += n
            return
        self.deliver(client, outs, n)
        st.sent += n
        if core.chance(f.duplicate):
            self.deliver(client, outs, n)
            st.sent += n
            st.duplicated += n
        if self.held is not None:
            held, k = self.held
            self.held = None
            self.deliver(client, held, k)
            st.sent += k

    def deliver(self, client: Sink, outs: list[Out], tag: int) -> None:
        """Queue messages on the link's client; the first carries the tag (the readings in them)."""
        for i, out in enumerate(outs):
            mark = tag if i == 0 else 0
            if self.mqtt:
                topic = self._topics.get(out.topic)
                if topic is None:
                    topic = self._topics[out.topic] = encode_topic(out.topic)
                client.publish_nowait(topic, out.payload, 1, out.retain, mark)
            else:
                cast(PushSink, client).push(self.lane, out.topic, out.payload, mark)

    def status(self, core: FleetCore, dev: SimDevice, online: bool) -> None:
        """Say, as the source does, that the device (its address) went on or off the air."""
        link = dev.link
        if link is None or link.client is None or not link.up:
            return
        outs = self.encoder.status(_via(dev), online)
        if outs:
            self.deliver(link.client, outs, 0)
            core.touched(link)

    def release_held(self, core: FleetCore) -> None:
        """Send what is still held back (at the end of a run)."""
        link = self.members[0].link
        if self.held is None or link is None or not link.up or link.client is None:
            return
        outs, k = self.held
        self.held = None
        self.deliver(link.client, outs, k)
        core.stats.sent += k
        core.touched(link)


def make_routes(devices: list[SimDevice]) -> list[Route]:
    """A route for each device that reports through a source (the ports of a strip share one), set on
    the devices; Unsupported (a ValueError) names a device the simulator cannot speak for."""
    encoders: dict[str, Encoder] = {}
    grouped: dict[tuple[str, str], Route] = {}
    routes: list[Route] = []
    for dev in devices:
        via = dev.spec.via
        if via is None:
            continue
        encoder = encoders.get(via.source.id)
        if encoder is None:
            encoder = encoders[via.source.id] = make_encoder(via.source, timezone=via.timezone)
        try:
            encoder.check(via)
        except ValueError as exc:
            raise type(exc)(f"device {dev.spec.device_id}: {exc}") from None
        key = (via.source.id, via.address)
        route = grouped.get(key) if encoder.groups else None
        if route is None:
            route = Route(encoder, [], lane=len(routes))
            routes.append(route)
            if encoder.groups:
                grouped[key] = route
        route.members.append(dev)
        dev.route = route
    return routes


def _via(dev: SimDevice) -> Registration:
    via = dev.spec.via
    assert via is not None
    return via
