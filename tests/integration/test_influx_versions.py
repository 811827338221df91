"""The service against InfluxDB 2.x and 3 Core as their stand-in (tests/influx_standin.py) answers: a token,
no CREATE DATABASE where the server has none, 2.x's missing DBRP mapping told once and nothing lost when
it is made, 2.x's /api/v2/write, a refused token on /health. Points and InfluxQL are real (influxd 1.x)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.influx_standin import InfluxStandIn
from tests.servers import InfluxD, Mosquitto
from tests.service import DevicePublisher, ServiceProcess, site_config, telemetry

pytestmark = pytest.mark.integration

YICUN = "linfen-yicun"
DEVICE = "ev-b02-p01"  # an ebike charger of the example site
TOKEN = "cbt-token"


@pytest.fixture(scope="module")
def standin_v2(influxdb: InfluxD) -> Iterator[InfluxStandIn]:
    server = InfluxStandIn(influxdb, "v2", token=TOKEN)
    yield server
    server.close()


@pytest.fixture(scope="module")
def standin_v3(influxdb: InfluxD) -> Iterator[InfluxStandIn]:
    server = InfluxStandIn(influxdb, "v3", token=TOKEN)
    yield server
    server.close()


def start(tmp: Path, mosquitto: Mosquitto, prefix: str, influx: dict[str, Any]) -> ServiceProcess:
    """The example site's service writing to the stand-in with these influx settings."""
    tmp.mkdir(exist_ok=True)
    config = site_config(tmp, mqtt_url=mosquitto.url, influx_url=influx.pop("url"), database=influx.pop("database"),
                         prefix=prefix, name=f"{prefix}.yaml", extra={"influx": influx})
    return ServiceProcess(config).start()


def publish(mosquitto: Mosquitto, prefix: str, count: int, first_seq: int = 0) -> None:
    """count readings of one charger, a second apart, ending now; acknowledged by the broker."""
    pub = DevicePublisher(mosquitto.url, f"dev-{prefix}")
    try:
        now_ms = int(time.time() * 1000)
        for i in range(count):
            seq = first_seq + i
            pub.publish(telemetry(prefix, YICUN, "ebike_charger", DEVICE),
                        {"ts": now_ms - (count - i) * 1000, "seq": seq, "current_a": seq / 10})
        pub.wait_acked()
    finally:
        pub.close()


def stored(influxdb: InfluxD, db: str) -> int:
    """Points of the charger's measurement in an influxd database."""
    return influxdb.count("ebike_charger", db)


def store_error(svc: ServiceProcess, contains: str, timeout: float = 20) -> str:
    """The store's error on /health once it says `contains`."""
    def check() -> str | None:
        try:
            status, body = svc.health()
        except httpx.HTTPError:  # not listening yet
            return None
        error = body.get("store", {}).get("error") or ""
        return error if status == 503 and contains in error else None
    return svc.wait_for(check, timeout, f"/health's store error to say {contains!r}")


