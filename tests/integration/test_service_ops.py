"""Operating the service: configuration errors, outages at start, a full spool, refused points, the API."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers import InfluxD, InfluxDFactory, Mosquitto, MosquittoFactory, free_port
from tests.service import DevicePublisher, ServiceProcess, env_without_cb, site_config, telemetry

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
COMMUNITY = "linfen-yicun"


def cbrain(*args: str, cwd: Path, env: dict[str, str] | None = None,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**env_without_cb(), "PYTHONPATH": str(REPO), **(env or {})})


@pytest.mark.parametrize(("text", "expected"), [
    ("mqtt: [1, 2\n", "not valid YAML"),
    ("mqtt:\n  url: http://broker\n", "bad.yaml:2: mqtt.url"),
    ("communities:\n  - id: Yicun\n    name: x\n", "bad.yaml:2: communities.0.id"),
    ("unknown_key: 1\n", "bad.yaml:1: unknown_key: Extra inputs are not permitted"),
])
def test_bad_configuration_exits_non_zero_with_one_line(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    result = cbrain("run", "--config", "bad.yaml", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr


def test_missing_file_and_bad_override(tmp_path: Path) -> None:
    result = cbrain("run", "--config", "nope.yaml", cwd=tmp_path)
    assert result.returncode == 2 and "nope.yaml: no such file" in result.stderr
    site = REPO / "examples" / "site.yaml"
    result = cbrain("run", "--config", str(site), cwd=tmp_path, env={"CB_HTTP_PORT": "eighty"})
    assert result.returncode == 2 and "(from CB_HTTP_PORT)" in result.stderr
    result = cbrain("config", "check", str(site), cwd=tmp_path)
    assert result.returncode == 0 and "2 communities, 9 devices" in result.stdout


def test_starts_while_broker_and_influxdb_are_down_then_recovers(
        tmp_path: Path, mosquitto_factory: MosquittoFactory, influxd_factory: InfluxDFactory) -> None:
    broker = mosquitto_factory(start=False)
    influx = influxd_factory(start=False)
    svc = ServiceProcess(site_config(tmp_path, mqtt_url=broker.url, influx_url=influx.url, database="cb")).start()
    try:
        body = svc.wait_status(503, 20)
        assert body["broker"]["ok"] is False and "cannot connect" in body["broker"]["error"]
        pub_time = int(time.time() * 1000)
        broker.start()
        svc.wait_for(lambda: svc.health()[1]["broker"]["ok"], 20, "broker connected")
        pub = DevicePublisher(broker.url, "dev-outage")
        pub.publish(telemetry("cb", COMMUNITY, "water_level", "wl-gate-east"), {"ts": pub_time, "level_cm": 3})
        pub.wait_acked()
        body = svc.wait_for(lambda: (lambda h: h[1] if h[1]["store"]["error"] else None)(svc.health()), 20,
                            "store error reported")
        assert body["store"]["ok"] is False and body["store"]["down_since"]
        influx.start()
        svc.wait_healthy(30)
        svc.wait_metric("cb_readings_stored_total", 1, 20)
        assert [r["level_cm"] for r in influx.rows("water_level", "cb")] == [3.0]
        pub.close()
    finally:
        svc.close()


def test_full_spool_stops_intake_and_says_so_then_nothing_is_lost(
        tmp_path: Path, mosquitto: Mosquitto, influxd_factory: InfluxDFactory, unique_prefix: str) -> None:
    influx = influxd_factory()
    config = site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influx.url, database="cb",
                         prefix=unique_prefix, extra={"ingest": {"spool_max_mb": 0.02, "retry_max_s": 0.5}})
    svc = ServiceProcess(config).start()
    try:
        svc.wait_healthy()
        influx.stop()
        pub = DevicePublisher(mosquitto.url, f"dev-{unique_prefix}")
        start_ms = int(time.time() * 1000) - 10_000
        total = 2000
        for i in range(total):
            pub.publish(telemetry(unique_prefix, COMMUNITY, "ebike_charger", "ev-b02-p01"),
                        {"ts": start_ms + i, "seq": i, "current_a": i / 100})
        pub.wait_acked()
        body = svc.wait_for(lambda: (lambda h: h[1] if h[1]["spool"]["error"] else None)(svc.health()), 20,
                            "spool full reported")
        assert body["spool"]["ok"] is False and "spool full" in body["spool"]["error"]
        assert svc.metric("cb_spool_full") == 1
        held = svc.metric("cb_spool_points")
        assert 0 < held < total, "intake must stop while the spool is full; the broker keeps the rest"
        influx.start()
        svc.wait_metric("cb_readings_stored_total", total, 60)
        svc.wait_healthy(20)
        assert sorted(r["current_a"] for r in influx.rows("ebike_charger", "cb")) == [i / 100 for i in range(total)]
        pub.close()
    finally:
        svc.close()


def test_points_influxdb_refuses_are_split_out_and_dead_lettered(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str) -> None:
    # Another writer made voltage_v a string field in the current shard: our float voltage_v conflicts (HTTP 400).
    start_ms = int(time.time() * 1000) - 10_000
    influxdb.write(influx_db, f'ebike_charger,community=x,device_id=y voltage_v="n/a" {(start_ms - 1) * 1_000_000}')
    svc = ServiceProcess(site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influxdb.url,
                                     database=influx_db, prefix=unique_prefix)).start()
    try:
        svc.wait_healthy()
        pub = DevicePublisher(mosquitto.url, f"dev-{unique_prefix}")
        for i in range(40):
            body = {"ts": start_ms + i, "seq": i, "current_a": float(i)}
            if i % 10 == 3:
                body["voltage_v"] = 220.0
            pub.publish(telemetry(unique_prefix, COMMUNITY, "ebike_charger", "ev-b02-p01"), body)
        pub.wait_acked()
        svc.wait_metric("cb_readings_dead_lettered_total", 4, 30)
        svc.wait_metric("cb_readings_stored_total", 36, 10)
        assert (svc.metric("cb_readings_stored_total"), svc.metric("cb_readings_dead_lettered_total")) == (36, 4)
        stored = [r["current_a"] for r in influxdb.rows("ebike_charger", influx_db) if r["current_a"] is not None]
        assert sorted(stored) == [float(i) for i in range(40) if i % 10 != 3]
        dead = svc.api("/dead_letters").json()
        assert sorted(d["fields"]["current_a"] for d in dead) == [3.0, 13.0, 23.0, 33.0]
        assert all("conflict" in d["reason"] and d["tags"]["device_id"] == "ev-b02-p01" for d in dead)
        assert svc.api("/dead_letters", token="example-token-worker-g1").status_code == 403
        assert svc.health()[0] == 200
        pub.close()
    finally:
        svc.close()


def test_api_tokens_limit_what_each_caller_sees(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str) -> None:
    svc = ServiceProcess(site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influxdb.url,
                                     database=influx_db, prefix=unique_prefix)).start()
    try:
        svc.wait_healthy()
        pub = DevicePublisher(mosquitto.url, f"dev-{unique_prefix}")
        pub.publish(f"{unique_prefix}/linfen-yicun/ebike_charger/ev-b02-p01/telemetry", {"current_a": "high"})
        pub.publish(f"{unique_prefix}/linfen-ercun/water_level/wl-garage/telemetry", {"level_cm": 9999})
        pub.publish(f"{unique_prefix}/linfen-yicun/smoke_detector/sd-b03-0101/telemetry", {"alarm": "yes"})
        pub.wait_acked()
        svc.wait_metric("cb_readings_rejected_total{reason=\"wrong_type\"}", 2, 10)

        assert svc.http.get("/api/v1/devices").status_code == 401
        assert svc.api("/devices", token="not-a-token").status_code == 401
        worker = svc.api("/devices", token="example-token-worker-g1").json()
        assert {d["grid"] for d in worker} == {"g1"} and len(worker) == 5
        assert svc.api("/devices", token="example-token-worker-g1", community="linfen-ercun").status_code == 403
        assert len(svc.api("/devices", token="example-token-street").json()) == 9
        assert len(svc.api("/devices", token="example-token-worker-g3").json()) == 2

        admin_rej = svc.api("/rejections").json()
        assert {r["reason"] for r in admin_rej} == {"wrong_type", "out_of_range"}
        assert all(r["detail"] and r["topic"] and r["payload"] for r in admin_rej)
        g1 = svc.api("/rejections", token="example-token-worker-g1").json()
        assert [r["topic"].split("/")[3] for r in g1] == ["ev-b02-p01"]
        assert svc.api("/rejections", limit=0).status_code == 422

        communities = svc.api("/communities", token="example-token-worker-g3").json()
        assert [c["id"] for c in communities] == ["linfen-ercun"]
        assert svc.http.get("/openapi.json").json()["paths"]["/api/v1/devices"]
        assert "cb_readings_rejected_total{reason=\"out_of_range\"} 1" in svc.http.get("/metrics").text
        pub.close()
    finally:
        svc.close()


def test_demo_runs_on_embedded_broker_and_sqlite(tmp_path: Path) -> None:
    port = free_port()
    result = cbrain("demo", "--duration", "4", "--rate", "50", cwd=tmp_path, timeout=90,
                    env={"CB_HTTP_PORT": str(port), "CB_LOG_LEVEL": "warning"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"http://127.0.0.1:{port}/health" in result.stdout
    summary = result.stdout.strip().splitlines()[-1]
    published, stored = (int(w) for w in summary.replace(",", "").split() if w.isdigit())
    assert published > 100 and stored == published, summary
    assert (tmp_path / "var" / "demo" / "readings.db").exists()
    assert os.path.getsize(tmp_path / "var" / "demo" / "readings.db") > 0


def test_a_port_already_in_use_stops_the_start_with_one_line(tmp_path: Path) -> None:
    import socket

    import yaml

    config = site_config(tmp_path, mqtt_url="mqtt://127.0.0.1:1", influx_url=None, database="cb")
    port = yaml.safe_load(config.read_text(encoding="utf-8"))["http"]["port"]
    with socket.create_server(("127.0.0.1", port)):  # somebody else listens there
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "app.cli", "run", "--config", str(config)],
                                cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True,
                                timeout=60, env=env_without_cb())
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("cbrain:")]
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0], result.stderr
    assert time.monotonic() - started < 30, "the start stops at once, not after the parts have started"
