"""The InfluxDB writer in its own process: restarted after kill -9 with nothing lost; it dies with the service."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from app.cpu_slice import cpu_slice_ms
from tests.servers import InfluxD, Mosquitto
from tests.service import DevicePublisher, ServiceProcess, site_config, stored_values, telemetry
from tests.unit.test_cpu_slice import custom_slices

pytestmark = pytest.mark.integration

COMMUNITY = "linfen-yicun"


def writer_of(svc: ServiceProcess, timeout: float = 15) -> psutil.Process:
    """The service's store writer process."""
    assert svc.proc is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(svc.proc.pid).children():
            try:
                if "ingest.store_process" in child.cmdline():
                    return child
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.1)
    raise AssertionError(f"no store writer process under the service\n{svc.log_tail()}")


def test_writer_killed_twice_is_restarted_nothing_lost_nothing_twice_and_dies_with_the_service(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str) -> None:
    config = site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=influx_db,
                         prefix=unique_prefix, extra={"ingest": {"writer": "process"}})
    svc = ServiceProcess(config).start()
    pub = DevicePublisher(mosquitto.url, f"dev-{unique_prefix}")
    try:
        svc.wait_healthy()
        devices = [f"ev-{i}" for i in range(10)]
        total = 8_000
        # No timestamps: a point written twice would be a second point.
        items = [(telemetry(unique_prefix, COMMUNITY, "ebike_charger", devices[i % 10]),
                  {"seq": i // 10, "current_a": (i // 10) / 100}) for i in range(total)]
        stream = pub.stream(items, rate=1500)
        killed = []
        for stored_at_least in (1500, 4500):
            svc.wait_metric("cb_readings_stored_total", stored_at_least)
            writer = writer_of(svc)
            writer.kill()
            writer.wait(10)
            killed.append(writer.pid)
        stream.join(30)
        pub.wait_acked()
        svc.wait_metric("cb_readings_stored_total", total, 60)
        time.sleep(1)  # anything counted or stored twice would show up now
        assert svc.metric("cb_readings_stored_total") == total
        assert svc.metric("cb_spool_points") == 0
        got = sorted((d, v) for d, _, v in stored_values(influxdb, influx_db, "ebike_charger", "current_a"))
        assert got == sorted((devices[i % 10], (i // 10) / 100) for i in range(total))
        # In order per device: each device's stored values (its seq / 100) rise with their time.
        for device in devices:
            values = [v for d, _, v in stored_values(influxdb, influx_db, "ebike_charger", "current_a")
                      if d == device]
            assert values == sorted(values), device
        last = writer_of(svc)
        assert last.pid not in killed
        assert "store writer process" in svc.log_tail(200)
        svc.kill()
        # The service's death takes its writer with it: no orphan keeps the state database open.
        last.wait(10)
        assert not last.is_running()
    finally:
        pub.close()
        svc.close()


@pytest.mark.skipif(not custom_slices(), reason="the kernel has no slice of a thread's own")
def test_the_service_and_its_writer_run_on_the_cpu_slice_of_the_settings(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str) -> None:
    """Every thread of the service and of its writer process runs on ingest.cpu_slice_ms (0.5 here, not
    the default, so that the figure can only come from the setting)."""
    config = site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=influx_db,
                         prefix=unique_prefix, extra={"ingest": {"writer": "process", "cpu_slice_ms": 0.5}})
    svc = ServiceProcess(config).start()
    pub = DevicePublisher(mosquitto.url, f"dev-{unique_prefix}")
    try:
        svc.wait_healthy()
        pub.publish(telemetry(unique_prefix, COMMUNITY, "ebike_charger", "ev-0"), {"seq": 1, "current_a": 1.0})
        pub.wait_acked()
        svc.wait_metric("cb_readings_stored_total", 1)
        assert svc.proc is not None
        slices = {}
        for process in (psutil.Process(svc.proc.pid), writer_of(svc)):
            for thread in process.threads():
                slices[f"{process.pid}/{thread.id}"] = cpu_slice_ms(thread.id, process.pid)
        assert len(slices) > 3 and set(slices.values()) == {0.5}, slices
        assert "CPU slice 0.5 ms (the kernel's own: " in svc.log_tail(200)
    finally:
        pub.close()
        svc.close()
