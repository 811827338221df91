"""The NATS server's MQTT layout the cluster's service relies on (CONTRACT §12, kernel/cluster.py), on a
real 3-node cluster from `cbrain cluster nats-config`'s files.

The service does not subscribe over MQTT: it reads the server's own stream `$MQTT_msgs`, in which the
server stores each QoS 1 publish (replicated) before its PUBACK, with one consumer per partition. That
stream is internal to nats-server, so these tests pin what the service depends on — its name,
retention, replicas, the mapped subjects, the partition kernel.cluster computes, the payload as the
device sent it — and fail when a server upgrade changes any of it. They also show that `kill -9` of
the stream's leader loses no acknowledged publish.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import nats
import paho.mqtt.client as mqtt
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import BadRequestError
from paho.mqtt.enums import CallbackAPIVersion

from kernel.cluster import MQTT_MSGS_STREAM, partition_of
from tests.nats_cluster import NatsCluster
from tests.servers import LOOPBACK

TIMEOUT = 10.0
DEVICE_ID = "cbt-device-1"  # a fixed client id: one gateway publishing for the devices behind it


@dataclass
class Published:
    """What one MQTT connection published and which of it the server acknowledged."""

    infos: list[tuple[str, bytes, mqtt.MQTTMessageInfo]] = field(default_factory=list)

    def acked(self) -> list[tuple[str, bytes]]:
        return [(topic, payload) for topic, payload, info in self.infos if info.is_published()]

    def unacked(self) -> list[tuple[str, bytes]]:
        return [(topic, payload) for topic, payload, info in self.infos if not info.is_published()]


class Device:
    """An MQTT 3.1.1 client with a persistent session (clean_session False) and a fixed client id, on one node."""

    def __init__(self, port: int, client_id: str = DEVICE_ID, inflight: int = 64) -> None:
        self.port = port
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv311, clean_session=False)
        self.client.max_inflight_messages_set(inflight)
        self.client.max_queued_messages_set(0)
        self.connected = threading.Event()
        self.dropped = threading.Event()
        self.published = Published()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_args: self.dropped.set()

    def _on_connect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if not reason.is_failure:
            self.connected.set()

    def connect(self, timeout: float = TIMEOUT) -> bool:
        """Connect and wait for a successful CONNACK; False (and nothing left running) if none came in time."""
        try:
            self.client.connect(LOOPBACK, self.port, keepalive=30)
        except OSError:
            return False
        self.client.loop_start()
        if self.connected.wait(timeout) and not self.dropped.is_set():
            return True
        self.close()
        return False

    def publish(self, messages: Iterable[tuple[str, bytes]], *, retain: bool = False) -> None:
        for topic, payload in messages:
            self.published.infos.append((topic, payload, self.client.publish(topic, payload, qos=1, retain=retain)))

    def wait_acked(self, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while self.published.unacked():
            assert time.monotonic() < deadline, f"{len(self.published.unacked())} publishes not acknowledged"
            time.sleep(0.01)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def _js_call(url: str, *requests: tuple[str, dict[str, Any] | None]) -> list[dict[str, Any]]:
    """JetStream API requests (subject, body) on one connection; their JSON answers."""
    nc = await nats.connect(url, connect_timeout=TIMEOUT, max_reconnect_attempts=3)
    try:
        answers = []
        for subject, body in requests:
            reply = await nc.request(subject, json.dumps(body).encode() if body is not None else b"", timeout=TIMEOUT)
            answers.append(json.loads(reply.data))
        return answers
    finally:
        await nc.close()


def js_call(url: str, *requests: tuple[str, dict[str, Any] | None]) -> list[dict[str, Any]]:
    return asyncio.run(_js_call(url, *requests))


async def _add_consumers(urls: list[str], filters: dict[str, str]) -> None:
    nc = await nats.connect(urls, connect_timeout=TIMEOUT)
    try:
        js = nc.jetstream(timeout=TIMEOUT)
        for name, subject_filter in filters.items():
            await js.add_consumer(MQTT_MSGS_STREAM, ConsumerConfig(
                durable_name=name, filter_subject=subject_filter, ack_policy=AckPolicy.EXPLICIT, num_replicas=3,
                ack_wait=60.0))
    finally:
        await nc.close()


def add_consumers(cluster: NatsCluster, filters: dict[str, str]) -> None:
    """Durable pull consumers on $MQTT_msgs (explicit ack, 3 replicas), name -> subject filter."""
    asyncio.run(_add_consumers(cluster.urls, filters))


@dataclass(frozen=True)
class Stored:
    subject: str
    headers: dict[str, str]
    data: bytes
    redelivered: bool


async def _drain(urls: list[str], consumer: str, until: set[bytes] | None, within_s: float) -> list[Stored]:
    nc = await nats.connect(urls, connect_timeout=TIMEOUT, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    got: list[Stored] = []
    try:
        js = nc.jetstream(timeout=TIMEOUT)
        sub = await js.pull_subscribe_bind(durable=consumer, stream=MQTT_MSGS_STREAM)
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            try:
                batch = await sub.fetch(500, timeout=1.0)
            except (TimeoutError, nats.errors.Error):
                batch = []
            for m in batch:
                got.append(Stored(m.subject, dict(m.headers or {}), m.data, m.metadata.num_delivered > 1))
                await m.ack()
            if not batch and (until is None or until <= {s.data for s in got}):
                break
        return got
    finally:
        await nc.close()


def drain(cluster: NatsCluster, consumer: str, *, until: set[bytes] | None = None,
          timeout: float = TIMEOUT) -> list[Stored]:
    """Every message a consumer hands out (acknowledged), until it has nothing more (and, given until, has
    handed out all those payloads) or the timeout."""
    return asyncio.run(_drain(cluster.urls, consumer, until, timeout))


def communities_around(partitions: int) -> tuple[int, list[str], list[str]]:
    """A partition p, three communities in it and nine in other partitions (all different ones)."""
    names = [f"community-{i}" for i in range(400)]
    p = partition_of(names[0], partitions)
    inside = [n for n in names if partition_of(n, partitions) == p][:3]
    outside: dict[int, str] = {}
    for n in names:
        outside.setdefault(partition_of(n, partitions), n)
    outside.pop(p)
    return p, inside, list(outside.values())[:9]


def readings(communities: list[str], per_device: int) -> list[tuple[str, bytes]]:
    """Telemetry of two devices per community, each payload unique (its bytes name it)."""
    out = []
    for c in communities:
        for device_type, device in (("smoke_detector", f"sd-{c}"), ("water_level", f"wl-{c}")):
            for seq in range(per_device):
                payload = json.dumps({"seq": seq, "device": device, "v": 1.5}, separators=(",", ":")).encode()
                out.append((f"cb/{c}/{device_type}/{device}/telemetry", payload))
    return out


def open_device(port: int, **kwargs: Any) -> Device:
    device = Device(port, **kwargs)
    assert device.connect(), f"no CONNACK from the MQTT listener on {port}"
    return device


def test_the_servers_mqtt_stream_holds_each_acknowledged_publish_in_its_partition(nats_cluster: NatsCluster) -> None:
    """$MQTT_msgs: interest retention, 3 replicas, each PUBACKed QoS 1 publish under $MQTT.msgs.cbp.<p>.<topic
    levels> with partition_of()'s p, the device's bytes unchanged behind one header; a partition's consumer gets
    exactly its communities' messages."""
    subjects = nats_cluster.subjects
    p, inside, outside = communities_around(subjects.partitions)
    device = open_device(nats_cluster.mqtt_ports[0])  # the server makes its MQTT streams for the account now
    try:
        add_consumers(nats_cluster, {f"cb-p{p}": subjects.partition_filter(p), "audit": subjects.all_partitions_filter})
        telemetry = readings(inside + outside, per_device=3)
        status = [(f"cb/{c}/smoke_detector/sd-{c}/status", f"online {c}".encode()) for c in inside + outside]
        device.publish(telemetry)
        device.publish(status, retain=True)
        device.wait_acked()
        sent = device.published.acked()
    finally:
        device.close()
    assert len(sent) == len(telemetry) + len(status) == 12 * 7

    info = js_call(nats_cluster.urls[1], (f"$JS.API.STREAM.INFO.{MQTT_MSGS_STREAM}", None))[0]
    config = info["config"]
    assert (config["name"], config["subjects"]) == ("$MQTT_msgs", ["$MQTT.msgs.>"])
    assert (config["retention"], config["num_replicas"], config["storage"]) == ("interest", 3, "file")
    assert len(info["cluster"]["replicas"]) == 2 and info["cluster"]["leader"]

    stored = drain(nats_cluster, "audit", until={payload for _, payload in sent})
    assert sorted((s.subject, s.data) for s in stored) == sorted(
        (subjects.mapped_subject(topic), payload) for topic, payload in sent)
    for s in stored:
        topic = subjects.topic_of(s.subject)
        community = topic.split("/")[1]
        assert s.subject.startswith(f"$MQTT.msgs.cbp.{partition_of(community, 16)}.{community}.")
        # One header saying it came over MQTT at QoS 1, retained or not; the body is the device's bytes.
        assert s.headers == {"Nmqtt-Pub": "1"}, s.headers
        assert not s.redelivered
    assert len({partition_of(c, 16) for c in outside}) == 9  # ten partitions took part

    mine = drain(nats_cluster, f"cb-p{p}", until={payload for topic, payload in sent if topic.split("/")[1] in inside})
    assert sorted((subjects.topic_of(s.subject), s.data) for s in mine) == sorted(
        (topic, payload) for topic, payload in sent if topic.split("/")[1] in inside)


