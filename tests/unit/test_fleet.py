"""The simulator's pure pieces: MQTT packets, the schedule on a fake clock, faults, repeatability."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from collections import Counter, defaultdict
from typing import Any

import orjson
import pytest

from app.cli import main
from device_sim.fleet import Fleet
from device_sim.mqtt import (
    ConnectRefused,
    MqttClient,
    PacketReader,
    Will,
    connect_packet,
    encode_topic,
    encode_varint,
    parse_url,
    publish_packet,
)
from device_sim.schedule import FleetCore
from device_sim.specs import DeviceSpec, Faults, generate_devices
from device_sim.types import device_mix
from kernel.devices import CATALOG
from kernel.ids import DeviceType

# ---- packets ------------------------------------------------------------------------------------


def test_remaining_length_encoding_matches_the_spec_examples() -> None:
    cases = {0: "00", 127: "7f", 128: "8001", 16383: "ff7f", 16384: "808001", 2097151: "ffff7f",
             2097152: "80808001", 268435455: "ffffff7f"}
    for n, hexa in cases.items():
        assert encode_varint(n).hex() == hexa
    with pytest.raises(ValueError):
        encode_varint(268435456)


def test_connect_packet_carries_will_user_and_password() -> None:
    will = Will("cb/c1/smoke_detector/sd1/status", b"offline", qos=1, retain=True)
    pkt = connect_packet("dev-1", keepalive=30, username="sd1", password="pw", will=will)
    assert pkt[0] == 0x10
    ((first, body),) = PacketReader().feed(pkt)
    assert first == 0x10
    assert body[:6] == b"\x00\x04MQTT" and body[6] == 4
    # user name, password, will retain, will QoS 1, will flag, clean session
    assert body[7] == 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02
    assert int.from_bytes(body[8:10], "big") == 30
    rest, fields = body[10:], []
    while rest:
        n = int.from_bytes(rest[:2], "big")
        fields.append(rest[2:2 + n])
        rest = rest[2 + n:]
    assert fields == [b"dev-1", b"cb/c1/smoke_detector/sd1/status", b"offline", b"sd1", b"pw"]
    bare = connect_packet("x", keepalive=0)
    assert bare[2 + 7] == 0x02  # only clean session


def test_publish_packets_survive_being_read_back_in_pieces() -> None:
    topic = encode_topic("cb/c1/water_level/wl1/telemetry")
    packets = [publish_packet(topic, b"x" * n, qos=1, retain=n == 0, packet_id=n + 1) for n in (0, 5, 200, 20000)]
    packets.append(publish_packet(topic, b"q0", qos=0))
    stream = b"".join(packets)
    reader, got = PacketReader(), []
    for i in range(0, len(stream), 7):
        got += reader.feed(stream[i:i + 7])
    assert [first for first, _ in got] == [0x33, 0x32, 0x32, 0x32, 0x30]
    for (_, body), n in zip(got[:4], (0, 5, 200, 20000), strict=True):
        assert body[:len(topic)] == topic
        assert int.from_bytes(body[len(topic):len(topic) + 2], "big") == n + 1
        assert body[len(topic) + 2:] == b"x" * n
    assert got[4][1] == topic + b"q0"


def test_topics_and_urls_are_checked() -> None:
    with pytest.raises(ValueError):
        encode_topic("cb/+/x")
    url = parse_url("mqtts://dev%40x:p%3Aw@broker.example:8884")
    assert (url.host, url.port, url.username, url.password, url.tls) == ("broker.example", 8884, "dev@x", "p:w", True)
    assert parse_url("mqtt://127.0.0.1").port == 1883
    with pytest.raises(ValueError):
        parse_url("http://127.0.0.1:1883")
    assert "not authorised" in str(ConnectRefused(5, "the broker"))
    assert "bad user name or password" in str(ConnectRefused(4, "the broker"))


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


async def test_client_batches_publishes_into_one_write_and_counts_pubacks() -> None:
    client = MqttClient("c", inflight=3)
    transport = _Transport()
    client.connection_made(transport)
    assert transport.writes[0][0] == 0x10  # CONNECT
    topic = encode_topic("cb/c/fire_lane/f1/telemetry")
    for n in range(3):
        client.publish_nowait(topic, b"p%d" % n, 1, False, tag=n % 2)
    assert client.room() == 0 and client.inflight == 3
    client.flush()
    assert transport.writes[1:] == [b"".join(publish_packet(topic, b"p%d" % n, packet_id=n + 1) for n in range(3))]
    client.data_received(b"\x40\x02\x00\x01\x40\x02")  # one PUBACK and half of the next
    assert (client.acked, client.acked_tagged, client.inflight) == (1, 0, 2)
    client.data_received(b"\x00\x02\x40\x02\x00\x09")  # an id that was never used is ignored
    assert (client.acked, client.acked_tagged, client.unacked_tagged()) == (2, 1, 0)
    assert client.room() == 2


# ---- the schedule -------------------------------------------------------------------------------


class Recorder:
    """A sink that keeps what it was given and has as much room as the test says."""

    def __init__(self) -> None:
        self.acked_tagged = 0
        self.space = 10**9
        self.messages: list[tuple[str, bytes, bool]] = []
        self._queued: list[tuple[str, bytes, bool]] = []

    def room(self) -> int:
        return self.space - len(self._queued)

    def publish_nowait(self, topic: bytes, payload: bytes, qos: int = 1, retain: bool = False, tag: int = 0) -> None:
        self._queued.append((topic[2:].decode(), payload, retain))

    def flush(self) -> None:
        self.messages += self._queued
        self._queued.clear()


def core_with_recorders(devices: list[DeviceSpec], **kwargs: Any) -> tuple[FleetCore, list[Recorder]]:
    core = FleetCore("cb", devices, start=1_800_000_000.0, **kwargs)
    sinks = []
    for link in core.links:
        link.client = sink = Recorder()
        link.up = True
        sinks.append(sink)
    return core, sinks


def readings(sinks: list[Recorder]) -> list[tuple[str, dict[str, Any]]]:
    return [(t.split("/")[3], orjson.loads(p)) for s in sinks for t, p, _ in s.messages if t.endswith("/telemetry")]


def devices(n: int) -> list[DeviceSpec]:
    return generate_devices(n, ["c001", "c002", "c003"])


def test_a_rate_is_held_exactly_whatever_the_ticks() -> None:
    rate = 1000.0
    core, sinks = core_with_recorders(devices(37), rate=rate, connections=3)
    rng = random.Random(5)
    tenths_of_ms = 0
    while tenths_of_ms < 100_000:
        tenths_of_ms += rng.choice([4, 30, 171, 2500])
        now = (tenths_of_ms + 0.5) / 10_000  # between two slots, so float rounding cannot matter
        core.advance(now)
        core.flush()
        # Every reading due by now, from the start: floor(now × rate) + 1 (slots 0, 1/rate, 2/rate, ...).
        assert core.stats.readings == math.floor(now * rate) + 1
    got = readings(sinks)
    assert len(got) == core.stats.readings == core.stats.sent
    by_device: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for device_id, body in got:
        by_device[device_id].append(body)
    assert len(by_device) == 37
    for bodies in by_device.values():
        bodies.sort(key=lambda b: b["seq"])
        assert [b["seq"] for b in bodies] == list(range(len(bodies)))
        gaps = {b["ts"] - a["ts"] for a, b in itertools.pairwise(bodies)}
        assert gaps == {37}  # N / rate seconds between a device's readings, in ms


def test_without_a_rate_each_device_keeps_its_models_interval_scaled_by_speed() -> None:
    specs = [DeviceSpec("c1", t, f"d{i}-{CATALOG[t].id_prefix}") for i in range(5) for t in DeviceType]
    core, sinks = core_with_recorders(specs, speed=10.0, connections=2)
    core.advance(59.999)
    core.flush()
    counts = Counter(device_id for device_id, _ in readings(sinks))
    for spec in specs:
        interval = core.devices[spec.device_id].model.interval_s
        assert counts[spec.device_id] == pytest.approx(600.0 / interval, abs=1)
    assert core.target_rate == pytest.approx(sum(10.0 / core.devices[s.device_id].model.interval_s for s in specs))


def test_the_end_of_a_run_is_exclusive_and_a_count_is_exact() -> None:
    core, _ = core_with_recorders(devices(10), rate=10.0)
    core.advance(1.0, 1.0, strict=True)
    assert core.stats.readings == 10  # due at 0.0 .. 0.9
    core, _ = core_with_recorders(devices(10), rate=1000.0)
    core.limit = 123
    core.advance(5.0)
    assert core.stats.readings == 123 and core.exhausted


def test_a_full_window_delays_readings_and_shows_as_lateness() -> None:
    core, sinks = core_with_recorders(devices(4), rate=100.0, connections=1)
    sinks[0].space = 0
    core.advance(0.5)
    assert core.stats.readings == 0 and core.stats.late_now == pytest.approx(0.5)
    sinks[0].space = 10**9
    core.advance(0.52)
    assert core.stats.readings == 53 and core.stats.late_max == pytest.approx(0.52)
    assert core.stats.late_now == pytest.approx(0.52)
    core.advance(0.6)
    assert core.stats.late_now == pytest.approx(0.6 - 0.53)


def test_a_device_switched_off_skips_its_slots_and_keeps_its_seq() -> None:
    core, sinks = core_with_recorders(devices(2), rate=10.0, connections=1)
    dev = core.devices["sd-sim-000000"]
    core.advance(0.95)
    dev.on = False
    core.advance(2.95)
    dev.on = True
    core.advance(3.95)
    core.flush()
    seqs = [b["seq"] for d, b in readings(sinks) if d == "sd-sim-000000"]
    assert seqs == list(range(len(seqs))) and len(seqs) == 10
    assert core.stats.errors == 0


# ---- faults -------------------------------------------------------------------------------------


def test_faults_are_accounted_for_reading_by_reading() -> None:
    faults = Faults(dropout=0.1, duplicate=0.1, reorder=0.1, skew_s=30.0)
    core, sinks = core_with_recorders(devices(5), rate=100.0, connections=2, faults=faults)
    core.advance(39.999)
    core.release_held()
    core.flush()
    st = core.stats
    assert st.readings == 4000 and st.dropped and st.duplicated and st.reordered
    got = readings(sinks)
    assert len(got) == st.sent == st.readings - st.dropped + st.duplicated
    by_device: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for device_id, body in got:
        by_device[device_id].append(body)
    missing = duplicates = inversions = 0
    for device_id, bodies in by_device.items():
        seqs = [b["seq"] for b in bodies]
        counts = Counter(seqs)
        duplicates += sum(c - 1 for c in counts.values())
        missing += core.devices[device_id].seq - len(counts)  # seqs used - seqs seen
        first: dict[int, dict[str, Any]] = {}
        for b in bodies:
            first.setdefault(b["seq"], b)
        inversions += sum(1 for i, s in enumerate(seqs) if any(later < s for later in seqs[i + 1:i + 2]))
        # One fixed clock offset per device, within ±skew: ts = due time + offset.
        offsets = {first[s]["ts"] - round((1_800_000_000.0 + s * 0.05) * 1000) for s in first}
        offset = next(iter(offsets))
        assert max(offsets) - min(offsets) <= 1 and abs(offset) <= 30_000
        assert device_id in core.devices
    assert missing == st.dropped
    assert duplicates == st.duplicated
    assert st.reordered - len(by_device) <= inversions <= st.reordered


def test_faults_parse_from_the_command_line_form() -> None:
    assert Faults.parse("dropout=0.01,duplicate=0.02, reorder=0.03,skew=30") == Faults(0.01, 0.02, 0.03, 30.0)
    assert Faults.parse("") == Faults()
    for bad in ("dropout", "loss=0.1", "dropout=x", "dropout=1.5", "skew=-1", "dropout=nan"):
        with pytest.raises(ValueError):
            Faults.parse(bad)


# ---- repeatability ------------------------------------------------------------------------------


def payloads(seed: int, tick: float, connections: int) -> dict[str, list[bytes]]:
    specs = generate_devices(40, ["c001", "c002"])
    core, sinks = core_with_recorders(specs, seed=seed, rate=400.0, connections=connections,
                                      faults=Faults(dropout=0.05, duplicate=0.05, reorder=0.05, skew_s=5))
    now, begun = 0.0, False
    while now + tick < 3.0:
        now += tick
        if now >= 1.0 and not begun:
            # As Fleet.at does it: what is due before the action goes first.
            core.advance(now, 1.0, strict=True)
            core.devices["sd-sim-000000"].model.begin("incident", core.start + 1.0, {})
            begun = True
        core.advance(now)
    core.advance(3.0, 3.0, strict=True)
    core.flush()
    out: dict[str, list[bytes]] = defaultdict(list)
    for s in sinks:
        for topic, payload, _ in s.messages:
            out[topic].append(payload)
    return dict(out)


def test_the_same_seed_gives_the_same_readings_however_the_ticks_and_connections_fall() -> None:
    base = payloads(3, 0.005, 4)
    assert payloads(3, 0.005, 4) == base
    assert payloads(3, 0.0371, 1) == base
    assert payloads(4, 0.005, 4) != base


# ---- devices and options ------------------------------------------------------------------------


def test_generated_devices_mix_types_and_spread_over_communities() -> None:
    specs = generate_devices(20, ["a", "b"], taken={"sd-sim-000001"})
    assert len(specs) == 20 and len({s.device_id for s in specs}) == 20
    assert "sd-sim-000001" not in {s.device_id for s in specs}
    assert specs[0] == DeviceSpec("a", DeviceType.SMOKE_DETECTOR, "sd-sim-000000")
    assert Counter(s.community for s in specs) == {"a": 10, "b": 10}
    assert {s.device_type for s in specs} == set(device_mix())


def test_fleet_construction_checks_its_devices() -> None:
    specs = devices(3)
    with pytest.raises(ValueError, match="not simulated"):
        Fleet("mqtt://127.0.0.1:1", "cb", specs, own_connection=["nope"])
    with pytest.raises(ValueError, match="twice"):
        Fleet("mqtt://127.0.0.1:1", "cb", specs + specs[:1])
    with pytest.raises(ValueError, match="broker URL"):
        Fleet("http://127.0.0.1:1", "cb", specs)
    fleet = Fleet("mqtt://u:p@127.0.0.1:1", "cb", specs, own_connection=[specs[0].device_id], connections=4)
    links = fleet.core.links
    assert len(links) == 3 and sum(link.own is not None for link in links) == 1
    own = next(link for link in links if link.own is not None)
    assert own.will == Will(f"cb/{specs[0].community}/smoke_detector/{specs[0].device_id}/status", b"offline")
    assert (own.username, own.password) == ("u", "p")
    per_device = Fleet("mqtt://127.0.0.1:1", "cb", specs, credentials=lambda d: (d, f"pw-{d}"))
    assert sorted((link.username, link.password) for link in per_device.core.links) == sorted(
        (s.device_id, f"pw-{s.device_id}") for s in specs)
    assert set(per_device.models) == {s.device_id for s in specs}


def test_cbrain_simulate_rejects_bad_options_in_one_line(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--devices", "3", "--faults", "dropout=2", "--mqtt-url", "mqtt://127.0.0.1:1"]) == 2
    assert "--faults: dropout must be a probability" in capsys.readouterr().err
    creds = tmp_path / "creds.csv"
    creds.write_text("sd-sim-000000,u0,p0\nbroken line\n")
    assert main(["simulate", "--devices", "2", "--credentials", str(creds)]) == 2
    assert ":2: expected device_id,username,password" in capsys.readouterr().err
    creds.write_text("# id,user,password\nsd-sim-000000,u0,p0\n")
    assert main(["simulate", "--devices", "2", "--credentials", str(creds)]) == 2
    assert "no credentials for 1 of the 2 devices (first: sd-sim-000001)" in capsys.readouterr().err
    assert main(["simulate"]) == 2
    assert "give --devices N or --config SITE" in capsys.readouterr().err
    assert main(["simulate", "--devices", "2", "--mqtt-url", "http://x"]) == 2
    capsys.readouterr()
