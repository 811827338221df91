"""Rules end to end: readings published to a real Mosquitto produce the expected transitions in
`cbrain run`; rule state survives kill -9; a changed rules file is reloaded."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.servers import InfluxD, Mosquitto
from tests.service import DevicePublisher, ServiceProcess, site_config, telemetry

pytestmark = pytest.mark.integration

YICUN = "linfen-yicun"


def firing(svc: ServiceProcess) -> dict[str, dict[str, str]]:
    return {d["device_id"]: d["firing"] for d in svc.api("/devices").json() if d["firing"]}


def transitions(svc: ServiceProcess, rule: str, kind: str, level: str) -> float:
    return svc.metric(f'cb_rule_transitions_total{{rule="{rule}",kind="{kind}",level="{level}"}}')


def test_smoke_in_one_building_fires_multi_and_turns_a_blocked_fire_lane_red_and_survives_kill_9(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str) -> None:
    config = site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=influx_db,
                         prefix=unique_prefix)
    svc = ServiceProcess(config).start()
    try:
        svc.wait_healthy()
        pub = DevicePublisher(mosquitto.url, f"dev-{unique_prefix}")
        now_ms = int(time.time() * 1000)
        # The fire lane has been occupied for two minutes: pending, not yet an alert.
        lane = telemetry(unique_prefix, YICUN, "fire_lane", "fl-lane-north")
        pub.publish(lane, {"ts": now_ms - 120_000, "seq": 0, "occupied": True, "object": "car"})
        pub.publish(lane, {"ts": now_ms - 1_000, "seq": 1, "occupied": True, "object": "car"})
        pub.wait_acked()
        svc.wait_metric("cb_readings_stored_total", 2)
        assert "fl-lane-north" not in firing(svc)

        # Two detectors of building 1 alarm: each orange, the building red, and the lane red at once.
        pub.publish(telemetry(unique_prefix, YICUN, "smoke_detector", "sd-b01-0501"),
                    {"ts": now_ms, "seq": 0, "obscuration_pct_m": 12.5, "temperature_c": 31})
        pub.publish(telemetry(unique_prefix, YICUN, "smoke_detector", "sd-b01-0502"),
                    {"ts": now_ms + 500, "seq": 0, "alarm": True})
        pub.wait_acked()
        svc.wait_metric('cb_rule_transitions_total{rule="smoke.multi",kind="fire",level="red"}', 1, 15)
        got = firing(svc)
        assert got["sd-b01-0501"] == {"smoke.obscuration": "yellow", "smoke.alarm": "orange"}
        assert got["sd-b01-0502"] == {"smoke.alarm": "orange"}
        assert got["fl-lane-north"] == {"fire_lane.blocked": "red"}
        assert transitions(svc, "smoke.alarm", "fire", "orange") == 2
        assert transitions(svc, "fire_lane.blocked", "fire", "red") == 1
        # A repeated reading keeps the episode: no second alert.
        pub.publish(telemetry(unique_prefix, YICUN, "smoke_detector", "sd-b01-0502"),
                    {"ts": now_ms + 10_000, "seq": 1, "alarm": True})
        pub.wait_acked()
        svc.wait_metric("cb_readings_stored_total", 5)
        assert transitions(svc, "smoke.alarm", "fire", "orange") == 2

        svc.kill()
        svc = ServiceProcess(config).start()
        svc.wait_healthy()
        assert firing(svc) == got, "rule state restored after kill -9"
        # The smoke clears; after its clear time (60 s of reading time) the episodes end.
        for seq, device in ((1, "sd-b01-0501"), (2, "sd-b01-0502")):
            for dt in (20_000, 95_000):
                pub.publish(telemetry(unique_prefix, YICUN, "smoke_detector", device),
                            {"ts": now_ms + dt, "seq": seq + dt // 1000, "obscuration_pct_m": 0.1,
                             "alarm": False, "temperature_c": 25})
        pub.wait_acked()
        svc.wait_metric('cb_rule_transitions_total{rule="smoke.alarm",kind="clear",level="none"}', 2, 15)
        assert "sd-b01-0501" not in firing(svc) and "sd-b01-0502" not in firing(svc)
        pub.close()
    finally:
        svc.close()


def test_a_changed_rules_file_is_reloaded_and_a_broken_one_is_refused(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str) -> None:
    rules = tmp_path / "rules.yaml"
    body = """
rules:
  - id: water.level
    device_types: [water_level]
    levels:
      - {{level: blue, when: {{field: level_cm, at_least: {blue}}}}}
"""
    rules.write_text(body.format(blue=10))
    config = site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=influx_db,
                         prefix=unique_prefix, extra={"rules": str(rules)})
    svc = ServiceProcess(config).start()
    try:
        svc.wait_healthy()
        pub = DevicePublisher(mosquitto.url, f"dev-{unique_prefix}")
        gate = telemetry(unique_prefix, YICUN, "water_level", "wl-gate-east")
        pub.publish(gate, {"seq": 0, "level_cm": 8})
        pub.wait_acked()
        svc.wait_metric("cb_readings_stored_total", 1)
        assert firing(svc) == {}

        rules.write_text(body.format(blue=5))
        assert svc.proc is not None
        svc.proc.send_signal(signal.SIGHUP)
        svc.wait_metric('cb_rules_reloads_total{outcome="ok"}', 1, 10)
        pub.publish(gate, {"seq": 1, "level_cm": 8})
        pub.wait_acked()
        svc.wait_metric('cb_rule_transitions_total{rule="water.level",kind="fire",level="blue"}', 1, 10)

        rules.write_text("rules: [{id: water.level, levels: []}]\n")
        svc.proc.send_signal(signal.SIGHUP)
        svc.wait_metric('cb_rules_reloads_total{outcome="invalid"}', 1, 10)
        assert firing(svc) == {"wl-gate-east": {"water.level": "blue"}}, "the running rules and state stay"
        assert "rules file not reloaded" in svc.log_tail()
        pub.close()
    finally:
        svc.close()


def test_a_broken_rules_file_stops_the_service_from_starting(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - id: smoke.alarm\n    levels:\n"
                     "      - {level: purple, when: {field: alarm, is: true}}\n")
    config = site_config(tmp_path, mqtt_url="mqtt://127.0.0.1:1", influx_url=None, database="x",
                         extra={"rules": str(rules)})
    svc = ServiceProcess(config).start()
    assert svc.proc is not None
    assert svc.proc.wait(30) == 2
    lines = svc.log_tail().strip().splitlines()
    assert len(lines) == 1 and f"{rules}:4: rules.0.levels.0.level" in lines[0], lines