def test_a_publish_no_consumer_wants_is_acknowledged_and_not_kept(nats_cluster: NatsCluster) -> None:
    """Interest retention: a QoS 1 publish to a partition without a consumer is PUBACKed and dropped at once, so
    every partition's consumer must exist before devices publish. Neither can a consumer of another replica count
    be made on it (the server requires the stream's)."""
    subjects = nats_cluster.subjects
    device = open_device(nats_cluster.mqtt_ports[2])
    try:
        add_consumers(nats_cluster, {"p0": subjects.partition_filter(0)})
        community = next(f"c{i}" for i in range(100) if partition_of(f"c{i}", 16) != 0)
        device.publish([(f"cb/{community}/smoke_detector/sd-1/telemetry", b'{"seq":1}')])
        device.wait_acked()
    finally:
        device.close()
    state = js_call(nats_cluster.urls[0], (f"$JS.API.STREAM.INFO.{MQTT_MSGS_STREAM}", None))[0]["state"]
    assert (state["messages"], state["last_seq"]) == (0, 1)
    try:
        asyncio.run(_add_one_replica_consumer(nats_cluster.urls))
    except BadRequestError as exc:
        assert exc.description == "consumer config replicas must match interest retention stream's replicas"
    else:
        raise AssertionError("a consumer with 1 replica was accepted on $MQTT_msgs")


