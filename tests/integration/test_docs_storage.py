"""docs/storage.md stays true: every InfluxQL example runs against the real influxd of the test run,
after `cbrain run` stored readings of the example site's devices and an alert, and returns data."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.servers import InfluxD, Mosquitto
from tests.service import DevicePublisher, ServiceProcess, site_config, telemetry

pytestmark = pytest.mark.integration
DOC = Path(__file__).resolve().parents[2] / "docs" / "storage.md"
QUERIES = re.findall(r"^```sql\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.M | re.S)
YICUN, ERCUN = "linfen-yicun", "linfen-ercun"

# A few minutes of the example site's devices, ending now: (community, type, device, fields).
READINGS: list[tuple[str, str, str, dict[str, Any]]] = [
    (YICUN, "smoke_detector", "sd-b01-0501", {"obscuration_pct_m": 0.3, "alarm": False, "battery_pct": 90}),
    (YICUN, "smoke_detector", "sd-b03-0101", {"obscuration_pct_m": 0.2, "alarm": False, "battery_pct": 15}),
    (YICUN, "ebike_charger", "ev-b02-p01", {"current_a": 3.1, "temperature_c": 30.5, "charging": True,
                                             "battery_pct": 70}),
    (YICUN, "water_level", "wl-gate-east", {"level_cm": 2.0, "rain_mm_h": 8}),
    (ERCUN, "water_level", "wl-garage", {"level_cm": 4.5}),
    (YICUN, "fire_lane", "fl-lane-north", {"occupied": True, "object": "car", "confidence": 0.9}),
    (YICUN, "water_leak", "lk-b01-pump", {"leak": True, "temperature_c": 16.5, "battery_pct": 93}),
]


def test_the_page_has_queries() -> None:
    assert len(QUERIES) >= 8
    assert any('FROM "alert"' in q for q in QUERIES)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto, influxdb: InfluxD) -> Any:
    """A database filled by the service: readings of every type, and one alert (a smoke alarm)."""
    tmp = tmp_path_factory.mktemp("docs-storage")
    db = "cbt_docs_storage"
    influxdb.create_database(db)
    config = site_config(tmp, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=db, prefix="cbtdocs")
    svc = ServiceProcess(config).start()
    pub = DevicePublisher(mosquitto.url, "dev-cbtdocs")
    try:
        svc.wait_healthy()
        now_ms = int(time.time() * 1000)
        sent = 0
        for step in range(5):  # one a minute, the last one now
            ts = now_ms - (4 - step) * 60_000
            for community, device_type, device_id, fields in READINGS:
                pub.publish(telemetry("cbtdocs", community, device_type, device_id),
                            {"ts": ts, "seq": step, **fields})
                sent += 1
        pub.publish(telemetry("cbtdocs", YICUN, "smoke_detector", "sd-b01-0502"),
                    {"ts": now_ms, "seq": 0, "alarm": True, "obscuration_pct_m": 12.0})
        sent += 1
        pub.wait_acked()
        svc.wait_metric("cb_readings_stored_total", sent)
        svc.wait_for(lambda: influxdb.count("alert", db) > 0, 30, "an alert point in InfluxDB")
        yield influxdb, db
    finally:
        pub.close()
        svc.close()
        influxdb.drop_database(db)


@pytest.mark.parametrize("query", QUERIES, ids=[f"q{i}" for i in range(len(QUERIES))])
def test_every_query_runs_and_returns_data(stored: Any, query: str) -> None:
    influxdb, db = stored
    result = influxdb.query(query.strip(), db=db)  # raises on any error the server reports
    series = [s for stmt in result["results"] for s in stmt.get("series", [])]
    assert series and all(s.get("values") for s in series), f"no data for:\n{query}\n{result}"
