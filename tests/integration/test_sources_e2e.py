"""Devices of other systems end to end: real Mosquitto, `cbrain run`, real InfluxDB, real webhook
receivers, and an HTTP client pushing as CTWing and OneNET do. The Zigbee2MQTT payloads are the ones
zigbee-herdsman-converters made (tests/fixtures/zigbee2mqtt); Tasmota's is its firmware's format."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from device_sim.receiver import Receiver
from ingest.sources.types.onenet import signature
from tests.servers import InfluxD, Mosquitto
from tests.service import EXAMPLE_SITE, DevicePublisher, ServiceProcess, recipients_at, site_config, telemetry
from tests.sources_kit import ctwing_report, onenet_push
from tests.unit.test_sources import TASMOTA_SENSOR

pytestmark = pytest.mark.integration
YICUN = "linfen-yicun"
Z2M = {c["name"]: c for c in json.loads(
    (Path(__file__).parents[1] / "fixtures/zigbee2mqtt/expected.json").read_text(encoding="utf-8"))["cases"]}
CTWING_TOKEN = "aep-push-token-0042"
ONENET_TOKEN = "onenet-push-token-7"
NB = "7c1e2a9e2b7c4a3b9a1f0d6e5c4b3a21"


def sources_site(tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, prefix: str,
                 receiver: Receiver | None = None) -> Path:
    devices = yaml.safe_load(EXAMPLE_SITE.read_text(encoding="utf-8"))["devices"]
    devices += [
        {"id": "sd-b02-0301", "type": "smoke_detector", "community": YICUN, "building": "b02", "source": "z2m",
         "address": "b02/301/smoke"},
        {"id": "ev-b02-s01", "type": "ebike_charger", "community": YICUN, "building": "b02", "source": "sockets",
         "address": "shed_strip_1", "port": 1},
        {"id": "ev-b02-s02", "type": "ebike_charger", "community": YICUN, "building": "b02", "source": "sockets",
         "address": "shed_strip_1", "port": 2},
        *({"id": f"sd-nb-{i}", "type": "smoke_detector", "community": YICUN, "building": "b02", "source": "aep",
           "address": f"{NB[:-2]}{i:02d}"} for i in range(5)),
        {"id": "sd-one-1", "type": "smoke_detector", "community": YICUN, "building": "b03", "source": "mobile",
         "address": "nb-smoke-0301"},
    ]
    extra: dict[str, Any] = {
        "sources": [{"id": "z2m", "type": "zigbee2mqtt", "base_topic": f"{prefix}-z2m", "community": YICUN},
                    {"id": "sockets", "type": "tasmota", "telemetry_prefix": f"{prefix}-tele"},
                    {"id": "aep", "type": "ctwing", "token": CTWING_TOKEN, "profile": "nb-smoke"},
                    {"id": "mobile", "type": "onenet", "token": ONENET_TOKEN, "profile": "nb-smoke-studio"}],
        "devices": devices}
    if receiver is not None:
        extra["recipients"] = recipients_at(receiver.base)
    return site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=influx_db,
                       prefix=prefix, extra=extra)


def told(receiver: Receiver) -> Counter[tuple[str, str, str, str]]:
    return Counter((r.path.strip("/"), r.json["alert"]["rule"], r.json["alert"]["device_id"], r.json["event"])
                   for r in receiver.unique().values())


def test_zigbee_tasmota_and_availability_raise_the_alerts_of_their_devices(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str,
        receiver: Receiver) -> None:
    svc = ServiceProcess(sources_site(tmp_path, mosquitto, influxdb, influx_db, unique_prefix, receiver)).start()
    try:
        svc.wait_healthy()
        pub = DevicePublisher(mosquitto.url, f"dev-{unique_prefix}")
        pub.publish(f"{unique_prefix}-z2m/b02/301/smoke", Z2M["heiman_smoke_alarm"]["message"].encode())
        pub.publish(f"{unique_prefix}-tele/shed_strip_1/SENSOR", TASMOTA_SENSOR.replace(
            b'"Time":"2025-12-06T09:59:30"', time.strftime('"Time":"%Y-%m-%dT%H:%M:%S"',
                                                          time.gmtime(time.time() + 8 * 3600)).encode()))
        pub.publish(f"{unique_prefix}-z2m/b05/0101/smoke", Z2M["heiman_smoke_alarm"]["message"].encode())
        pub.wait_acked()
        svc.wait_for(lambda: len(receiver.unique()) >= 6, 20, "six notifications")
        got = told(receiver)
        for who in ("worker-g1", "committee-yicun", "street-office"):
            assert got[(who, "smoke.alarm", "sd-b02-0301", "fired")] == 1, got
            assert got[(who, "ebike.overcurrent", "ev-b02-s02", "fired")] == 1, got
        assert not any(device == "ev-b02-s01" for _, _, device, _ in got)  # port 1 draws nothing
        pub.publish(f"{unique_prefix}-z2m/b02/301/smoke/availability", b'{"state":"offline"}', retain=True)
        pub.wait_acked()
        svc.wait_for(lambda: told(receiver)[("worker-g1", "device.offline", "sd-b02-0301", "fired")], 20,
                     "device.offline of the Zigbee detector")
        svc.wait_metric("cb_readings_stored_total", 3, 10)
        smoke = influxdb.rows("smoke_detector", influx_db)
        assert [(r["device_id"], r["building"], r["grid"], r["alarm"]) for r in smoke] == [
            ("sd-b02-0301", "b02", "g1", True)]
        ebike = {r["device_id"]: r for r in influxdb.rows("ebike_charger", influx_db)}
        assert ebike["ev-b02-s02"]["current_a"] == 10.26 and ebike["ev-b02-s02"]["energy_wh"] == 3507.0
        assert ebike["ev-b02-s01"]["current_a"] == 0.0
        unknown = svc.api("/unregistered").json()
        assert [(u["source"], u["address"], u["community"]) for u in unknown] == [("z2m", "b05/0101/smoke", YICUN)]
        assert svc.metric('cb_readings_rejected_total{reason="unknown_device"}') == 1
        pub.close()
    finally:
        svc.close()


def push_ctwing(http: httpx.Client, body: bytes, token: str = CTWING_TOKEN) -> httpx.Response:
    return http.post("/ingest/ctwing/aep", params={"token": token}, content=body,
                     headers={"Content-Type": "application/json"})


def test_pushes_signed_checked_stored_once_and_as_fast_as_a_native_device(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str,
        receiver: Receiver) -> None:
    svc = ServiceProcess(sources_site(tmp_path, mosquitto, influxdb, influx_db, unique_prefix, receiver)).start()
    try:
        svc.wait_healthy()
        http = svc.http
        # Wrong or missing credentials: refused, nothing taken.
        assert push_ctwing(http, ctwing_report(f"{NB[:-2]}00", 1), token="not-the-token").status_code == 403
        assert http.post("/ingest/ctwing/aep", content=ctwing_report(f"{NB[:-2]}00", 1)).status_code == 401
        studio = {"messageType": "notify", "notifyType": "property", "productId": "Hq2sM7lQ1v",
                  "deviceName": "nb-smoke-0301", "data": {"id": "1", "params": {
                      "SmokeSensorState": {"value": 1, "time": int(time.time() * 1000)}}}}
        assert http.post("/ingest/onenet/mobile", content=onenet_push(studio, "a forged token")).status_code == 403
        assert http.post("/ingest/ctwing/nowhere", params={"token": CTWING_TOKEN}, content=b"{}").status_code == 404
        assert svc.metric("cb_messages_received_total") == 0
        # OneNET checks the URL first: its msg comes back.
        check = http.get("/ingest/onenet/mobile", params={
            "msg": "r8Kq2", "nonce": "abc", "signature": signature(ONENET_TOKEN, "abc", "r8Kq2")})
        assert (check.status_code, check.text) == (200, "r8Kq2")
        # A native alarm and a pushed one, each timed from sending to the grid worker's notification.
        pub = DevicePublisher(mosquitto.url, f"dev-{unique_prefix}")
        started = time.monotonic()
        pub.publish(telemetry(unique_prefix, YICUN, "smoke_detector", "sd-b01-0501"), {"alarm": True})
        svc.wait_for(lambda: told(receiver)[("worker-g1", "smoke.alarm", "sd-b01-0501", "fired")], 20, "native")
        native_s = time.monotonic() - started
        started = time.monotonic()
        body = ctwing_report(f"{NB[:-2]}01", 1)
        assert push_ctwing(http, body).status_code == 200
        svc.wait_for(lambda: told(receiver)[("worker-g1", "smoke.alarm", "sd-nb-1", "fired")], 20, "pushed")
        pushed_s = time.monotonic() - started
        print(f"alarm to the grid worker: native {native_s * 1000:.0f} ms, CTWing push {pushed_s * 1000:.0f} ms")
        assert pushed_s < max(2 * native_s, native_s + 0.5), (native_s, pushed_s)
        # A push retried by the platform (the same bytes, no counter) is stored once; OneNET's too.
        assert push_ctwing(http, body).status_code == 200
        signed = onenet_push(studio, ONENET_TOKEN)
        for _ in range(2):
            assert http.post("/ingest/onenet/mobile", content=signed).status_code == 200
        # A push from a device nobody registered is answered 200 (AEP keeps pushing the others) and listed.
        assert push_ctwing(http, ctwing_report("ffff0000", 7)).status_code == 200
        svc.wait_metric("cb_readings_stored_total", 3, 10)
        time.sleep(0.5)
        rows = Counter(r["device_id"] for r in influxdb.rows("smoke_detector", influx_db))
        assert rows == Counter({"sd-b01-0501": 1, "sd-nb-1": 1, "sd-one-1": 1})
        assert svc.metric("cb_readings_duplicates_total") == 2
        assert ("aep", "ffff0000") in {(u["source"], u["address"]) for u in svc.api("/unregistered").json()}
        pub.close()
    finally:
        svc.close()


def test_kill_9_during_pushes_loses_nothing_that_was_answered_200(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str) -> None:
    """A pusher that retries like AEP (on a refused connection or a 503); every push answered 200
    must be in InfluxDB after two kill -9s."""
    config = sources_site(tmp_path, mosquitto, influxdb, influx_db, unique_prefix)
    svc = ServiceProcess(config).start()
    svc.wait_healthy()
    base_ms = int(time.time() * 1000) - 60_000
    total = 1500
    answered: set[int] = set()

    def pusher() -> None:
        with httpx.Client(base_url=svc.base, timeout=10) as http:
            for i in range(total):
                body = ctwing_report(f"{NB[:-2]}{i % 5:02d}", 7, sn=i // 5, ts_ms=base_ms + i)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    try:
                        if push_ctwing(http, body).status_code == 200:
                            answered.add(i)
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.05)
                time.sleep(0.004)

    thread = threading.Thread(target=pusher, daemon=True)
    thread.start()
    try:
        for at_least in (300, 900):
            svc.wait_for(lambda n=at_least: len(answered) >= n, 60, f"{at_least} pushes answered")
            svc.kill()
            svc = ServiceProcess(config).start()
            svc.wait_healthy()
        thread.join(120)
        assert not thread.is_alive()
        assert len(answered) == total

        def stored() -> set[int]:
            return {(r["time"] // 1_000_000) - base_ms for r in influxdb.rows("smoke_detector", influx_db)}
        svc.wait_for(lambda: len(stored()) >= total, 60, f"{total} pushes in InfluxDB")
        assert answered <= stored()
        assert len(influxdb.rows("smoke_detector", influx_db)) == total
    finally:
        svc.close()