async def _add_one_replica_consumer(urls: list[str]) -> None:
    nc = await nats.connect(urls, connect_timeout=TIMEOUT)
    try:
        await nc.jetstream(timeout=TIMEOUT).add_consumer(MQTT_MSGS_STREAM, ConsumerConfig(
            durable_name="r1", filter_subject="$MQTT.msgs.cbp.>", ack_policy=AckPolicy.EXPLICIT, num_replicas=1))
    finally:
        await nc.close()


def test_a_retained_status_is_kept_under_the_mapped_topic(nats_cluster: NatsCluster) -> None:
    """A retained publish is also kept in $MQTT_rmsgs, under the mapped subject and with the mapped topic: an MQTT
    subscriber to cb/# gets neither the live messages nor the retained ones of mapped topics."""
    device = open_device(nats_cluster.mqtt_ports[1])
    try:
        device.publish([("cb/c7/smoke_detector/d7/status", b"online")], retain=True)
        device.wait_acked()
    finally:
        device.close()
    p = partition_of("c7", 16)
    answer = js_call(nats_cluster.urls[0], ("$JS.API.STREAM.MSG.GET.$MQTT_rmsgs",
                                            {"last_by_subj": f"$MQTT.rmsgs.cbp.{p}.c7.smoke_detector.d7.status"}))[0]
    assert "message" in answer, answer
    headers = base64.b64decode(answer["message"]["hdrs"]).decode()
    assert f"Nmqtt-RTopic:cbp/{p}/c7/smoke_detector/d7/status\r\n" in headers
    assert base64.b64decode(answer["message"]["data"]) == b"online"


