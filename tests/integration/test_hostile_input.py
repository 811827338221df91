"""Every hostile message of the table, published through a real broker between valid readings:
each is rejected with its reason and stores nothing; the readings around it are all stored."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from tests.hostile import ACCEPTED_ODDITIES, hostile_cases
from tests.servers import InfluxD, Mosquitto
from tests.service import DevicePublisher, ServiceProcess, site_config, telemetry

pytestmark = pytest.mark.integration

COMMUNITY = "linfen-yicun"
# What the service writes for the wall dashboards beside the readings (docs/dashboards.md), and the
# communities' resilience scorecards (docs/resilience.md).
WALL_MEASUREMENTS = {"device_state", "community_summary", "building_state", "work_orders", "shelter_state",
                     "resilience"}
CONTRACT_FIELDS = {
    "ebike_charger": {"current_a", "voltage_v", "power_w", "temperature_c", "charging", "energy_wh",
                      "battery_pct", "rssi_dbm"},
    "fire_lane": {"occupied", "object", "confidence", "battery_pct", "rssi_dbm"},
}


def test_hostile_messages_are_rejected_and_the_readings_around_them_stored(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str) -> None:
    svc = ServiceProcess(site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influxdb.url,
                                     database=influx_db, prefix=unique_prefix,
                                     extra={"ingest": {"rejection_log_size": 1000}})).start()
    try:
        svc.wait_healthy()
        cases = hostile_cases(time.time_ns())
        assert len(cases) >= 30
        pub = DevicePublisher(mosquitto.url, f"dev-{unique_prefix}")
        good = telemetry(unique_prefix, COMMUNITY, "ebike_charger", "ev-good")
        start_ms = int(time.time() * 1000) - 60_000
        for i, case in enumerate(cases):
            pub.publish(good, {"ts": start_ms + i, "seq": i, "current_a": i / 10})
            pub.publish(case.topic_for(unique_prefix, COMMUNITY), case.payload)
        pub.publish(good, {"ts": start_ms + len(cases), "seq": len(cases), "current_a": len(cases) / 10})
        for _, topic, payload in ACCEPTED_ODDITIES:
            pub.publish(topic.format(prefix=unique_prefix, community=COMMUNITY), payload)
        pub.wait_acked()

        valid = len(cases) + 1 + len(ACCEPTED_ODDITIES)
        svc.wait_metric("cb_readings_stored_total", valid, 30)
        metrics = svc.metrics()
        rejected = {k: v for k, v in metrics.items() if k.startswith("cb_readings_rejected_total") and v}
        expected = Counter(c.reason for c in cases)
        assert rejected == {f'cb_readings_rejected_total{{reason="{r}"}}': n for r, n in expected.items()}
        assert metrics["cb_readings_stored_total"] == valid

        # The rejection log: newest first; in publish order it must match the table case by case.
        log = list(reversed(svc.api("/rejections", limit=1000).json()))
        assert [(r["topic"], r["reason"]) for r in log] == [
            (c.topic_for(unique_prefix, COMMUNITY), c.reason) for c in cases]
        assert all(r["detail"] and len(r["payload"]) <= 200 for r in log)

        ev_good = [r for r in influxdb.rows("ebike_charger", influx_db) if r["device_id"] == "ev-good"]
        assert [r["current_a"] for r in ev_good] == [i / 10 for i in range(len(cases) + 1)]
        others = [r for r in influxdb.rows("ebike_charger", influx_db) if r["device_id"] != "ev-good"]
        assert {(r["device_id"], r["community"], r["current_a"]) for r in others} == {("ev-1", COMMUNITY, 1.5)}
        assert len(others) == sum(1 for _, t, _ in ACCEPTED_ODDITIES if "ebike_charger" in t)
        lane = influxdb.rows("fire_lane", influx_db)
        assert [(r["occupied"], r["object"]) for r in lane] == [(True, "car")]

        # Nothing of the injected content reached InfluxDB: only contract measurements, fields and tags.
        measurements = influxdb.query("SHOW MEASUREMENTS", db=influx_db)["results"][0]["series"][0]["values"]
        # The service's own `alert` measurement may be there (the readings around the hostile ones
        # reach 11 A, an over-current alert); nothing else may.
        assert {m[0] for m in measurements} - {"alert", *WALL_MEASUREMENTS} == {"ebike_charger", "fire_lane"}
        for measurement, allowed in CONTRACT_FIELDS.items():
            res = influxdb.query(f'SHOW FIELD KEYS FROM "{measurement}"', db=influx_db)
            keys = {row[0] for row in res["results"][0]["series"][0]["values"]}
            assert keys <= allowed, keys - allowed
            res = influxdb.query(f'SHOW TAG KEYS FROM "{measurement}"', db=influx_db)
            assert {row[0] for row in res["results"][0]["series"][0]["values"]} == {
                "community", "device_id", "building", "grid"}
        assert svc.metric("cb_reading_fields_ignored_total") > 0
        assert svc.health()[0] == 200
        pub.close()
    finally:
        svc.close()
