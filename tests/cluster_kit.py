"""What the cluster's tests share: a site of several communities, instances as processes, devices that
publish MQTT 3.1.1 QoS 1 to the cluster's nodes and remember what was acknowledged."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from app.cluster.members import wanted_holder
from kernel.cluster import partition_of
from tests.servers import free_port
from tests.service import EXAMPLE_SITE, ServiceProcess, recipients_at

# The example site's first community, cloned: each clone has the two smoke detectors of building b01,
# the fire lane and the water level gauge (the names of the clones spread over the partitions).
TEMPLATE = "linfen-yicun"


def cluster_site(tmp: Path, *, name: str, nats: list[str], mqtt_port: int, influx_url: str, database: str,
                 receiver_base: str, communities: Iterable[str], partitions: int, timings: dict[str, float],
                 extra: dict[str, Any] | None = None) -> Path:
    """The site file of one instance: the example site plus clones of its first community."""
    raw = yaml.safe_load(EXAMPLE_SITE.read_text(encoding="utf-8"))
    for place in [raw.get("street") or {}, *raw.get("communities", []),
                  *(g for c in raw.get("communities", []) for g in c.get("grids", []))]:
        place.pop("duties", None)
        place.pop("roster_verified", None)
    for c in raw["communities"]:  # a cluster refuses them for now (docs/scaling.md)
        for key in ("shelters", "supplies", "vulnerable"):
            c.pop(key, None)
    template = next(c for c in raw["communities"] if c["id"] == TEMPLATE)
    devices = [d for d in raw["devices"] if d["community"] == TEMPLATE and d["type"] != "ebike_charger"]
    for cid in communities:
        clone = copy.deepcopy(template) | {"id": cid, "name": cid}
        raw["communities"].append(clone)
        raw["devices"] += [d | {"community": cid} for d in copy.deepcopy(devices)]
    raw["recipients"] = recipients_at(receiver_base)
    raw["mqtt"] = {"url": f"mqtt://127.0.0.1:{mqtt_port}", "prefix": "cb", "client_id": f"cbrain-{name}"}
    raw["influx"] = {"url": influx_url, "database": database}
    raw["http"] = {"host": "127.0.0.1", "port": free_port()}
    raw["state_dir"] = str(tmp / "state")
    raw["ingest"] = {"retry_max_s": 1.0}
    raw["alerts"] = {"retry_min_s": 0.2, "retry_max_s": 1.0}
    raw["cluster"] = {"nats": nats, "instance": name, "partitions": partitions, **timings}
    raw["rule_overrides"] = [
        # The fire lane counts seconds here, not minutes: a handover falls in the middle of its count.
        {"rule": "fire_lane.blocked", "match": {"device_type": "fire_lane"},
         "set": {"levels": [{"level": "yellow", "when": {"field": "occupied", "is": True}, "for": "12s"}],
                 "reminder_every": None}}]
    for key, value in (extra or {}).items():
        raw[key] = value
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def spread(partitions: int, count: int, stem: str = "k") -> list[str]:
    """`count` community ids whose partitions differ as far as they can."""
    out: list[str] = []
    seen: set[int] = set()
    i = 0
    while len(out) < count and i < 10_000:
        cid = f"{stem}{i}"
        p = partition_of(cid, partitions)
        if p not in seen or len(seen) >= partitions:
            out.append(cid)
            seen.add(p)
        i += 1
    return out


class Instance(ServiceProcess):
    """`cbrain run` of one instance of the cluster."""

    def cluster(self) -> dict[str, Any]:
        """GET /health's cluster."""
        r = self.http.get("/health")
        body: dict[str, Any] = r.json()
        return body.get("cluster") or {}

    def held(self) -> set[int]:
        """The partitions this instance runs."""
        try:
            return {h["partition"] for h in self.cluster().get("held", []) if h.get("running")}
        except (httpx.HTTPError, ValueError):
            return set()


