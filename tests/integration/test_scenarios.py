"""Every shipped scenario, played with `cbrain simulate --scenario NAME --verify` against the real
pipeline (Mosquitto, `cbrain run`, InfluxDB), meets every expectation; a wrong expectation is caught."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from device_sim.scenario import SHIPPED, find_scenario, load_scenario, shipped_names
from tests.servers import InfluxD, Mosquitto, free_port
from tests.service import ServiceProcess, env_without_cb, site_config

REPO = Path(__file__).resolve().parents[2]
SCENARIO_SITE = SHIPPED / "site.yaml"


def _site(tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, db: str, prefix: str) -> Path:
    """The scenarios' site pointed at this test's broker, InfluxDB, and a free port for the webhooks."""
    path = site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=db, prefix=prefix,
                       base=SCENARIO_SITE, roster=True)
    path.write_text(path.read_text(encoding="utf-8").replace("127.0.0.1:9101", f"127.0.0.1:{free_port()}"),
                    encoding="utf-8")
    return path


def _simulate(site: Path, scenario: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", "simulate", "--scenario", scenario, "--verify",
                           "--config", str(site), "--quiet", *extra],
                          capture_output=True, text=True, cwd=REPO, env=env_without_cb(), timeout=180)


def _alerts_stored(influxdb: InfluxD, db: str) -> set[tuple[str, str]]:
    res = influxdb.query('SELECT "alert_id", "rule", "event" FROM "alert"', db=db)
    series = res["results"][0].get("series", [])
    if not series:
        return set()
    cols = series[0]["columns"]
    return {(row[cols.index("rule")], row[cols.index("event")]) for row in series[0]["values"]}


@pytest.mark.parametrize("name", shipped_names())
def test_a_shipped_scenario_meets_every_expectation(name: str, tmp_path: Path, mosquitto: Mosquitto,
                                                    influxdb: InfluxD, influx_db: str, unique_prefix: str) -> None:
    site = _site(tmp_path, mosquitto, influxdb, influx_db, unique_prefix)
    service = ServiceProcess(site).start()
    try:
        service.wait_healthy()
        run = _simulate(site, name)
        assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\nservice:\n{service.log_tail()}"
        spec = load_scenario(find_scenario(name)).spec
        met = [line for line in run.stdout.splitlines() if line.strip().startswith("met ")]
        assert len(met) == len(spec.expect), run.stdout
        assert f"{len(spec.expect)} of {len(spec.expect)} expectations met, 0 unexpected" in run.stdout
        # The readings went all the way to InfluxDB, and so did the alerts the expectations name.
        stored = service.metric('cb_readings_stored_total')
        assert stored > 0
        # (叫应's calls are notifications, not alert events: the ledger keeps them, not InfluxDB; work orders
        # are checked in work_orders below.)
        told = {(x.rule, e.value) for x in spec.expect if x.told and x.rule != "work_order" for e in x.event
                if e.value != "call"}
        assert told <= _alerts_stored(influxdb, influx_db)
        if any(x.rule == "work_order" for x in spec.expect):  # 吹哨报到: the dashboards' figures too
            res = influxdb.query('SELECT count("orders") FROM "work_orders"', db=influx_db)
            assert res["results"][0].get("series"), res
    finally:
        service.close()


def test_a_wrong_expectation_fails_the_run_and_says_why(tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD,
                                                        influx_db: str, unique_prefix: str) -> None:
    raw: dict[str, Any] = yaml.safe_load(find_scenario("device-maintenance").read_text(encoding="utf-8"))
    raw["site"] = str(SCENARIO_SITE)
    raw["expect"][0]["told"] = ["worker-g1", "committee-yicun"]  # a blue alert goes to the grid worker only
    raw["expect"][1]["level"] = "yellow"  # the battery alert is blue
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    site = _site(tmp_path, mosquitto, influxdb, influx_db, unique_prefix)
    service = ServiceProcess(site).start()
    try:
        service.wait_healthy()
        run = _simulate(site, str(wrong), "--via", "events")  # heard through the API's event stream
        assert run.returncode == 1, run.stdout + run.stderr
        lines = run.stdout.splitlines()
        assert any("NOT MET" in x and "committee-yicun not told in time" in x for x in lines), run.stdout
        assert any("NOT MET" in x and "device.battery yellow" in x for x in lines), run.stdout
        assert any("UNEXPECTED" in x and "device.battery blue" in x for x in lines), run.stdout
        assert "2 of 4 expectations met" in run.stdout
    finally:
        service.close()
