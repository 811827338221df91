"""The data path end to end: devices → real Mosquitto → `cbrain run` → real InfluxDB."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.servers import InfluxD, InfluxDFactory, Mosquitto, MosquittoFactory
from tests.service import DevicePublisher, ServiceProcess, site_config, stored_values, telemetry

pytestmark = pytest.mark.integration

COMMUNITY = "linfen-yicun"


@pytest.fixture
def service_factory(tmp_path: Path):
    started: list[ServiceProcess] = []

    def make(config: Path) -> ServiceProcess:
        svc = ServiceProcess(config)
        started.append(svc)
        return svc

    yield make
    for svc in started:
        svc.close()


@pytest.mark.parametrize("writer", ["process", "inline"])
def test_readings_stored_with_site_tags_and_duplicates_stored_once(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str,
        service_factory, writer: str) -> None:
    svc = service_factory(site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influxdb.url,
                                      database=influx_db, prefix=unique_prefix,
                                      extra={"ingest": {"writer": writer}})).start()
    svc.wait_healthy()
    pub = DevicePublisher(mosquitto.url, f"dev-{unique_prefix}")
    now_ms = int(time.time() * 1000)
    topic = telemetry(unique_prefix, COMMUNITY, "smoke_detector", "sd-b01-0501")
    for seq in range(50):
        pub.publish(topic, {"ts": now_ms - 50_000 + seq * 1000, "seq": seq, "obscuration_pct_m": seq / 10})
    # The same readings again, as a device retrying after a lost acknowledgement would send them.
    for seq in range(0, 50, 5):
        pub.publish(topic, {"ts": now_ms - 50_000 + seq * 1000, "seq": seq, "obscuration_pct_m": seq / 10})
    # An unregistered device is still monitored, unplaced.
    pub.publish(telemetry(unique_prefix, COMMUNITY, "water_level", "wl-new"), {"seq": 0, "level_cm": -12})
    pub.wait_acked()
    svc.wait_metric("cb_readings_stored_total", 51, 20)
    svc.wait_metric("cb_readings_duplicates_total", 10, 10)

    rows = influxdb.rows("smoke_detector", influx_db)
    assert len(rows) == 50
    assert sorted(r["obscuration_pct_m"] for r in rows) == [seq / 10 for seq in range(50)]
    assert {(r["community"], r["device_id"], r["building"], r["grid"]) for r in rows} == {
        (COMMUNITY, "sd-b01-0501", "b01", "g1")}
    water = influxdb.rows("water_level", influx_db)
    assert [(r["building"], r["grid"], r["level_cm"]) for r in water] == [("unknown", "unknown", -12.0)]
    assert svc.metric("cb_readings_stored_total") == 51
    assert svc.metric("cb_readings_duplicates_total") == 10

    devices = svc.api("/devices", device_type="smoke_detector").json()
    detector = next(d for d in devices if d["device_id"] == "sd-b01-0501")
    assert detector["readings"] == 50 and detector["duplicates"] == 10 and detector["lost"] == 0
    assert detector["last_reading"]["obscuration_pct_m"] == 4.9
    pub.close()


def test_kill_9_mid_stream_loses_nothing_and_stores_nothing_twice(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str,
        service_factory) -> None:
    """10,000 readings without timestamps (so a second copy would be a second point), killed twice."""
    config = site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=influx_db,
                         prefix=unique_prefix)
    svc = service_factory(config).start()
    svc.wait_healthy()
    devices = [f"ev-{i}" for i in range(10)]
    total = 10_000
    items = [(telemetry(unique_prefix, COMMUNITY, "ebike_charger", devices[i % 10]),
              {"seq": i // 10, "current_a": (i // 10) / 100}) for i in range(total)]
    pub = DevicePublisher(mosquitto.url, f"dev-{unique_prefix}")
    stream = pub.stream(items, rate=1500)
    for stored_at_least in (2000, 6000):
        # (each process counts its own: the second must store 6,000 while the publisher still sends, which
        # a machine busy with other work takes longer than 30 s to reach)
        svc.wait_metric("cb_readings_stored_total", stored_at_least, timeout=90)
        svc.kill()
        svc = service_factory(config).start()
        svc.wait_healthy()
    stream.join(30)
    pub.wait_acked()

    def all_in() -> bool:
        return sum(1 for _ in stored_values(influxdb, influx_db, "ebike_charger", "current_a")) >= total
    svc.wait_for(all_in, 60, f"{total} readings in InfluxDB")
    time.sleep(1)  # anything stored twice would show up now
    got = sorted((d, v) for d, _, v in stored_values(influxdb, influx_db, "ebike_charger", "current_a"))
    expected = sorted((devices[i % 10], (i // 10) / 100) for i in range(total))
    assert len(got) == total, f"{len(got) - total:+d} readings"
    assert got == expected
    pub.close()


def test_influxdb_down_for_30_s_everything_arrives_in_order(
        tmp_path: Path, mosquitto: Mosquitto, influxd_factory: InfluxDFactory, unique_prefix: str,
        service_factory) -> None:
    influx = influxd_factory()
    svc = service_factory(site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influx.url, database="cb",
                                      prefix=unique_prefix)).start()
    svc.wait_healthy()
    start_ms = int(time.time() * 1000)
    total = 4000
    topic = telemetry(unique_prefix, COMMUNITY, "water_level", "wl-gate-east")
    items = [(topic, {"ts": start_ms + i * 10, "seq": i, "level_cm": float(i % 1000)}) for i in range(total)]
    pub = DevicePublisher(mosquitto.url, f"dev-{unique_prefix}")
    stream = pub.stream(items, rate=100)  # 40 s of readings
    svc.wait_metric("cb_readings_stored_total", 300, 20)
    influx.stop()
    outage_start = time.monotonic()
    body = svc.wait_status(503, 15)
    assert body["store"]["ok"] is False and body["store"]["error"]
    svc.wait_metric("cb_spool_points", 500, 20)
    time.sleep(max(0.0, 30 - (time.monotonic() - outage_start)))
    influx.start()
    stream.join(30)
    pub.wait_acked()
    svc.wait_metric("cb_readings_stored_total", total, 60)
    svc.wait_healthy(15)
    rows = influx.rows("water_level", "cb")
    assert len(rows) == total
    assert [r["time"] for r in rows] == [(start_ms + i * 10) * 1_000_000 for i in range(total)]
    assert [r["level_cm"] for r in rows] == [float(i % 1000) for i in range(total)]
    assert svc.metric("cb_spool_points") == 0
    pub.close()


def test_broker_restart_mid_stream_loses_nothing(
        tmp_path: Path, mosquitto_factory: MosquittoFactory, influxdb: InfluxD, influx_db: str,
        unique_prefix: str, service_factory) -> None:
    broker = mosquitto_factory()
    svc = service_factory(site_config(tmp_path, mqtt_url=broker.url, influx_url=influxdb.url,
                                      database=influx_db, prefix=unique_prefix)).start()
    svc.wait_healthy()
    total = 3000
    now_ms = int(time.time() * 1000) - 60_000
    topic = telemetry(unique_prefix, COMMUNITY, "fire_lane", "fl-lane-north")
    items = [(topic, {"ts": now_ms + i * 10, "seq": i, "occupied": i % 2 == 0, "confidence": 0.9})
             for i in range(total)]
    pub = DevicePublisher(broker.url, f"dev-{unique_prefix}")
    stream = pub.stream(items, rate=300)
    svc.wait_metric("cb_readings_stored_total", 800, 20)
    broker.restart()
    svc.wait_metric("cb_mqtt_connects", 2, 20)
    stream.join(30)
    pub.wait_acked()
    svc.wait_metric("cb_readings_stored_total", total, 60)
    rows = influxdb.rows("fire_lane", influx_db)
    assert len(rows) == total
    assert [r["occupied"] for r in rows] == [i % 2 == 0 for i in range(total)]
    # Redelivery after the restart may reorder readings; every gap seen must have been filled since.
    assert svc.metric("cb_readings_seq_gap_total") == svc.metric("cb_readings_late_total")
    lane = next(d for d in svc.api("/devices").json() if d["device_id"] == "fl-lane-north")
    assert (lane["readings"], lane["lost"]) == (total, 0)
    pub.close()