def wait_balanced(instances: dict[str, Instance], partitions: int, timeout: float = 60, *,
                  spread: bool = False) -> dict[str, set[int]]:
    """Wait until every partition is held, once, by the live instances (with `spread`, each by the one
    the live instances all want: none is left out, even one that started last); return who holds which."""
    deadline = time.monotonic() + timeout
    while True:
        gone = {n: i.proc.returncode for n, i in instances.items() if i.proc and i.proc.poll() is not None}
        if spread and gone:  # (each is wanted: one that exited never comes back by itself)
            logs = "\n".join(instances[n].log_tail(30) for n in gone)
            raise AssertionError(f"instances exited (return codes {gone}) before the partitions were spread\n{logs}")
        held = {n: i.held() for n, i in instances.items() if i.proc and i.proc.poll() is None}
        every = [p for ps in held.values() for p in ps]
        wanted = {n: {p for p in range(partitions) if wanted_holder(p, sorted(held)) == n} for n in held}
        if sorted(every) == list(range(partitions)) and (not spread or held == wanted):
            return held
        if time.monotonic() > deadline:
            logs = "\n".join(i.log_tail(30) for i in instances.values())
            raise AssertionError(f"partitions not all held once after {timeout:.0f} s: {held}\n{logs}")
        time.sleep(0.2)


class Devices:
    """Devices on one MQTT 3.1.1 connection (clean_session False) to a node, moving to another node when
    theirs goes away; every publish is remembered until the broker acknowledges it (paho sends it again
    after a reconnect if it was not, as a device does)."""

    def __init__(self, ports: list[int], client_id: str) -> None:
        self.ports = ports
        self.node = 0
        self.lock = threading.Lock()
        self.acked: dict[tuple[str, int], bytes] = {}
        self.unacked: dict[int, tuple[str, bytes, tuple[str, int]]] = {}
        self.early: set[int] = set()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311,
                                  clean_session=False)
        self.client.max_inflight_messages_set(256)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.2, 1)
        self.client.on_publish = self._on_publish
        self.client.on_disconnect = self._on_disconnect
        self.connected = threading.Event()
        self.client.on_connect = lambda *_a: self.connected.set()
        self._connect()
        self.client.loop_start()

    def _connect(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                self.client.connect("127.0.0.1", self.ports[self.node % len(self.ports)], keepalive=5)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                self.node += 1
                time.sleep(0.2)

    def _on_publish(self, _c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        # (paho calls this holding its own locks: ours is never held while calling into paho)
        with self.lock:
            sent = self.unacked.pop(mid, None)
            if sent is None:
                self.early.add(mid)  # acknowledged before publish() recorded it
            else:
                self.acked[sent[2]] = sent[1]

    def _on_disconnect(self, *_a: Any) -> None:
        # paho's loop connects again by itself, with this session (the cluster keeps it, replicated), and
        # sends again what was not acknowledged; the next attempt goes to another node.
        self.connected.clear()
        self.node += 1
        self.client._port = self.ports[self.node % len(self.ports)]

    def publish(self, topic: str, body: bytes, key: tuple[str, int]) -> None:
        """Publish at QoS 1; `key` is (device, seq)."""
        info = self.client.publish(topic, body, qos=1)
        with self.lock:
            if info.mid in self.early:
                self.early.discard(info.mid)
                self.acked[key] = body
            else:
                self.unacked[info.mid] = (topic, body, key)

    def reading(self, community: str, device_type: str, device: str, seq: int, **fields: Any) -> None:
        """Publish one reading of a device (its time is now)."""
        body = orjson.dumps({"ts": int(time.time() * 1000), "seq": seq, **fields})
        self.publish(f"cb/{community}/{device_type}/{device}/telemetry", body, (f"{community}/{device}", seq))

    def wait_acked(self, timeout: float = 60) -> None:
        """Wait until the broker acknowledged every publish."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not self.unacked:
                    return
            time.sleep(0.05)
        raise AssertionError(f"{len(self.unacked)} publishes not acknowledged after {timeout:.0f} s")

    def close(self) -> None:
        """Disconnect."""
        self.client.on_disconnect = None
        self.client.disconnect()
        self.client.loop_stop()
