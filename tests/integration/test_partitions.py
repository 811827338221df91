"""Scaling out by partition: two instances on one broker, each serving its own communities."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.servers import InfluxD, Mosquitto
from tests.service import DevicePublisher, ServiceProcess, site_config, telemetry

pytestmark = pytest.mark.integration


def test_each_instance_stores_only_its_communities(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str) -> None:
    services = []
    for name, community in (("yicun", "linfen-yicun"), ("ercun", "linfen-ercun")):
        (tmp_path / name).mkdir()
        config = site_config(tmp_path / name, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=influx_db,
                             prefix=unique_prefix, extra={"mqtt": {"communities": [community],
                                                                   "client_id": f"cbrain-{unique_prefix}-{name}"}})
        services.append(ServiceProcess(config).start())
    try:
        for svc in services:
            svc.wait_healthy()
        pub = DevicePublisher(mosquitto.url, f"dev-{unique_prefix}")
        now_ms = int(time.time() * 1000) - 10_000
        for i in range(30):
            pub.publish(telemetry(unique_prefix, "linfen-yicun", "water_level", "wl-gate-east"),
                        {"ts": now_ms + i, "seq": i, "level_cm": float(i)})
        for i in range(20):
            pub.publish(telemetry(unique_prefix, "linfen-ercun", "water_level", "wl-garage"),
                        {"ts": now_ms + i, "seq": i, "level_cm": float(i)})
        pub.wait_acked()
        yicun, ercun = services
        yicun.wait_metric("cb_readings_stored_total", 30)
        ercun.wait_metric("cb_readings_stored_total", 20)
        time.sleep(0.5)
        assert (yicun.metric("cb_readings_stored_total"), ercun.metric("cb_readings_stored_total")) == (30, 20)
        rows = influxdb.rows("water_level", influx_db)
        assert sorted((r["community"], r["level_cm"]) for r in rows) == sorted(
            [("linfen-yicun", float(i)) for i in range(30)] + [("linfen-ercun", float(i)) for i in range(20)])
        pub.close()
    finally:
        for svc in services:
            svc.close()
