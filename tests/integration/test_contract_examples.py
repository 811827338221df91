"""The contract's own example files, where a checkout has them beside it (`../shared/examples/`).

This is the one test that reads outside the repository: CI places the contract beside the clone, a
user's clone has nothing there, and then the test is skipped with its reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.settings import parse_settings
from tests.servers import InfluxD, Mosquitto
from tests.service import DevicePublisher, ServiceProcess, site_config, telemetry

CONTRACT_EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "examples"
EXAMPLES = sorted(CONTRACT_EXAMPLES.glob("*.yaml")) if CONTRACT_EXAMPLES.is_dir() else []

pytestmark = pytest.mark.skipif(not EXAMPLES, reason=f"no contract examples at {CONTRACT_EXAMPLES} "
                                "(a clone on its own has none beside it)")


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_the_service_runs_on_each_contract_example(
        example: Path, tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str,
        unique_prefix: str) -> None:
    """Each file loads as it is, and the service runs on it: a registered device's reading is stored."""
    settings = parse_settings(example.read_text(encoding="utf-8"), source=example.name, env={})
    device = settings.devices[0]
    svc = ServiceProcess(site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influxdb.url,
                                     database=influx_db, prefix=unique_prefix, base=example)).start()
    try:
        svc.wait_healthy()
        assert len(svc.api("/devices").json()) == len(settings.devices)
        pub = DevicePublisher(mosquitto.url, f"dev-{unique_prefix}")
        fields = {"smoke_detector": {"obscuration_pct_m": 0.2}, "ebike_charger": {"current_a": 2.0},
                  "water_level": {"level_cm": 1.0}, "fire_lane": {"occupied": False},
                  "battery_shed": {"temperature_c": 20.0, "co_ppm": 1.0}, "water_leak": {"leak": False}}[device.type]
        pub.publish(telemetry(unique_prefix, device.community, device.type, device.id), fields | {"seq": 1})
        pub.wait_acked()
        svc.wait_metric("cb_readings_stored_total", 1, 20)
        pub.close()
    finally:
        svc.close()
