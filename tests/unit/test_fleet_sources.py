"""The fleet's schedule with devices that report through other systems (device_sim.routes): each is sent as
its source sends it, on the gateway connections or to the pusher, a strip's ports in one message; what
it sends reads back through the service's decoder as every device's readings and statuses."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from device_sim.pusher import Pusher
from device_sim.schedule import FleetCore
from device_sim.specs import DeviceSpec, Faults, site_devices
from kernel.ids import DeviceType
from kernel.reading import Reading, StatusUpdate
from tests.sources_kit import decoder_for
from tests.unit.test_sim_sources import SITE, START_MS


class Recorder:
    """A link's sink: MQTT publishes (topic as encoded) or pushes, in order."""

    def __init__(self) -> None:
        self.acked_tagged = 0
        self.space = 10**9
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lanes: list[int] = []

    def room(self) -> int:
        return self.space - len(self.messages)

    def publish_nowait(self, topic: bytes, payload: bytes, qos: int = 1, retain: bool = False, tag: int = 0) -> None:
        self.messages.append((topic[2:].decode(), payload, retain))

    def push(self, lane: int, path: str, body: bytes, tag: int = 0) -> None:
        self.messages.append((urlsplit(path).path, body, False))
        self.lanes.append(lane)

    def flush(self) -> None:
        pass


def fleet(faults: Faults | None = None) -> tuple[FleetCore, Any, list[DeviceSpec]]:
    decoder, _, settings = decoder_for(SITE)
    specs, _ = site_devices(settings)
    specs.append(DeviceSpec("linfen-yicun", DeviceType.SMOKE_DETECTOR, "sd-native"))
    core = FleetCore("cb", specs, start=START_MS / 1000.0, speed=60.0, connections=2, faults=faults,
                     own_connection=["sd-nb", "sd-native"])
    for link in core.links:
        link.client = Recorder()
        link.up = True
    return core, decoder, specs


def decoded(core: FleetCore, decoder: Any) -> tuple[dict[str, list[Reading]], dict[str, list[bool]]]:
    readings: dict[str, list[Reading]] = defaultdict(list)
    statuses: dict[str, list[bool]] = defaultdict(list)
    for link in core.links:
        assert isinstance(link.client, Recorder)
        for topic, payload, _ in link.client.messages:
            items = decoder.decode(topic, payload)
            for item in items if isinstance(items, list) else [items]:
                if isinstance(item, Reading):
                    readings[item.device_id].append(item)
                elif isinstance(item, StatusUpdate):
                    statuses[item.device_id].append(item.online)
                else:
                    raise AssertionError(item)
    return readings, statuses


def test_every_device_reports_through_its_source_and_reads_back() -> None:
    core, decoder, specs = fleet()
    links = {d: core.devices[d].link for d in ("sd-z", "sd-lora", "ev-p1", "ev-p2", "sd-nb", "sd-studio", "sd-native")}
    assert links["sd-nb"] is links["sd-studio"] and links["sd-nb"].http  # pushes, not its own connection
    assert links["ev-p1"] is links["ev-p2"] and not links["sd-z"].http and links["sd-z"].own is None
    assert links["sd-native"].own is core.devices["sd-native"]
    for dev in core.devices.values():
        core.announce(dev)
    core.devices["sd-nb"].model.begin("fire", START_MS / 1000.0, {})
    core.advance(10.0)  # ten simulated minutes
    readings, statuses = decoded(core, decoder)
    assert set(readings) == {s.device_id for s in specs}
    assert all(statuses[s.device_id] == [True] for s in specs if s.via and s.via.source.type != "chirpstack")
    assert core.stats.readings == core.stats.sent == sum(len(r) for r in readings.values())
    # The strip's ports come in one message each time: as many as the first port's readings.
    strip = [m for m in links["ev-p1"].client.messages if m[0] == "tele/shed_strip_1/SENSOR"]  # type: ignore[union-attr]
    assert len(strip) == len(readings["ev-p1"]) == len(readings["ev-p2"]) == 20  # every 30 s
    # Counted sources keep the device's seq; the fire reached the service through CTWing.
    assert [r.seq for r in readings["sd-nb"]] == list(range(10))
    assert any(r.fields["alarm"] for r in readings["sd-nb"])
    assert not any(r.fields["alarm"] for r in readings["sd-studio"])
    # Each push source's device keeps to its lane, so its pushes arrive in order.
    pushes = links["sd-nb"].client
    assert isinstance(pushes, Recorder) and len(set(pushes.lanes)) == 2