class ResendingDevice:
    """Publishes a fixed list of readings at QoS 1 whatever happens to the node it is connected to: when the
    connection drops it connects (same client id, persistent session) to the next live node and sends again
    every reading not acknowledged yet, as a device does. Bounded in time."""

    def __init__(self, cluster: NatsCluster, first_node: int, messages: list[tuple[str, bytes]]) -> None:
        self.cluster = cluster
        self.node = first_node
        self.messages = messages
        self.acked: set[bytes] = set()
        self.sent = 0
        self.connections: list[tuple[int, float]] = []  # (node, seconds from the start to its CONNACK)
        self.refused: list[tuple[int, float]] = []  # (node, seconds from the start) of attempts that failed
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="resending-device", daemon=True)
        self.started = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"still publishing after {timeout} s ({len(self.acked)} acknowledged)"
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            self._publish_all(deadline=time.monotonic() + 45.0)
        except BaseException as exc:
            self.error = exc

    def _publish_all(self, deadline: float) -> None:
        while True:
            device = self._connect(deadline)
            todo = [(t, p) for t, p in self.messages if p not in self.acked]
            device.publish(todo)
            self.sent += len(todo)
            while not device.dropped.is_set() and device.published.unacked():
                assert time.monotonic() < deadline, f"{len(todo) - len(device.published.acked())} not acknowledged"
                time.sleep(0.005)
                self.acked.update(p for _, p in device.published.acked())
            self.acked.update(p for _, p in device.published.acked())
            device.close()
            if len(self.acked) == len(self.messages):
                return

    def _connect(self, deadline: float) -> Device:
        """A connection to the current node or, failing that, the next live ones in turn."""
        while time.monotonic() < deadline:
            if self.node in self.cluster.live():
                device = Device(self.cluster.mqtt_ports[self.node - 1], inflight=256)
                if device.connect(timeout=8.0):
                    self.connections.append((self.node, round(time.monotonic() - self.started, 2)))
                    return device
                self.refused.append((self.node, round(time.monotonic() - self.started, 2)))
            self.node = self.node % len(self.cluster.mqtt_ports) + 1
            time.sleep(0.05)
        raise AssertionError("no node took the device's connection in time")


def test_kill_9_of_the_stream_leader_loses_no_acknowledged_publish(nats_cluster: NatsCluster) -> None:
    """3,000 QoS 1 readings to the node that leads $MQTT_msgs, which is killed with SIGKILL after the first
    1,000 acknowledgements: the device reconnects to another node and resends what was not acknowledged;
    every acknowledged reading is in $MQTT_msgs (counted by unique payload; resent ones may be there twice)."""
    subjects = nats_cluster.subjects
    open_device(nats_cluster.mqtt_ports[0], client_id="cbt-probe").close()  # the MQTT streams exist from now
    add_consumers(nats_cluster, {"audit": subjects.all_partitions_filter})
    leader = nats_cluster.stream_leader(MQTT_MSGS_STREAM)
    assert nats_cluster.consumer_leader(MQTT_MSGS_STREAM, "audit") in (1, 2, 3)
    messages = readings([f"community-{i}" for i in range(10)], per_device=150)
    assert len(messages) == 3000

    device = ResendingDevice(nats_cluster, leader, messages)
    device.start()
    deadline = time.monotonic() + 20.0
    while len(device.acked) < 1000:
        assert time.monotonic() < deadline, f"only {len(device.acked)} acknowledged before the kill"
        time.sleep(0.002)
    killed_at, acked_at_kill = time.monotonic(), len(device.acked)
    nats_cluster.kill(leader)
    new_leader = nats_cluster.stream_leader(MQTT_MSGS_STREAM, timeout=20.0)
    elected_s = time.monotonic() - killed_at
    device.join(timeout=45.0)
    assert new_leader != leader and len(device.acked) == 3000
    assert acked_at_kill < 2500 and len(device.connections) >= 2, "the kill did not land mid-stream"

    stored = drain(nats_cluster, "audit", until=device.acked, timeout=20.0)
    payloads = [s.data for s in stored]
    missing = device.acked - set(payloads)
    assert not missing, f"{len(missing)} acknowledged readings are not in $MQTT_msgs"
    assert set(payloads) <= {p for _, p in messages}
    print(f"\nnats-{leader} killed at {acked_at_kill} acknowledged; nats-{new_leader} leads after {elected_s:.1f} s; "
          f"connections (node, s after the start): {device.connections}, refused {device.refused}; "
          f"{device.sent} sent for 3000, {len(payloads)} stored ({len(payloads) - len(set(payloads))} twice)")
    nats_cluster.restart(leader)  # the killed node comes back and catches up (its /healthz turns ok)
