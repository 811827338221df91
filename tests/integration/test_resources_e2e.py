"""Shelters, supplies and door knocks end to end (CONTRACT §13): a real broker, InfluxDB, `cbrain run` and
real webhook receivers.

A kitchen fire goes red in a building with two vulnerable residents: the grid worker's alert lists both,
the nearest shelter and the building's extinguishers, and the notification says what is on hand; one is
reached, one is not, and the community is told at the deadline. The street office and the bureau see
counts only, route by route, and nothing personal reaches the log or their notifications. Supplies
expire and fall short and their alerts go to the keeper's grid and the community; stock, occupancy and
door knocks survive a `kill -9`.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest
import yaml

from device_sim.receiver import Receiver
from tests.servers import InfluxD, Mosquitto
from tests.service import DevicePublisher, ServiceProcess, site_config, telemetry

pytestmark = pytest.mark.integration
YICUN = "linfen-yicun"
KNOCK_WITHIN_S = 6
TOKENS = {"worker-g1": "example-token-worker-g1", "street": "example-token-street", "admin": "example-token-admin",
          "bureau": "test-token-bureau", "committee": "test-token-committee", "worker-g2": "test-token-worker-g2",
          "worker-g3": "example-token-worker-g3"}
# What is personal about the two residents of building b01 (examples/site.yaml): none of it may reach the
# street office, the bureau, the log or a notification beyond the grid.
PERSONAL = ("v-b01-0302", "v-b01-0601", "王阿婆", "李伯伯", "13800000001", "13800000002", "行动缓慢", "需担架")


def make_site(tmp: Path, mosquitto: Mosquitto, influxdb: InfluxD, receiver: Receiver, prefix: str) -> Path:
    db = f"db_{prefix}"
    httpx.post(f"{influxdb.url}/query", data={"q": f'CREATE DATABASE "{db}"'})
    path = site_config(tmp, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=db, prefix=prefix,
                       extra={"resources": {"door_knock_within_s": KNOCK_WITHIN_S}})
    raw = yaml.safe_load(path.read_text(encoding="utf-8").replace("127.0.0.1:9101", f"127.0.0.1:{receiver.port}"))
    raw["api_tokens"] += [{"token": TOKENS["bureau"], "recipient": "bureau"},
                          {"token": TOKENS["committee"], "recipient": "committee-yicun"},
                          {"token": TOKENS["worker-g2"], "recipient": "worker-g2"}]
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    yicun = next(c for c in raw["communities"] if c["id"] == YICUN)
    for s in yicun["supplies"]:
        if s["id"] == "sup-ext-b01":
            s["expires"] = (today + timedelta(days=10)).isoformat()  # expiring (blue)
        if s["id"] == "sup-hood-b01":
            s["expires"] = (today - timedelta(days=1)).isoformat()  # past its last day (yellow)
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto,
          influxdb: InfluxD) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("resources")
    prefix = f"r{uuid.uuid4().hex[:8]}"
    receiver = Receiver().start()
    svc = ServiceProcess(make_site(tmp, mosquitto, influxdb, receiver, prefix)).start()
    svc.wait_healthy()
    pub = DevicePublisher(mosquitto.url, f"dev-{prefix}")
    try:
        yield {"svc": svc, "pub": pub, "prefix": prefix, "rx": receiver, "influxdb": influxdb, "db": f"db_{prefix}"}
    finally:
        pub.close()
        svc.stop()
        receiver.stop()


def call(svc: ServiceProcess, who: str, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return svc.http.request(method, f"/api/v1{path}", json=body, headers={"Authorization": f"Bearer {TOKENS[who]}"})


def told(rx: Receiver, recipient: str, rule: str | None = None, event: str | None = None) -> list[dict[str, Any]]:
    out = [r.json for r in rx.unique(f"/{recipient}").values()]
    return [n for n in out if "alert" in n and (rule is None or n["alert"]["rule"] == rule)
            and (event is None or n["event"] == event)]


def wait_told(world: dict[str, Any], recipient: str, rule: str, event: str = "fired",
              timeout: float = 20) -> dict[str, Any]:
    got: list[dict[str, Any]] = world["svc"].wait_for(lambda: told(world["rx"], recipient, rule, event), timeout,
                                                      f"{event} {rule} to {recipient}")
    return got[0]


def open_alert(svc: ServiceProcess, rule: str, device_id: str | None = None, timeout: float = 20) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        return next((a for a in call(svc, "admin", "GET", f"/alerts?rule={rule}&status=firing").json()
                     if device_id is None or a["device_id"] == device_id), None)
    got: dict[str, Any] = svc.wait_for(find, timeout, f"a firing {rule} alert")
    return got


def kitchen_fire(world: dict[str, Any]) -> dict[str, Any]:
    """Both smoke detectors of building b01 in alarm: smoke.multi, red, for the building."""
    now = int(time.time() * 1000)
    for i, device in enumerate(("sd-b01-0501", "sd-b01-0502")):
        world["pub"].publish(telemetry(world["prefix"], YICUN, "smoke_detector", device),
                             {"ts": now + i, "seq": 1, "alarm": True, "obscuration_pct_m": 14.0})
    world["pub"].wait_acked()
    return open_alert(world["svc"], "smoke.multi")


def test_a_kitchen_fire_goes_red_the_grid_worker_knocks_and_the_community_is_told_at_the_deadline(
        world: dict[str, Any]) -> None:
    svc, rx = world["svc"], world["rx"]
    red = kitchen_fire(world)
    assert (red["level"], red["building"]) == ("red", "b01")
    # The grid worker: both residents to reach, the nearest shelter and the building's fire supplies.
    mine = svc.wait_for(lambda: (lambda b: b if len(b.get("door_knocks") or []) == 2 else None)(
        call(svc, "worker-g1", "GET", f"/alerts/{red['id']}").json()), 15, "the door knocks")
    assert {k["vulnerable_id"] for k in mine["door_knocks"]} == {"v-b01-0302", "v-b01-0601"}
    assert {k["name"] for k in mine["door_knocks"]} == {"王阿婆", "李伯伯"}
    assert all(k["status"] == "pending" for k in mine["door_knocks"])
    assert mine["incident"] == "fire"
    # b01 (31.31742, 121.45163) to the school (31.31905, 121.45402), on a flat local grid: about 290 m.
    flat = math.hypot(0.00163 * 111_195, 0.00239 * 111_195 * math.cos(math.radians(31.318)))
    assert mine["shelters"][0]["id"] == "sh-school" and abs(mine["shelters"][0]["distance_m"] - flat) <= 2
    assert [s["id"] for s in mine["shelters"]] == ["sh-school", "sh-park"]  # the neighbour's, within 1 km
    assert [s["id"] for s in mine["supplies"]][:2] in (["sup-ext-b01", "sup-hood-b01"],
                                                      ["sup-hood-b01", "sup-ext-b01"])
    assert all("fire" in s["kind"] for s in mine["supplies"])  # no sandbags for a fire
    assert mine["supplies"][0]["distance_m"] == 0 and mine["supplies"][0]["keeper"] == "worker-g1"
    # The notification to the people on site says, briefly, what is on hand; nobody's details.
    note = wait_told(world, "worker-g1", "smoke.multi")
    assert "临汾路小学操场" in note["on_hand"] and "灭火器" in note["on_hand"]
    assert "on_hand" not in wait_told(world, "street-office", "smoke.multi")

    reached = call(svc, "worker-g1", "POST", f"/alerts/{red['id']}/door-knocks/v-b01-0302",
                   {"status": "reached", "note": "已转移到小学操场"})
    assert reached.status_code == 200, reached.text
    assert reached.json()["door_knocks_summary"]["reached"] == 1
    missed = call(svc, "worker-g1", "POST", f"/alerts/{red['id']}/door-knocks/v-b01-0601",
                  {"status": "not_reached", "note": "敲门无人应答"})
    assert missed.status_code == 200, missed.text
    after = {k["vulnerable_id"]: k for k in missed.json()["door_knocks"]}
    assert after["v-b01-0302"]["status"] == "reached" and after["v-b01-0302"]["by"] == "worker-g1"
    assert after["v-b01-0601"]["status"] == "not_reached" and after["v-b01-0601"]["note"] == "敲门无人应答"
    # Bad knocks are refused with their reason.
    assert call(svc, "worker-g1", "POST", f"/alerts/{red['id']}/door-knocks/v-b01-0302",
                {"status": "maybe"}).status_code == 422
    assert call(svc, "worker-g1", "POST", f"/alerts/{red['id']}/door-knocks/v-b03-0105",
                {"status": "reached"}).status_code == 404

    # One not reached at the deadline: the community is told, by count.
    late = wait_told(world, "committee-yicun", "door_knocks.late", timeout=KNOCK_WITHIN_S + 15)
    assert late["alert"]["value"] == 1 and late["alert"]["building"] == "b01"
    assert "尚有 1 户未确认安全" in late["alert"]["summary"]
    # The street office: counts only, on every route that shows the alert.
    street = call(svc, "street", "GET", f"/alerts/{red['id']}").json()
    counts = {k: street["door_knocks_summary"][k] for k in ("total", "reached", "not_reached", "pending")}
    assert counts == {"total": 2, "reached": 1, "not_reached": 1, "pending": 0}
    assert "door_knocks" not in street or street["door_knocks"] is None
    for who in ("street", "bureau"):
        for path in (f"/alerts/{red['id']}", "/alerts", f"/alerts?community={YICUN}"):
            text = call(svc, who, "GET", path).text
            assert not [p for p in PERSONAL if p in text], (who, path)
        refused = call(svc, who, "POST", f"/alerts/{red['id']}/door-knocks/v-b01-0601", {"status": "reached"})
        assert refused.status_code == 403, refused.text
    # The grid worker of another community does not see the alert at all; the community sees the residents.
    assert call(svc, "worker-g3", "GET", f"/alerts/{red['id']}").status_code == 404
    assert len(call(svc, "committee", "GET", f"/alerts/{red['id']}").json()["door_knocks"]) == 2
    # Nothing personal in the notifications of anyone beyond the grid, nor in the service's log.
    for recipient in ("street-office", "bureau", "committee-yicun"):
        sent = orjson.dumps([r.json for r in rx.unique(f"/{recipient}").values()]).decode()
        assert not [p for p in PERSONAL if p in sent], recipient
    log = svc.log_path.read_text(encoding="utf-8", errors="replace")
    assert not [p for p in PERSONAL if p in log]
    # The last one reached: the late alert ends.
    call(svc, "committee", "POST", f"/alerts/{red['id']}/door-knocks/v-b01-0601", {"status": "reached"})
    wait_told(world, "committee-yicun", "door_knocks.late", event="resolved")


def test_supplies_expire_and_fall_short_and_their_alerts_go_to_the_keepers_grid_and_the_community(
        world: dict[str, Any]) -> None:
    svc = world["svc"]
    expiring = wait_told(world, "worker-g1", "supplies.expiring")
    assert expiring["alert"]["level"] == "blue" and expiring["alert"]["device_id"] == "supply:sup-ext-b01"
    assert "10 天后到期" in expiring["alert"]["summary"]
    wait_told(world, "committee-yicun", "supplies.expiring")  # (blue: the community too, for supplies)
    expired = wait_told(world, "committee-yicun", "supplies.expired")
    assert expired["alert"]["device_id"] == "supply:sup-hood-b01" and expired["alert"]["level"] == "yellow"
    wait_told(world, "worker-g1", "supplies.expired")
    assert not told(world["rx"], "worker-g2", "supplies.expired")  # another grid's keeper's

    listed = {s["id"]: s for s in call(svc, "worker-g1", "GET", "/supplies?expiring_within_days=30").json()}
    assert set(listed) == {"sup-ext-b01", "sup-hood-b01"} and listed["sup-hood-b01"]["expired"]
    # The sandbags' keeper is worker-g2 (grid g2): taking them below their minimum tells g2 and the community.
    taken = call(svc, "worker-g2", "POST", "/supplies/sup-sandbag/movements",
                 {"delta": -120, "reason": "used", "note": "东门堵水"})
    assert taken.status_code == 200, taken.text
    assert taken.json()["quantity"] == 180 and taken.json()["short"]
    short = wait_told(world, "worker-g2", "supplies.short")
    assert short["alert"]["grid"] == "g2" and short["alert"]["value"] == 180
    wait_told(world, "committee-yicun", "supplies.short")
    assert not told(world["rx"], "worker-g1", "supplies.short")
    # Who may not move it, and what does not fit, is refused with its reason; the stock stays.
    for who, body, status in (("worker-g1", {"delta": -1, "reason": "used"}, 403),
                              ("bureau", {"delta": -1, "reason": "used"}, 403),
                              ("worker-g2", {"delta": -500, "reason": "used"}, 409),
                              ("worker-g2", {"delta": 5, "reason": "used"}, 422),
                              ("worker-g2", {"delta": 0, "reason": "restocked"}, 422),
                              ("worker-g2", {"delta": 5, "reason": "stolen"}, 422),
                              ("worker-g2", {"delta": 2, "quantity": 5, "reason": "count"}, 422)):
        r = call(svc, who, "POST", "/supplies/sup-sandbag/movements", body)
        assert r.status_code == status, (who, body, r.text)
        assert r.json()["detail"]
    # A stock count back above the minimum ends the alert; the ledger says who, when, how much, why.
    counted = call(svc, "committee", "POST", "/supplies/sup-sandbag/movements", {"quantity": 260, "reason": "count"})
    assert counted.json()["quantity"] == 260
    wait_told(world, "worker-g2", "supplies.short", event="resolved")
    ledger = call(svc, "admin", "GET", "/supplies/ledger?supply=sup-sandbag").json()
    assert [(m["delta"], m["quantity"], m["reason"], m["actor"]) for m in ledger] == [
        (-120, 180, "used", "worker-g2"), (80, 260, "count", "committee-yicun")]
    xlsx = call(svc, "admin", "GET", "/supplies/ledger?format=xlsx")
    assert xlsx.headers["content-type"].startswith("application/vnd.openxmlformats") and xlsx.content[:2] == b"PK"
    audit = call(svc, "admin", "GET", "/audit?action=supply_movement").json()["entries"]
    assert [(e["supply_id"], e["detail"]["delta"]) for e in audit][-2:] == [("sup-sandbag", -120), ("sup-sandbag", 80)]


def test_a_full_shelter_is_told_and_stock_occupancy_and_door_knocks_survive_a_kill_9(
        world: dict[str, Any]) -> None:
    svc = world["svc"]
    assert call(svc, "worker-g1", "POST", "/shelters/sh-school/occupancy", {"count": 10}).status_code == 403
    assert call(svc, "committee", "POST", "/shelters/sh-school/occupancy", {"count": -1}).status_code == 422
    r = call(svc, "committee", "POST", "/shelters/sh-school/occupancy", {"count": 545})
    assert r.status_code == 200 and r.json()["occupancy"] == 545
    alert = open_alert(svc, "shelter.full", "shelter:sh-school")
    assert alert["level"] == "yellow"
    call(svc, "street", "POST", "/shelters/sh-school/occupancy", {"count": 600})
    svc.wait_for(lambda: open_alert(svc, "shelter.full")["level"] == "orange", 10, "shelter.full orange")
    # The wall's map reads the shelter's occupancy from InfluxDB (shelter_state).
    def on_map() -> float | None:
        res = world["influxdb"].query("SELECT last(occupancy) FROM shelter_state WHERE shelter = 'sh-school'",
                                      db=world["db"])
        series = res["results"][0].get("series") or []
        return series[0]["values"][0][1] if series and series[0]["values"][0][1] == 600 else None
    assert svc.wait_for(on_map, 40, "the shelter's occupancy in InfluxDB") == 600
    capacity = {c["community"]: c for c in call(svc, "street", "GET", "/shelters/capacity").json()}
    assert capacity[YICUN]["shelter_capacity"] == 600 and capacity[YICUN]["residents"] == 825
    assert capacity[YICUN]["meets_norm"] is True
    call(svc, "worker-g1", "POST", "/supplies/sup-ext-b01/movements", {"delta": -3, "reason": "used"})
    before = {s["id"]: s["quantity"] for s in call(svc, "admin", "GET", "/supplies").json()}
    knocks = {a["id"]: call(svc, "admin", "GET", f"/alerts/{a['id']}").json().get("door_knocks_summary")
              for a in call(svc, "admin", "GET", "/alerts?rule=smoke.multi").json()}

    svc.kill()
    svc.start()
    svc.wait_healthy()
    assert {s["id"]: s["quantity"] for s in call(svc, "admin", "GET", "/supplies").json()} == before
    assert before["sup-ext-b01"] == 21 and before["sup-sandbag"] == 260
    assert {s["id"]: s["occupancy"] for s in call(svc, "admin", "GET", "/shelters").json()}["sh-school"] == 600
    assert {a: call(svc, "admin", "GET", f"/alerts/{a}").json().get("door_knocks_summary") for a in knocks} == knocks
    # One episode stays one alert across the restart: no second shelter.full, no second supplies.short.
    assert len(call(svc, "admin", "GET", "/alerts?rule=shelter.full").json()) == 1
    assert len([a for a in call(svc, "admin", "GET", "/alerts?rule=supplies.expiring").json()]) == 1
