"""吹哨报到 end to end: real broker, `cbrain run`, real webhook receivers and headless Chromium.

A fire alert raised by real MQTT smoke readings; from the inbox the grid worker blows a whistle to the
fire station and property management; both sign through their links; property management is late
to arrive and the street office is told (督办); both finish; the worker confirms and rates; the
ratings are in the API. Then: bad input is refused with reasons, and a restart keeps every order and
timer.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from device_sim.receiver import Receiver
from device_sim.receiver import signed_by as verify
from tests.browser import ARGS, CHROMIUM, SHOTS
from tests.servers import InfluxD, Mosquitto
from tests.service import DevicePublisher, ServiceProcess, site_config, telemetry

pytestmark = pytest.mark.integration
playwright_sync = pytest.importorskip("playwright.sync_api")
YICUN = "linfen-yicun"
WALL, PHONE = {"width": 1920, "height": 1080}, {"width": 390, "height": 844}
WORKER = {"Authorization": "Bearer example-token-worker-g1"}
# Short targets: the fire station has time; property management must be on site within 16 s.
DEPARTMENTS = [
    {"id": "fire", "name": "消防救援站", "kind": "fire", "contacts": ["fire-linfen"],
     "targets": {"urgent": {"sign_s": 120, "arrive_s": 300, "done_s": 900}}},
    {"id": "property-yicun", "name": "临汾一村物业", "kind": "property", "contacts": ["property-yicun"],
     "targets": {"urgent": {"sign_s": 15, "arrive_s": 16, "done_s": 900}}},
    {"id": "gas", "name": "燃气", "kind": "gas", "contacts": ["gas-linfen"],
     "targets": {"urgent": {"sign_s": 4, "arrive_s": 5, "done_s": 900},
                 "general": {"sign_s": 4, "arrive_s": 5, "done_s": 900}}},
]


def make_site(tmp: Path, mosquitto: Mosquitto, influxdb: InfluxD, receiver: Receiver, prefix: str) -> Path:
    db = f"db_{prefix}"
    httpx.post(f"{influxdb.url}/query", data={"q": f'CREATE DATABASE "{db}"'})
    path = site_config(tmp, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=db, prefix=prefix,
                       extra={"departments": DEPARTMENTS, "whistles": {"supervisors": ["street-office"],
                                                                       "stats_interval_s": 2}})
    raw = yaml.safe_load(path.read_text(encoding="utf-8").replace("127.0.0.1:9101", f"127.0.0.1:{receiver.port}"))
    raw["http"]["public_url"] = f"http://127.0.0.1:{raw['http']['port']}"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto,
          influxdb: InfluxD) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("whistles")
    prefix = f"w{uuid.uuid4().hex[:8]}"
    receiver = Receiver().start()
    config = make_site(tmp, mosquitto, influxdb, receiver, prefix)
    svc = ServiceProcess(config).start()
    svc.wait_healthy()
    pub = DevicePublisher(mosquitto.url, f"dev-{prefix}")
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield {"svc": svc, "pub": pub, "prefix": prefix, "browser": browser, "tmp": tmp, "rx": receiver,
                   "influxdb": influxdb, "db": f"db_{prefix}"}
        finally:
            browser.close()
            svc.stop()
            receiver.stop()


def shot(page: Any, world: dict[str, Any], name: str, **kw: Any) -> Path:
    path = world["tmp"] / f"{name}.png"
    page.screenshot(path=str(path), **kw)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)
    return path


def login(world: dict[str, Any], token: str, viewport: dict[str, int]) -> Any:
    context = world["browser"].new_context(viewport=viewport, base_url=world["svc"].base)
    page = context.new_page()
    page.on("pageerror", lambda e: print("page error:", e))
    page.goto("/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    return page


def notifications(rx: Receiver, recipient: str, event: str) -> list[dict[str, Any]]:
    return [r.json for r in rx.unique(f"/{recipient}").values() if r.json["event"] == event]


def wait_notification(world: dict[str, Any], recipient: str, event: str, timeout: float = 30,
                      **match: Any) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        for n in notifications(world["rx"], recipient, event):
            if all(n.get(k) == v or n["work_order"].get(k) == v for k, v in match.items()):
                return n
        return None
    got: dict[str, Any] = world["svc"].wait_for(found, timeout, f"{event} to {recipient} {match}")
    return got


def test_a_worker_whistles_from_the_inbox_departments_report_the_street_office_is_told_and_ratings_count(
        world: dict[str, Any]) -> None:
    svc, rx = world["svc"], world["rx"]
    world["pub"].publish(telemetry(world["prefix"], YICUN, "smoke_detector", "sd-b01-0501"),
                         {"ts": int(time.time() * 1000), "seq": 1, "alarm": True, "obscuration_pct_m": 12.0})
    world["pub"].wait_acked()
    alert = svc.wait_for(lambda: [a for a in svc.api("/alerts", community=YICUN).json()
                                  if a["device_id"] == "sd-b01-0501" and a["rule"] == "smoke.alarm"] or None,
                         15, "the fire alert")[0]

    phone = login(world, "example-token-worker-g1", PHONE)
    phone.wait_for_url("**/inbox")
    phone.locator(f'li.alert[data-alert-id="{alert["id"]}"]').wait_for(timeout=5000)
    shot(phone, world, "whistle-inbox-390x844")
    phone.locator(f'a[data-action=whistle][data-alert-id="{alert["id"]}"]').first.click()
    phone.wait_for_url("**/whistle/new?alert=*")
    assert phone.locator("input[name=where]").input_value().startswith("临汾一村 › 1号楼")
    assert phone.locator("input[name=grade][value=urgent]").is_checked()  # an orange alert: urgent
    # Nothing chosen: the form says what is wrong and keeps what was typed.
    phone.click("button[data-action=blow]")
    phone.locator("#form-error").wait_for(timeout=5000)
    assert "请至少选择一个部门" in phone.locator("#form-error").inner_text()
    phone.check(".dept-list[data-grade=urgent] input[value=fire]")
    phone.check(".dept-list[data-grade=urgent] input[value=property-yicun]")
    shot(phone, world, "whistle-form-390x844", full_page=True)
    phone.click("button[data-action=blow]")
    phone.wait_for_url("**/whistle/w*")
    whistle_id = phone.url.rsplit("/", 1)[-1]
    assert phone.locator("li.order").count() == 2

    # Each department's contact is told on its own webhook, signed, with the link to its work order.
    links = {}
    for dept, contact in (("fire", "fire-linfen"), ("property-yicun", "property-yicun")):
        n = wait_notification(world, contact, "order_opened", department=dept)
        assert n["work_order"]["whistle_id"] == whistle_id and n["work_order"]["alert_id"] == alert["id"]
        assert n["link"].startswith(svc.base + "/wo/")
        assert verify(f"example-secret-d{1 if dept == 'fire' else 4}",
                      next(r for r in rx.delivered(f"/{contact}") if r.json["event_id"] == n["event_id"]))
        links[dept] = n["link"].removeprefix(svc.base)

    depts: dict[str, Any] = {}
    for dept, path in links.items():
        context = world["browser"].new_context(viewport=PHONE, base_url=svc.base)  # no log-in: the link is enough
        page = context.new_page()
        page.goto(path)
        page.locator("[data-action=sign]").wait_for(timeout=5000)
        page.fill("input[name=note]", "收到，马上出发" if dept == "fire" else "物业保安已出发")
        page.click("[data-action=sign]")
        page.locator("[data-action=arrive]").wait_for(timeout=5000)
        depts[dept] = page
    shot(depts["fire"], world, "work-order-390x844", full_page=True)
    depts["fire"].click("[data-action=arrive]")
    depts["fire"].locator("[data-action=done]").wait_for(timeout=5000)
    n = wait_notification(world, "worker-g1", "order_signed", department="property-yicun")
    assert n["note"] == "物业保安已出发" and n["link"] == f"{svc.base}/whistle/{whistle_id}"

    # Property management is not on site within 16 s: the street office is told (督办), once.
    overdue = wait_notification(world, "street-office", "order_overdue", timeout=40, department="property-yicun")
    assert overdue["step"] == "arrive" and "督办" in overdue["work_order"]["summary"]
    assert not [x for x in notifications(rx, "street-office", "order_overdue")
                if x["work_order"]["department"] == "fire"]
    phone.reload()
    late = phone.locator('li.order[data-department="property-yicun"]')
    assert late.get_attribute("data-late") == "arrive"
    assert "已超时（督办）" in late.inner_text()
    shot(phone, world, "whistle-overdue-390x844", full_page=True)

    depts["property-yicun"].click("[data-action=arrive]")
    depts["property-yicun"].locator("[data-action=done]").wait_for(timeout=5000)
    for dept, page in depts.items():
        page.fill("input[name=note]", "明火已扑灭" if dept == "fire" else "通道已清理")
        page.click("[data-action=done]")
        page.locator(".whistle-head[data-status=done]").wait_for(timeout=5000)
        page.context.close()

    phone.reload()
    for dept, stars in (("fire", 5), ("property-yicun", 3)):
        card = phone.locator(f'li.order[data-department="{dept}"]')
        card.locator(f"input[name=rating][value='{stars}']").check(force=True)
        card.locator("input[name=note]").fill("处置及时" if stars == 5 else "到场偏慢")
        card.locator("[data-action=confirm]").click()
        phone.locator(f'li.order[data-department="{dept}"][data-status=confirmed]').wait_for(timeout=5000)
    phone.locator(f'.whistle-head[data-whistle-id="{whistle_id}"][data-status=closed]').wait_for(timeout=5000)
    shot(phone, world, "whistle-closed-390x844", full_page=True)
    wait_notification(world, "fire-linfen", "order_confirmed", rating=5)

    body = svc.http.get(f"/api/v1/whistles/{whistle_id}", headers=WORKER).json()
    assert body["status"] == "closed"
    ratings = {o["department"]: o["rating"] for o in body["orders"]}
    assert ratings == {"fire": 5, "property-yicun": 3}
    prop = next(o for o in body["orders"] if o["department"] == "property-yicun")
    assert prop["overdue"] == ["arrive"]
    assert [h["event"] for h in prop["history"]] == ["order_opened", "order_signed", "order_overdue",
                                                     "order_arrived", "order_done", "order_confirmed"]
    stats = svc.http.get("/api/v1/whistles/stats", headers=WORKER).json()
    by = {d["id"]: d for d in stats["departments"]}
    assert by["fire"]["rating_avg"] == 5.0 and by["property-yicun"]["rating_avg"] == 3.0
    assert by["property-yicun"]["late"] == 1 and by["fire"]["late"] == 0 and by["fire"]["closed"] == 1
    assert by["fire"]["sign_s_avg"] is not None and by["fire"]["arrive_s_avg"] is not None

    wall = login(world, "example-token-street", WALL)
    wall.goto("/whistles")
    row = wall.locator(f'li.wrow[data-whistle-id="{whistle_id}"]')
    row.wait_for(timeout=5000)
    assert row.get_attribute("data-status") == "closed"
    assert "3.0" in wall.locator('table.figures tr[data-id="property-yicun"]').inner_text()
    shot(wall, world, "whistles-1920x1080")
    phone.goto("/whistles")
    shot(phone, world, "whistles-390x844", full_page=True)

    # The dashboards' measurement: work_orders per department, with the ratings.
    def rated() -> list[Any] | None:
        res = world["influxdb"].query('SELECT last("rating_avg") FROM "work_orders" WHERE "department" = \'fire\' '
                                      'AND "community" = \'all\'', db=world["db"])
        series = res["results"][0].get("series")
        return series[0]["values"] if series and series[0]["values"][0][1] == 5.0 else None
    svc.wait_for(rated, 20, "work_orders in InfluxDB")
    # English on request: the words change, the levels and states are still named.
    phone.goto(f"/whistle/{whistle_id}?lang=en")
    assert "Confirmed" in phone.locator('li.order[data-department="fire"]').inner_text()
    assert "Rated" in phone.content() and "Urgent" in phone.content()
    shot(phone, world, "whistle-closed-en-390x844", full_page=True)
    phone.goto("/whistle/new")
    assert "Departments to summon" in phone.content()
    phone.goto("/whistle/new?lang=zh-CN")
    wall.context.close()
    phone.context.close()


def test_bad_whistles_get_reasons_and_only_those_who_may_blow_can(world: dict[str, Any]) -> None:
    svc = world["svc"]

    def post(body: dict[str, Any], token: str = "example-token-worker-g1") -> httpx.Response:
        r: httpx.Response = svc.http.post("/api/v1/whistles", json=body, headers={"Authorization": f"Bearer {token}"})
        return r
    good = {"grade": "general", "what": "楼道堆物", "where": "1号楼一楼", "departments": ["fire"]}
    assert post(good | {"grade": "soon"}).status_code == 422
    r = post(good | {"departments": ["navy"]})
    assert r.status_code == 422 and "no department 'navy'" in r.json()["detail"]
    assert post(good | {"departments": []}).status_code == 422
    r = post(good | {"alert_id": "no-such-alert"})
    assert r.status_code == 404
    r = post(good | {"community": "linfen-ercun"})
    assert r.status_code == 403  # outside the worker's scope
    r = post(good, token="example-token-admin")
    assert r.status_code == 422 and "which community" in r.json()["detail"]
    key = {"Authorization": "Bearer example-token-worker-g1", "Idempotency-Key": "w-1"}
    first = svc.http.post("/api/v1/whistles", json=good, headers=key)
    again = svc.http.post("/api/v1/whistles", json=good, headers=key)
    assert first.status_code == again.status_code == 200 and first.json()["id"] == again.json()["id"]
    assert first.json()["grid"] == "g1" and first.json()["blower_name"] == "张伟"
    # The other grid's worker does not see it; a forged or altered link opens nothing.
    other = svc.http.get(f"/api/v1/whistles/{first.json()['id']}",
                         headers={"Authorization": "Bearer example-token-worker-g3"})
    assert other.status_code == 404
    assert svc.http.post("/api/v1/work-orders/not-a-token/sign").status_code == 404
    assert svc.http.get("/wo/not-a-token").status_code == 404


def test_orders_and_timers_survive_a_restart(tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD) -> None:
    receiver = Receiver().start()
    config = make_site(tmp_path, mosquitto, influxdb, receiver, f"r{uuid.uuid4().hex[:8]}")
    svc = ServiceProcess(config).start()
    try:
        svc.wait_healthy()
        r = svc.http.post("/api/v1/whistles", headers=WORKER,
                          json={"grade": "urgent", "what": "燃气泄漏气味", "where": "2号楼", "departments": ["gas"]})
        assert r.status_code == 200, r.text
        whistle_id = r.json()["id"]
        svc.kill()  # before the 4 s deadline to sign: nothing could be flushed or said
        time.sleep(5)
        svc.start()
        svc.wait_healthy()
        world = {"svc": svc, "rx": receiver}
        n = wait_notification(world, "street-office", "order_overdue", timeout=20, department="gas")
        assert n["step"] in ("sign", "arrive") and n["work_order"]["whistle_id"] == whistle_id
        wait_notification(world, "gas-linfen", "order_opened", timeout=20)  # the outbox kept it across the kill
        body = svc.http.get(f"/api/v1/whistles/{whistle_id}", headers=WORKER).json()
        assert body["orders"][0]["status"] == "open"
        steps = svc.wait_for(lambda: set(svc.http.get(f"/api/v1/whistles/{whistle_id}", headers=WORKER)
                                         .json()["orders"][0]["overdue"]) == {"sign", "arrive"} or None,
                             20, "both steps reported")
        assert steps
        told = [x["step"] for x in notifications(receiver, "street-office", "order_overdue")]
        assert sorted(told) == ["arrive", "sign"]  # each once, none lost or repeated by the restart
    finally:
        svc.close()
        receiver.stop()
