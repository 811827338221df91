"""The event stream, message by message: two grid workers of two communities and an admin follow
GET /api/v1/events of a real service while real MQTT readings raise alerts in both grids."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from device_sim.receiver import Receiver
from tests.servers import InfluxD, Mosquitto
from tests.service import ADMIN, DevicePublisher, ServiceProcess, recipients_at, site_config, telemetry

pytestmark = pytest.mark.integration
G1 = "example-token-worker-g1"   # worker-g1: 临汾一村 grid g1
G3 = "example-token-worker-g3"   # worker-g3: 临汾二村 grid g3


class Follower:
    """One client following the event stream in a thread; keeps every notification it is sent."""

    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base, token
        self.events: list[dict[str, Any]] = []
        self.ids: list[str] = []
        self.connected = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        event: dict[str, str] = {}
        try:
            with httpx.Client(base_url=self.base, timeout=httpx.Timeout(5, read=60)) as client, \
                    client.stream("GET", "/api/v1/events", headers={"Authorization": f"Bearer {self.token}"}) as r:
                assert r.status_code == 200
                for line in r.iter_lines():
                    if line == ": connected":
                        self.connected.set()
                    elif line == "":
                        if event.get("event") == "notification":
                            self.ids.append(event["id"])
                            self.events.append(orjson.loads(event["data"]))
                        event = {}
                    elif not line.startswith(":"):
                        key, _, value = line.partition(": ")
                        event[key] = value
        except httpx.HTTPError:
            pass  # the service stopped

    def seen(self) -> set[tuple[str, str, str, str]]:
        """(recipient, event, community, grid) of every notification received."""
        return {(n["recipient"], n["event"], n["alert"]["community"], n["alert"]["grid"]) for n in self.events}


def test_each_grid_worker_is_sent_only_their_grid_and_the_admin_both(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str,
        receiver: Receiver) -> None:
    config = site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=influx_db,
                         prefix=unique_prefix, extra={"recipients": recipients_at(receiver.base)})
    svc = ServiceProcess(config).start()
    pub = DevicePublisher(mosquitto.url, f"dev-{unique_prefix}")
    try:
        svc.wait_healthy()
        g1, g3, admin = (Follower(svc.base, t) for t in (G1, G3, ADMIN))
        for f in (g1, g3, admin):
            assert f.connected.wait(10), f.token
        now_ms = int(time.time() * 1000)
        # A smoke alarm in each grid (orange: the grid worker, the community, the street office are told).
        pub.publish(telemetry(unique_prefix, "linfen-yicun", "smoke_detector", "sd-b01-0501"),
                    {"ts": now_ms, "seq": 0, "alarm": True})
        pub.publish(telemetry(unique_prefix, "linfen-ercun", "smoke_detector", "sd-b11-0301"),
                    {"ts": now_ms, "seq": 0, "alarm": True})
        pub.wait_acked()
        svc.wait_for(lambda: len(admin.events) >= 6, 20, "six notifications on the admin's stream")
        # The grid worker of g1 acknowledges theirs: the people told hear so, on their streams only.
        mine = next(a for a in svc.api("/alerts", token=G1).json() if a["device_id"] == "sd-b01-0501")
        r = svc.http.post(f"/api/v1/alerts/{mine['id']}/ack", headers={"Authorization": f"Bearer {G1}"})
        assert r.status_code == 200, r.text
        svc.wait_for(lambda: len(admin.events) >= 9, 20, "the acknowledgements on the admin's stream")
        time.sleep(1)  # anything that should not arrive would have by now

        assert g1.seen() == {("worker-g1", "fired", "linfen-yicun", "g1"),
                             ("worker-g1", "acknowledged", "linfen-yicun", "g1")}
        assert g3.seen() == {("worker-g3", "fired", "linfen-ercun", "g3")}
        assert admin.seen() == {
            ("worker-g1", "fired", "linfen-yicun", "g1"), ("committee-yicun", "fired", "linfen-yicun", "g1"),
            ("street-office", "fired", "linfen-yicun", "g1"),
            ("worker-g1", "acknowledged", "linfen-yicun", "g1"),
            ("committee-yicun", "acknowledged", "linfen-yicun", "g1"),
            ("street-office", "acknowledged", "linfen-yicun", "g1"),
            ("worker-g3", "fired", "linfen-ercun", "g3"), ("committee-ercun", "fired", "linfen-ercun", "g3"),
            ("street-office", "fired", "linfen-ercun", "g3"),
        }
        # Each message once, its SSE id the notification's event id.
        for f in (g1, g3, admin):
            assert len(f.ids) == len(set(f.ids)) == len(f.events)
            assert f.ids == [n["event_id"] for n in f.events]
    finally:
        pub.close()
        svc.close()
    for f in (g1, g3, admin):
        f.thread.join(10)