def test_faults_count_readings_of_source_messages() -> None:
    core, decoder, _ = fleet(Faults(dropout=0.1, duplicate=0.1, reorder=0.1))
    core.advance(60.0)
    core.release_held()
    st = core.stats
    assert st.dropped and st.duplicated and st.reordered
    readings, _ = decoded(core, decoder)
    assert st.sent == st.readings - st.dropped + st.duplicated
    # A repeat of a ChirpStack uplink (its deduplicationId) or of a push (its bytes) is one reading.
    assert st.sent - st.duplicated <= sum(len(r) for r in readings.values()) < st.sent


def test_a_strips_ports_and_a_shellys_switches_go_off_the_air_together() -> None:
    core, _, _ = fleet()
    assert {d.spec.device_id for d in core.peers(core.devices["ev-p2"])} == {"ev-p1", "ev-p2"}
    assert [d.spec.device_id for d in core.peers(core.devices["sd-z"])] == ["sd-z"]
    strip = core.devices["ev-p1"]
    core.publish_status(strip, b"offline")
    link = strip.link
    assert link is not None and isinstance(link.client, Recorder)
    assert link.client.messages[-1] == ("tele/shed_strip_1/LWT", b"Offline", True)


def test_devices_the_fleet_cannot_speak_for_are_named() -> None:
    _, _, settings = decoder_for(SITE)
    specs, _ = site_devices(settings)
    via = next(s.via for s in specs if s.device_id == "sd-nb")
    assert via is not None
    wrong = DeviceSpec("linfen-yicun", DeviceType.SMOKE_DETECTOR, "sd-x", type(via)(
        "sd-x", DeviceType.SMOKE_DETECTOR, via.source, "abc", profile="my-own"))
    with pytest.raises(ValueError, match=r"device sd-x: .*profile 'my-own'"):
        FleetCore("cb", [wrong])
    assert Counter(s.via is None for s in specs) == Counter({False: 10})


async def test_a_push_not_answered_200_is_sent_again_up_to_three_times_in_its_lanes_order() -> None:
    attempts: list[bytes] = []

    def service(request: httpx.Request) -> httpx.Response:
        attempts.append(request.content)
        assert request.url.path.startswith("/ingest/") and request.headers["content-type"] == "application/json"
        if request.content == b"late":  # durable only at the third try: 503, 503, 200
            return httpx.Response(200 if attempts.count(b"late") == 3 else 503, text="push again")
        return httpx.Response(500 if request.content == b"never" else 200, text="ok")

    pusher = Pusher("http://service.test", transport=httpx.MockTransport(service), retry_delays_s=(0.0,))
    await pusher.start()
    try:
        pusher.push(0, "/ingest/ctwing/aep?token=t", b"late", 1)
        pusher.push(0, "/ingest/ctwing/aep?token=t", b"never", 1)
        pusher.push(0, "/ingest/ctwing/aep?token=t", b"after", 1)
        pusher.push(1, "/ingest/onenet/studio", b"other", 2)
        assert pusher.room() == pusher.window - 4 and pusher.unacked_tagged() == 5
        pusher.flush()
        assert await pusher.drain(5.0)
    finally:
        await pusher.close()
    lane0 = [a for a in attempts if a != b"other"]
    assert lane0 == [b"late"] * 3 + [b"never"] * 4 + [b"after"]  # one at a time, in order, 1 + 3 tries at most
    assert (pusher.answered, pusher.given_up, pusher.acked_tagged, pusher.lost_tagged) == (3, 1, 4, 1)
    assert pusher.unacked_tagged() == 0


def test_a_rate_counts_each_port_of_a_strip() -> None:
    _, _, settings = decoder_for(SITE)
    specs, _ = site_devices(settings)
    core = FleetCore("cb", specs, start=START_MS / 1000.0, rate=100.0)
    for link in core.links:
        link.client = Recorder()
        link.up = True
    core.advance(9.9999)
    assert core.target_rate == 100.0 and core.stats.readings == pytest.approx(1000, abs=2)
    # At their own intervals: 5 devices a minute, 5 every 30 s (the strip's 2 ports in one slot).
    at_intervals = FleetCore("cb", specs, start=START_MS / 1000.0)
    assert at_intervals.target_rate == pytest.approx(5 / 60 + 5 / 30)
