"""Publishes simulated readings to a broker at a steady rate (QoS 1), with retained online status."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from device_sim.models import SimDevice
from kernel.ids import DeviceType
from kernel.topics import status_topic, telemetry_topic


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """Which device to simulate."""

    community: str
    device_type: DeviceType
    device_id: str


def connect(url: str, client_id: str) -> paho.Client:
    """A connected MQTT 3.1.1 client (every broker speaks it) with its network thread running."""
    parts = urlsplit(url)
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=paho.MQTTv311)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    if parts.username:
        client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
    if parts.scheme in ("mqtts", "ssl"):
        client.tls_set()
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883, keepalive=30)
    client.loop_start()
    return client


class Publisher:
    """Round-robin readings from a set of devices at `rate` readings per second."""

    def __init__(self, url: str, prefix: str, devices: list[DeviceSpec], *, rate: float, seed: int = 1,
                 client_id: str = "cbrain-sim", incident_every_s: float | None = None,
                 incident_readings: int = 5) -> None:
        if not devices:
            raise ValueError("no devices to simulate")
        self.url, self.prefix, self.rate = url, prefix, rate
        rng = random.Random(seed)
        self.devices = [SimDevice(d.community, d.device_type, d.device_id, random.Random(rng.random()))
                        for d in devices]
        self.client_id = client_id
        self.incident_every_s = incident_every_s
        self.incident_readings = incident_readings
        self._rng = random.Random(seed + 1)
        self.sent = 0
        self._stop = threading.Event()

    def stop(self) -> None:
        """Stop publishing after the current reading."""
        self._stop.set()

    def run(self, *, duration_s: float | None = None, count: int | None = None) -> int:
        """Publish until stopped, for duration_s, or count readings; return how many were sent."""
        client = connect(self.url, self.client_id)
        try:
            for d in self.devices:
                topic = status_topic(self.prefix, d.community, d.device_type.value, d.device_id)
                client.publish(topic, b"online", qos=1, retain=True)
            start = time.monotonic()
            interval = 1.0 / self.rate
            next_incident = start + self.incident_every_s if self.incident_every_s else None
            i = 0
            while not self._stop.is_set():
                if count is not None and self.sent >= count:
                    break
                if duration_s is not None and time.monotonic() - start >= duration_s:
                    break
                if next_incident is not None and time.monotonic() >= next_incident:
                    # A staged incident, so that alerts can be seen: one device reports trouble for a while.
                    self._rng.choice(self.devices).incident = self.incident_readings
                    next_incident += self.incident_every_s or 0.0
                d = self.devices[i % len(self.devices)]
                i += 1
                payload = orjson.dumps(d.reading(time.time_ns() // 1_000_000))
                client.publish(telemetry_topic(self.prefix, d.community, d.device_type.value, d.device_id),
                               payload, qos=1)
                self.sent += 1
                # Pace against the start time, so the rate holds however long each publish takes.
                delay = start + self.sent * interval - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
        finally:
            client.disconnect()
            client.loop_stop()
        return self.sent