def test_v2_missing_mapping_is_told_once_then_made_and_nothing_is_lost(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, standin_v2: InfluxStandIn) -> None:
    db = "community_brain"
    svc = start(tmp_path, mosquitto, "cbtv2m", {"url": standin_v2.url, "database": db, "token": TOKEN,
                                                "org": standin_v2.org})
    try:
        # The start's check (influxdb-client: buckets, DBRP mappings) already knows, before a reading.
        error = store_error(svc, "no dbrp mapping found")
        assert "influx v1 dbrp create --db community_brain --rp autogen --bucket-id <id> --default" in error
        assert "influx bucket create --name community_brain" in error
        publish(mosquitto, "cbtv2m", 20)
        time.sleep(3)  # the writer retries (retry_max_s 1) meanwhile
        assert len(standin_v2.requests_to("/write")) >= 2
        assert store_error(svc, "no dbrp mapping found") == error
        # The reading store's writer told it once, not at each retry; the resilience history, which
        # writes its own points every round, says once in its own line that its rounds are not written.
        lines = [line for line in svc.log_tail(400).splitlines() if "no dbrp mapping found" in line]
        told = [line for line in lines if "resilience" not in line]
        assert len(told) == 1 and len(lines) - len(told) <= 1, lines
        # The operator maps the database to a bucket of another name, as the error says.
        bucket = standin_v2.create_bucket("cbt-readings")
        standin_v2.create_dbrp(db, "autogen", bucket["id"])
        publish(mosquitto, "cbtv2m", 10, first_seq=20)
        svc.wait_metric("cb_readings_stored_total", 30, 20)
        svc.wait_healthy()
        assert stored(influxdb, standin_v2.backend_db("cbt-readings")) == 30
        assert not [c for c in standin_v2.requests_to("/query") if "CREATE" in c.params.get("q", "").upper()]
        # The device's history comes back through 2.x's /query, InfluxQL on the mapped database.
        rows = svc.api(f"/devices/{DEVICE}/readings", minutes=10).json()
        assert len(rows) == 30 and rows[-1]["fields"]["current_a"] == 2.9
    finally:
        svc.close()


def test_v2_through_the_v2_write_api_with_org_and_bucket(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, standin_v2: InfluxStandIn) -> None:
    standin_v2.create_bucket("cbt-v2api")
    svc = start(tmp_path, mosquitto, "cbtv2a", {"url": standin_v2.url, "database": "unused", "token": TOKEN,
                                                "org": standin_v2.org, "bucket": "cbt-v2api"})
    try:
        svc.wait_healthy()
        publish(mosquitto, "cbtv2a", 25)
        svc.wait_metric("cb_readings_stored_total", 25, 20)
        assert stored(influxdb, standin_v2.backend_db("cbt-v2api")) == 25
        writes = standin_v2.requests_to("/api/v2/write")
        assert writes and all(c.params == {"org": standin_v2.org, "bucket": "cbt-v2api", "precision": "ns"}
                              and c.status == 204 for c in writes)
        # Queries go to the bucket's own (virtual) DBRP mapping: db = the bucket's name.
        rows = svc.api(f"/devices/{DEVICE}/readings", minutes=10).json()
        assert len(rows) == 25
    finally:
        svc.close()


def test_v2_without_a_token_says_so_on_health(
        tmp_path: Path, mosquitto: Mosquitto, standin_v2: InfluxStandIn) -> None:
    svc = start(tmp_path, mosquitto, "cbtv2t", {"url": standin_v2.url, "database": "community_brain"})
    try:
        svc.wait_healthy()
        publish(mosquitto, "cbtv2t", 1)
        error = store_error(svc, "asks for credentials")
        assert "influx.token" in error and "influx v1 auth create" in error and "unauthorized access" in error
    finally:
        svc.close()


def test_v3_stores_without_create_database_and_a_wrong_token_is_told(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, standin_v3: InfluxStandIn) -> None:
    svc = start(tmp_path / "ok", mosquitto, "cbtv3", {"url": standin_v3.url, "database": "cbt_v3", "token": TOKEN})
    wrong = start(tmp_path / "wrong", mosquitto, "cbtv3w",
                  {"url": standin_v3.url, "database": "cbt_v3w", "token": "not-the-token"})
    try:
        svc.wait_healthy()
        publish(mosquitto, "cbtv3", 15)
        svc.wait_metric("cb_readings_stored_total", 15, 20)
        assert stored(influxdb, standin_v3.backend_db("cbt_v3")) == 15
        assert not [c for c in standin_v3.requests_to("/query") if "CREATE" in c.params.get("q", "").upper()]
        assert {c.status for c in standin_v3.requests_to("/write") if c.params.get("db") == "cbt_v3"} == {204}
        rows = svc.api(f"/devices/{DEVICE}/readings", minutes=10).json()
        assert len(rows) == 15
        publish(mosquitto, "cbtv3w", 1)
        error = store_error(wrong, "refused influx.token")
        assert "influxdb3 create token --admin" in error
    finally:
        svc.close()
        wrong.close()
