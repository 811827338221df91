"""Alerts end to end: readings through real Mosquitto to `cbrain run`, notifications to real HTTP receivers."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from device_sim.receiver import Receiver
from device_sim.receiver import signed_by as verify
from tests.servers import InfluxD, Mosquitto
from tests.service import EXAMPLE_SITE, DevicePublisher, ServiceProcess, recipients_at, site_config, telemetry

pytestmark = pytest.mark.integration
YICUN = "linfen-yicun"
SECRETS = {r["id"]: r["channels"][0]["secret"]
           for r in yaml.safe_load(EXAMPLE_SITE.read_text(encoding="utf-8"))["recipients"]}




def told(receiver: Receiver) -> Counter[tuple[str, str, str, str]]:
    """(recipient, event, rule, level) of every unique notification delivered."""
    return Counter((r.path.strip("/"), r.json["event"], r.json["alert"]["rule"], r.json["alert"]["level"])
                   for r in receiver.unique().values())


def wait_told(svc: ServiceProcess, receiver: Receiver, n: int, timeout: float = 20) -> None:
    svc.wait_for(lambda: len(receiver.unique()) >= n, timeout, f"{n} notifications delivered")
    time.sleep(0.5)  # anything more than expected would arrive now


def test_the_right_people_are_told_signed_once_per_event_and_a_grid_worker_acknowledges(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str,
        receiver: Receiver) -> None:
    config = site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=influx_db,
                         prefix=unique_prefix, extra={"recipients": recipients_at(receiver.base)})
    svc = ServiceProcess(config).start()
    try:
        svc.wait_healthy()
        pub = DevicePublisher(mosquitto.url, f"dev-{unique_prefix}")
        now_ms = int(time.time() * 1000)
        sd1 = telemetry(unique_prefix, YICUN, "smoke_detector", "sd-b01-0501")
        # Smoke builds up: yellow (grid worker g1 + committee), then the detector's alarm: orange (+ street office).
        pub.publish(sd1, {"ts": now_ms, "seq": 0, "obscuration_pct_m": 6.0})
        pub.wait_acked()
        wait_told(svc, receiver, 2)
        pub.publish(sd1, {"ts": now_ms + 5000, "seq": 1, "obscuration_pct_m": 6.5, "alarm": True})
        pub.wait_acked()
        wait_told(svc, receiver, 5)
        assert told(receiver) == Counter({
            ("worker-g1", "fired", "smoke.obscuration", "yellow"): 1,
            ("committee-yicun", "fired", "smoke.obscuration", "yellow"): 1,
            ("worker-g1", "fired", "smoke.alarm", "orange"): 1,
            ("committee-yicun", "fired", "smoke.alarm", "orange"): 1,
            ("street-office", "fired", "smoke.alarm", "orange"): 1,
        })
        for r in receiver.delivered():
            assert verify(SECRETS[r.path.strip("/")], r), f"signature of {r.path}"
            assert r.headers["Content-Type"] == "application/json"
            assert r.json["recipient"] == r.path.strip("/") and r.json["event_id"] == r.headers["X-CB-Event-Id"]
            assert r.json["alert"]["summary"].startswith("【") and "临汾一村 1号楼" in r.json["alert"]["summary"]

        # The same condition again is the same episode: nobody is told twice.
        pub.publish(sd1, {"ts": now_ms + 10_000, "seq": 2, "obscuration_pct_m": 7.0, "alarm": True})
        pub.wait_acked()
        svc.wait_metric("cb_readings_stored_total", 3)
        time.sleep(1)
        assert len(receiver.unique()) == 5

        alerts = svc.api("/alerts", status="firing").json()
        alarm = next(a for a in alerts if a["rule"] == "smoke.alarm")
        assert {a["rule"] for a in alerts} == {"smoke.alarm", "smoke.obscuration"}
        # Another grid's worker neither sees nor acknowledges it, by list, filter or id.
        g3 = "example-token-worker-g3"
        assert svc.api("/alerts", token=g3).json() == []
        assert svc.api("/alerts", token=g3, community=YICUN).status_code == 403
        assert svc.api(f"/alerts/{alarm['id']}", token=g3).status_code == 404
        r = svc.http.post(f"/api/v1/alerts/{alarm['id']}/ack", headers={"Authorization": f"Bearer {g3}"})
        assert r.status_code == 404
        # Its own grid worker acknowledges, with a note.
        r = svc.http.post(f"/api/v1/alerts/{alarm['id']}/ack", json={"note": "到场查看中"},
                          headers={"Authorization": "Bearer example-token-worker-g1"})
        assert r.status_code == 200 and r.json()["status"] == "acknowledged"
        wait_told(svc, receiver, 8)
        assert sum(n for (who, ev, *_), n in told(receiver).items() if ev == "acknowledged") == 3
        detail = svc.api(f"/alerts/{alarm['id']}").json()
        assert [h["event"] for h in detail["history"]] == ["fired", "acknowledged"]
        assert detail["acknowledged_by"] == "worker-g1" and detail["ack_note"] == "到场查看中"
        assert len(detail["fingerprint"]) == 16 and detail["fingerprint"] != alarm["id"]
        assert all(n["status"] == "delivered" for n in detail["notifications"])
        again = svc.http.post(f"/api/v1/alerts/{alarm['id']}/ack",
                              headers={"Authorization": "Bearer example-token-admin"})
        assert again.status_code == 409

        # A second detector of building 1: smoke.multi red reaches the bureau too.
        pub.publish(telemetry(unique_prefix, YICUN, "smoke_detector", "sd-b01-0502"),
                    {"ts": now_ms + 20_000, "seq": 0, "alarm": True})
        pub.wait_acked()
        wait_told(svc, receiver, 8 + 4)
        multi = {who for (who, ev, rule, lv) in told(receiver) if rule == "smoke.multi"}
        assert multi == {"worker-g1", "committee-yicun", "street-office", "bureau"}
        # The building's red speaks for the second detector: its own orange is inhibited, and audited.
        fired_alarms = [n for (_w, ev, rule, _l), n in told(receiver).items() if (rule, ev) == ("smoke.alarm", "fired")]
        assert sum(fired_alarms) == 3
        second = next(a for a in svc.api("/alerts", rule="smoke.alarm").json() if a["device_id"] == "sd-b01-0502")
        assert [h["event"] for h in svc.api(f"/alerts/{second['id']}").json()["history"]] == ["fired", "inhibited"]

        # The smoke clears: each detector's alert resolves after its clear time, and whoever was told it
        # fired hears so (nobody heard of the second detector's own alarm: the building spoke for it).
        for seq, device in ((3, "sd-b01-0501"), (1, "sd-b01-0502")):
            for dt in (30_000, 100_000):
                pub.publish(telemetry(unique_prefix, YICUN, "smoke_detector", device),
                            {"ts": now_ms + dt, "seq": seq + dt // 10_000, "obscuration_pct_m": 0.1, "alarm": False})
        pub.wait_acked()
        svc.wait_for(lambda: [a["rule"] for a in svc.api("/alerts", status="firing").json()] == ["smoke.multi"]
                     and svc.api("/alerts", status="acknowledged").json() == [], 20, "detector alerts resolved")
        wait_told(svc, receiver, 12 + 2 + 3)
        resolved = Counter(rule for (_w, ev, rule, _l), n in told(receiver).items() for _ in range(n)
                           if ev == "resolved")
        assert resolved == Counter({"smoke.obscuration": 2, "smoke.alarm": 3})
        # The building's alert waits out its own clear time; the street office closes it by hand.
        multi_id = svc.api("/alerts", status="firing").json()[0]["id"]
        r = svc.http.post(f"/api/v1/alerts/{multi_id}/resolve", json={"note": "消防已确认无火情"},
                          headers={"Authorization": "Bearer example-token-street"})
        assert r.status_code == 200 and r.json()["status"] == "resolved"
        wait_told(svc, receiver, 17 + 4)
        detail = svc.api(f"/alerts/{multi_id}").json()
        assert (detail["resolved_by"], detail["resolve_note"]) == ("street-office", "消防已确认无火情")
        assert svc.metric("cb_notifications_undeliverable_total") == 0

        # Every alert event is in InfluxDB too (measurement `alert`), once per event, not per recipient.
        def events() -> list[tuple[str, str, str]]:
            return sorted((r["rule"], r["event"], r["level"]) for r in influxdb.rows("alert", influx_db))
        svc.wait_for(lambda: len(events()) >= 9, 15, "alert events in InfluxDB")
        assert events() == sorted([
            ("smoke.obscuration", "fired", "yellow"), ("smoke.alarm", "fired", "orange"),
            ("smoke.alarm", "acknowledged", "orange"), ("smoke.alarm", "fired", "orange"),
            ("smoke.multi", "fired", "red"), ("smoke.obscuration", "resolved", "yellow"),
            ("smoke.alarm", "resolved", "orange"), ("smoke.alarm", "resolved", "orange"),
            ("smoke.multi", "resolved", "red")])
        rows = influxdb.rows("alert", influx_db)
        assert {r["alert_id"] for r in rows} >= {alarm["id"], multi_id}
        assert all(r["community"] == YICUN and r["summary"] for r in rows)
        pub.close()
    finally:
        svc.close()


def test_a_fire_drill_under_a_silence_tells_nobody_and_is_audited(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str,
        receiver: Receiver) -> None:
    config = site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=influx_db,
                         prefix=unique_prefix, extra={"recipients": recipients_at(receiver.base)})
    svc = ServiceProcess(config).start()
    try:
        svc.wait_healthy()

        def silence(token: str, **body: Any) -> Any:
            return svc.http.post("/api/v1/silences", json=body, headers={"Authorization": f"Bearer {token}"})

        street, g1 = "example-token-street", "example-token-worker-g1"
        drill = silence(street, community=YICUN, building="b03", duration_s=600, reason="消防演练")
        assert drill.status_code == 201, drill.text
        # A grid worker may mute only its own grid's places.
        assert silence(g1, community=YICUN, device_id="sd-b03-0101", duration_s=60, reason="x").status_code == 403
        assert silence(g1, community=YICUN, duration_s=60, reason="x").status_code == 403
        assert silence(g1, community=YICUN, device_id="sd-b01-0501", duration_s=60, reason="维修").status_code == 201
        assert silence(street, rule="smoke.alarm", reason="x").status_code == 422  # neither ends_at nor duration_s
        assert silence(street, community=YICUN, duration_s=60, reason="").status_code == 422
        assert [x["reason"] for x in svc.api("/silences", token=g1).json()] == ["维修"]

        pub = DevicePublisher(mosquitto.url, f"dev-{unique_prefix}")
        now_ms = int(time.time() * 1000)
        pub.publish(telemetry(unique_prefix, YICUN, "smoke_detector", "sd-b03-0101"),
                    {"ts": now_ms, "seq": 0, "alarm": True})
        # An alert outside the silences is told as usual.
        pub.publish(telemetry(unique_prefix, YICUN, "smoke_detector", "sd-b01-0502"),
                    {"ts": now_ms, "seq": 0, "obscuration_pct_m": 6.0})
        pub.wait_acked()
        wait_told(svc, receiver, 2)
        assert {r.json["alert"]["device_id"] for r in receiver.unique().values()} == {"sd-b01-0502"}
        muted = next(a for a in svc.api("/alerts").json() if a["device_id"] == "sd-b03-0101")
        history = svc.api(f"/alerts/{muted['id']}").json()["history"]
        assert [(h["event"], h["actor"]) for h in history] == [("fired", None), ("silenced", "street-office")]
        assert "消防演练" in history[1]["note"]

        ended = svc.http.delete(f"/api/v1/silences/{drill.json()['id']}",
                                headers={"Authorization": f"Bearer {street}"})
        assert ended.status_code == 200 and "ended by street-office" in ended.json()["reason"]
        assert [x["reason"] for x in svc.api("/silences", token=street).json()] == ["维修"]
        pub.close()
    finally:
        svc.close()


def test_a_reading_that_changes_an_alert_does_not_wait_for_the_flush_window(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str,
        receiver: Receiver) -> None:
    # A flush window of 3 s, in force at any rate: a quiet reading's commit waits for it, a reading
    # that fires an alert is committed (and its notification sent) within push_commit_spacing_s.
    config = site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=influx_db,
                         prefix=unique_prefix, extra={"recipients": recipients_at(receiver.base),
                                                      "ingest": {"flush_interval_s": 3.0, "batch_above_rate": 0.0}})
    svc = ServiceProcess(config).start()
    try:
        svc.wait_healthy()
        pub = DevicePublisher(mosquitto.url, f"dev-{unique_prefix}")
        gauge = telemetry(unique_prefix, YICUN, "water_level", "wl-gate-east")
        now_ms = int(time.time() * 1000)

        def committed_after(payload: dict[str, Any]) -> float:
            commits = svc.metric("cb_spool_commits_total")
            started = time.monotonic()
            pub.publish(gauge, payload)
            svc.wait_for(lambda: svc.metric("cb_spool_commits_total") > commits or None, 10, "a commit")
            return time.monotonic() - started

        committed_after({"ts": now_ms, "seq": 0, "level_cm": 2.0})
        quiet = committed_after({"ts": now_ms + 1000, "seq": 1, "level_cm": 3.0})
        assert quiet > 2.0, f"a quiet reading waited {quiet:.2f} s: the flush window is not in force"
        started = time.monotonic()
        pub.publish(gauge, {"ts": now_ms + 2000, "seq": 2, "level_cm": 12.0})  # blue water.level: worker-g2
        svc.wait_for(lambda: ("worker-g2", "fired", "water.level", "blue") in told(receiver) or None, 10,
                     "the alert's notification")
        urgent = time.monotonic() - started
        assert urgent < 1.0, f"the alert's reading waited {urgent:.2f} s for its commit"
        pub.close()
    finally:
        svc.close()
