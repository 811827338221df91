"""韧性评估 (docs/pages.md, docs/resilience.md) in real headless Chromium against a real broker, InfluxDB and
`cbrain run`: the street office sees its communities compared on a wall with their ratings in words; a
community with no devices, drills or supplies rates 低 and says why; after building 1's red alert is
acknowledged and resolved, the community's card on a phone shows the event's PEOPLES curve with the API's
normalised area, and its trend from the history in InfluxDB; in zh-CN and English."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.browser import chromium, screenshot, sign_in
from tests.servers import InfluxD, Mosquitto
from tests.service import DevicePublisher, ServiceProcess, site_config, telemetry

pytestmark = pytest.mark.integration
pytest.importorskip("playwright.sync_api")
YICUN, ERCUN, EMPTY = "linfen-yicun", "linfen-ercun", "linfen-sancun"
WALL, PHONE = {"width": 1920, "height": 1080}, {"width": 390, "height": 844}
ADMIN, STREET, G1 = "example-token-admin", "example-token-street", "example-token-worker-g1"
COMMITTEE, FIRE = "test-token-committee-yicun", "test-token-fire"
DAY_NS = 86_400 * 10**9


def make_site(tmp: Path, mosquitto: Mosquitto, influxdb: InfluxD, prefix: str) -> Path:
    db = f"db_{prefix}"
    influxdb.create_database(db)
    path = site_config(tmp, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=db, prefix=prefix)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    # A community with buildings and residents but no device, supply, shelter or drill.
    raw["communities"].append({"id": EMPTY, "name": "临汾三村", "grids": [{"id": "g9", "name": "第九网格"}],
                               "buildings": [{"id": "b21", "name": "21号楼", "grid": "g9", "residents": 200}]})
    raw["api_tokens"] += [{"token": COMMITTEE, "recipient": "committee-yicun"},
                          {"token": FIRE, "recipient": "fire-linfen"}]
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto,
          influxdb: InfluxD) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("pages-resilience")
    prefix = f"q{uuid.uuid4().hex[:8]}"
    db = f"db_{prefix}"
    # The last four days' history of linfen-yicun, as the daily round would have written it.
    now = time.time_ns()
    svc = ServiceProcess(make_site(tmp, mosquitto, influxdb, prefix)).start()
    svc.wait_healthy()
    influxdb.write(db, [f"resilience,community={YICUN},category={cat} score={score + 4 * k} {now - (4 - k) * DAY_NS}"
                        for k in range(4) for cat, score in (("overall", 40.0), ("sensing", 80.0),
                                                             ("response", 30.0))])
    pub = DevicePublisher(mosquitto.url, f"dev-{prefix}")
    try:
        with chromium() as browser:
            yield {"svc": svc, "pub": pub, "prefix": prefix, "browser": browser, "tmp": tmp}
    finally:
        pub.close()
        svc.stop()


def api(svc: ServiceProcess, token: str, method: str, path: str, body: dict[str, Any] | None = None,
        **params: Any) -> httpx.Response:
    return svc.http.request(method, f"/api/v1{path}", json=body, params=params,
                            headers={"Authorization": f"Bearer {token}"})


def login(world: dict[str, Any], token: str, viewport: dict[str, int], home: str = "**/wall") -> Any:
    return sign_in(world["browser"], world["svc"].base, token, viewport, home, timezone_id="Asia/Shanghai",
                   locale="zh-CN")


def shot(page: Any, world: dict[str, Any], name: str, full_page: bool = False) -> None:
    screenshot(page, world["tmp"], name, full_page=full_page)


def text(page: Any, selector: str) -> str:
    return " ".join(str(page.locator(selector).inner_text()).split())


@pytest.fixture(scope="module")
def event(world: dict[str, Any]) -> dict[str, Any]:
    """Building 1 red (both smoke detectors), every alert acknowledged or resolved: one PEOPLES event."""
    svc, pub, prefix = world["svc"], world["pub"], world["prefix"]
    for i, device in enumerate(("sd-b01-0501", "sd-b01-0502")):
        pub.publish(telemetry(prefix, YICUN, "smoke_detector", device),
                    {"ts": int(time.time() * 1000) + i, "seq": 1, "alarm": True, "obscuration_pct_m": 12.0})
    pub.wait_acked()
    red = svc.wait_for(lambda: next(iter(api(svc, ADMIN, "GET", "/alerts", rule="smoke.multi").json()), None),
                       15, "building 1's red alert")
    assert api(svc, G1, "POST", f"/alerts/{red['id']}/ack", {"note": "到场"}).status_code == 200
    time.sleep(0.3)
    for a in api(svc, ADMIN, "GET", "/alerts", community=YICUN).json():
        r = api(svc, ADMIN, "POST", f"/alerts/{a['id']}/resolve", {"category": "test", "note": "演练"})
        assert r.status_code == 200, r.text
    body: dict[str, Any] = api(svc, ADMIN, "GET", f"/communities/{YICUN}/resilience").json()
    peoples = next(i for c in body["categories"] for i in c["indicators"] if i["id"] == "peoples_area")
    assert peoples["count"] == 1 and peoples["curve"]
    return peoples


def test_the_street_office_compares_its_communities_on_a_wall(world: dict[str, Any]) -> None:
    page = login(world, STREET, WALL)
    page.click("nav >> text=韧性评估")
    page.wait_for_url("**/resilience")
    rows = page.locator("#compare tbody tr")
    assert [rows.nth(k).get_attribute("data-community") for k in range(rows.count())] == [YICUN, ERCUN, EMPTY]
    for k in range(rows.count()):
        cells = rows.nth(k).locator("td")
        assert cells.count() == 6  # overall and the five categories
        for j in range(cells.count()):
            rating = cells.nth(j).locator(".rs-chip")
            word = {"low": "低", "medium": "中", "high": "高"}[rating.get_attribute("data-rating")]
            assert word in rating.inner_text()
    assert text(page, f'tr[data-community="{EMPTY}"] td[data-category="overall"]').endswith("低")
    shot(page, world, "resilience-street-1920x1080")
    page.goto("/resilience?lang=en")
    assert text(page, "#compare thead").startswith("Community Overall Sensing")
    assert text(page, f'tr[data-community="{EMPTY}"] td[data-category="overall"]').endswith("Low")
    shot(page, world, "resilience-street-1920x1080-en")
    page.goto("/resilience?lang=zh-CN")
    page.click(f'tr[data-community="{EMPTY}"] th a')
    page.wait_for_url(f"**/resilience?community={EMPTY}")
    # The community with nothing in it: 低, and why.
    assert page.locator("#overall").get_attribute("data-rating") == "low"
    assert "低" in text(page, "#overall .rs-word")
    for iid, reason in (("coverage", "社区没有登记设备"), ("supplies_ready", "社区未登记应急物资"),
                        ("drills_12m", "12个月内没有演练记录"), ("shelter_capacity", "社区未登记避难场所")):
        assert text(page, f'[data-indicator="{iid}"] .rs-reason') == reason, iid
    assert text(page, "#peoples") == "最近一次事件的功能曲线（PEOPLES） 12个月内没有已结束的橙色/红色事件"
    assert text(page, "#trend .rs-trend-line").startswith("只有一次记录")  # written at start


def test_the_community_card_on_a_phone_shows_the_event_and_the_trend(world: dict[str, Any],
                                                                     event: dict[str, Any]) -> None:
    page = login(world, COMMITTEE, PHONE)
    page.goto("/resilience")
    assert page.locator(".rs-category").count() == 5
    assert [page.locator(".rs-category .rs-cat-name").nth(k).inner_text() for k in range(5)] == [
        "感知覆盖", "告警响应", "吹哨报到", "应急准备", "事件恢复"]
    assert page.locator("#overall .rs-word").inner_text().split()[-1] in ("低", "中", "高")
    assert page.locator("#peoples svg.curve polygon.area").count() == 1
    assert text(page, "#peoples .rs-area") == f"归一化面积 {event['value']:g}"
    assert page.locator("#trend svg.spark").count() == 1 and "5 次记录" in text(page, "#trend")
    # The trend ends where the headline stands (the score now), not at the last daily record.
    assert text(page, "#trend .rs-trend-line b") == text(page, "#overall .rs-num")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width  # nothing wider than the phone
    shot(page, world, "resilience-card-390x844")
    page.locator("#peoples").scroll_into_view_if_needed()
    shot(page, world, "resilience-card-390x844-curve")
    page.goto("/resilience?lang=en")
    assert text(page, "#peoples .rs-area") == f"Normalised area {event['value']:g}"
    assert page.locator(".rs-category .rs-cat-name").first.inner_text() == "Sensing"
    shot(page, world, "resilience-card-390x844-en")


def test_the_page_is_scoped(world: dict[str, Any]) -> None:
    svc = world["svc"]

    def get(token: str, path: str) -> httpx.Response:
        with httpx.Client(base_url=svc.base, timeout=5) as client:
            assert client.post("/login", data={"token": token}).status_code == 303
            return client.get(path)

    assert get(COMMITTEE, "/resilience").status_code == 200
    other = get(COMMITTEE, f"/resilience?community={ERCUN}")
    missing = get(COMMITTEE, "/resilience?community=nonexistent-0")
    assert other.status_code == missing.status_code == 404 and "临汾二村" not in other.text
    worker = get(G1, "/resilience")
    assert worker.status_code == 200 and 'id="overall"' in worker.text and "临汾一村" in worker.text
    assert get(FIRE, "/resilience").status_code == 404  # a department: nothing
