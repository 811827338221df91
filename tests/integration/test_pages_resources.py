"""物资, 避难场所, 现场可用 and 上门确认 (CONTRACT §13) in real headless Chromium against the real broker and
`cbrain run`: a grid worker on a phone records the door knocks of building 1's red alert, the street
office sees their counts and nobody's name, a keeper takes supplies out (and is told when he asks for too
many), the street office counts the people in a shelter."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.browser import chromium, screenshot, sign_in
from tests.servers import Mosquitto
from tests.service import EXAMPLE_SITE, DevicePublisher, ServiceProcess, site_config, telemetry

pytestmark = pytest.mark.integration
pytest.importorskip("playwright.sync_api")
YICUN = "linfen-yicun"
WALL, PHONE = {"width": 1920, "height": 1080}, {"width": 390, "height": 844}
WORKER, STREET = "example-token-worker-g1", "example-token-street"
# Building 1's vulnerable residents (examples/site.yaml): what only their grid worker, their community and
# admins may see.
RESIDENTS = ("v-b01-0302", "v-b01-0601")
PERSONAL = ("王阿婆", "李伯伯", "13800000001", "13800000002", "行动缓慢", "需担架", "302室", "601室", *RESIDENTS)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("pages-resources")
    prefix = f"r{uuid.uuid4().hex[:8]}"
    # The readings' store is SQLite (no InfluxDB): nothing here reads readings back.
    config = site_config(tmp, mqtt_url=mosquitto.url, influx_url=None, database="unused", prefix=prefix)
    svc = ServiceProcess(config).start()
    svc.wait_healthy()
    pub = DevicePublisher(mosquitto.url, f"dev-{prefix}")
    try:
        with chromium() as browser:
            yield {"svc": svc, "pub": pub, "prefix": prefix, "browser": browser, "tmp": tmp}
    finally:
        svc.stop()


def building_1_red(svc: ServiceProcess, pub: DevicePublisher, prefix: str) -> dict[str, Any]:
    """Building 1 red: both its smoke detectors alarm (smoke.multi), which opens the door knocks of its two
    vulnerable residents."""
    for device in ("sd-b01-0501", "sd-b01-0502"):
        pub.publish(telemetry(prefix, YICUN, "smoke_detector", device),
                    {"ts": int(time.time() * 1000), "seq": 1, "alarm": True, "obscuration_pct_m": 12.0})
    pub.wait_acked()
    alert: dict[str, Any] = svc.wait_for(
        lambda: next((a for a in svc.api("/alerts", community=YICUN, rule="smoke.multi").json()
                      if a["level"] == "red"), None), 15, "building 1's red alert")
    svc.wait_for(lambda: svc.api(f"/alerts/{alert['id']}").json().get("door_knocks_summary"), 10, "its door knocks")
    return alert


@pytest.fixture(scope="module")
def red(world: dict[str, Any]) -> dict[str, Any]:
    """Building 1's red alert, with its door knocks."""
    return building_1_red(world["svc"], world["pub"], world["prefix"])


def login(world: dict[str, Any], token: str, viewport: dict[str, int], home: str) -> Any:
    # In the site's time zone, as the people on duty are: the times the pages write and the browser's agree.
    return sign_in(world["browser"], world["svc"].base, token, viewport, home, accept_downloads=True,
                   timezone_id="Asia/Shanghai", locale="zh-CN")


def shot(page: Any, world: dict[str, Any], name: str, full_page: bool = True) -> Path:
    return screenshot(page, world["tmp"], name, full_page=full_page)


def text(page: Any, selector: str) -> str:
    return " ".join(str(page.locator(selector).inner_text()).split())


def test_no_session_sees_nothing_and_a_cross_site_post_is_refused(world: dict[str, Any]) -> None:
    svc = world["svc"]
    for path in ("/supplies", "/shelters", "/supplies/ledger.xlsx"):
        r = svc.http.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login", path
    ok = svc.http.post("/login", data={"token": WORKER}, follow_redirects=False)
    session = "; ".join(f"{name}={value}" for name, value in ok.cookies.items())
    r = svc.http.post("/supplies/move", data={"supply": "sup-ext-b01", "reason": "used", "quantity": "1"},
                      headers={"Cookie": session, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert svc.api("/supplies", community=YICUN).json()[0]["quantity"] >= 0


def test_the_grid_worker_records_the_door_knocks_on_a_phone(world: dict[str, Any], red: dict[str, Any]) -> None:
    wall = login(world, STREET, WALL, "**/wall")
    chip = wall.locator(f'li.alert[data-alert-id="{red["id"]}"] .knock-chip')
    assert chip.inner_text() == "上门确认 0/2"
    phone = login(world, WORKER, PHONE, "**/inbox")
    assert phone.locator(f'li.alert[data-alert-id="{red["id"]}"] .knock-chip').inner_text() == "上门确认 0/2"
    phone.goto(f"/alert/{red['id']}")
    knocks = phone.locator("#knocks")
    assert text(phone, "#knocks .kn-share") == "2 户中 0 户已确认"
    assert text(phone, "#knocks .kn-recorded") == "2 户中 0 户已记录"
    assert text(phone, "#knocks .kn-due").startswith("须在 ")
    rows = knocks.locator("li.knock")
    assert [rows.nth(i).get_attribute("data-vulnerable-id") for i in range(rows.count())] == list(RESIDENTS)
    first, second = (knocks.locator(f'li.knock[data-vulnerable-id="{v}"]') for v in RESIDENTS)
    assert text(phone, "#k-v-b01-0302 .k-head") == "1单元302室 王阿婆 独居老人"
    assert "行动缓慢" in first.locator(".k-needs").inner_text()
    assert first.locator("a.tel").get_attribute("href") == "tel:13800000001"
    assert text(phone, "#k-v-b01-0601 .k-head") == "2单元601室 李伯伯 卧床"
    assert first.locator(".kstatus").inner_text().endswith("待上门")
    # What is on hand: the nearest shelter and the extinguishers, where they are and who keeps them.
    assert "临汾路小学操场" in phone.locator("#on-hand .oh-shelters").inner_text()
    ext = phone.locator('#on-hand .oh-supplies li[data-supply-id="sup-ext-b01"]')
    assert "灭火器" in ext.inner_text() and "1号楼一层楼梯口" in ext.inner_text() and "张伟" in ext.inner_text()
    # One-tap buttons big enough for a thumb, side by side on a 390-pixel phone.
    box = first.locator("[data-action=reached]").bounding_box()
    assert box["height"] >= 56 and box["width"] >= 140, box
    shot(phone, world, "alert-knocks-390x844")
    first.locator("[data-action=reached]").click()
    phone.locator('li.knock[data-vulnerable-id="v-b01-0302"][data-status=reached]').wait_for(timeout=10000)
    second.locator("input[name=note]").fill("敲门无人应答，已联系家属")
    second.locator("[data-action=not_reached]").click()
    phone.locator('li.knock[data-vulnerable-id="v-b01-0601"][data-status=not_reached]').wait_for(timeout=10000)
    assert text(phone, "#knocks .kn-recorded") == "2 户中 2 户已记录"
    assert text(phone, "#knocks .kn-share") == "2 户中 1 户已确认"
    assert text(phone, "#knocks .kn-due") == "⚠ 已全部记录，1 户未联系上，请继续设法联系"
    assert first.locator(".kstatus").inner_text().endswith("已确认") and "张伟" in first.inner_text()
    assert "未联系上" in second.locator(".kstatus").inner_text() and "已联系家属" in second.inner_text()
    shot(phone, world, "alert-knocks-done-390x844")
    phone.goto(f"/alert/{red['id']}?lang=en")
    assert text(phone, "#knocks .kn-share") == "1 of 2 reached"
    assert text(phone, "#k-v-b01-0302 .k-head") == "unit 1, room 302 王阿婆 elderly, alone"
    shot(phone, world, "alert-knocks-en-390x844")
    # The wall follows with its heartbeat (every 5 s): counts only.
    wall.wait_for_function("id => (document.querySelector(`li.alert[data-alert-id='${id}'] .knock-chip`) || {})"
                           ".textContent === '上门确认 1/2 · 1 户未联系上'", arg=red["id"], timeout=15000)
    shot(wall, world, "wall-knocks-1920x1080", full_page=False)
    assert not [p for p in PERSONAL if p in wall.content()]
    wall.context.close()
    phone.context.close()


def test_the_street_office_sees_the_counts_and_nobody(world: dict[str, Any], red: dict[str, Any]) -> None:
    svc = world["svc"]
    for vid, status in zip(RESIDENTS, ("reached", "not_reached"), strict=True):  # as the grid worker left them
        if svc.api(f"/alerts/{red['id']}").json()["door_knocks_summary"]["pending"]:
            r = svc.http.post(f"/api/v1/alerts/{red['id']}/door-knocks/{vid}", json={"status": status},
                              headers={"Authorization": "Bearer example-token-admin"})
            assert r.status_code == 200, r.text
    page = login(world, STREET, WALL, "**/wall")
    page.goto(f"/alert/{red['id']}")
    assert text(page, "#knocks .kn-share") == "2 户中 1 户已确认"
    assert text(page, "#knocks .kn-recorded") == "2 户中 2 户已记录"
    assert page.locator("#knocks li.knock").count() == 0 and page.locator("#knocks form").count() == 0
    assert "临汾路小学操场" in page.locator("#on-hand").inner_text()
    # A building's alert (smoke.multi) is about the building by name, not its internal key, and no
    # device page exists to link to.
    assert text(page, "dd.subject") == "1号楼 (烟感)" and page.locator("dd.subject a").count() == 0
    html = page.content()
    assert not [p for p in PERSONAL if p in html], [p for p in PERSONAL if p in html]
    shot(page, world, "alert-knocks-street-1920x1080")
    page.goto(f"/alert/{red['id']}?lang=en")
    assert text(page, "#knocks .kn-share") == "1 of 2 reached"
    assert text(page, "#knocks .kn-counts") == "2 of 2 recorded · 1 not reached · 0 to knock"
    assert not [p for p in PERSONAL if p in page.content()]
    # Nor can it record one.
    csrf = page.locator("form.logout input[name=csrf]").get_attribute("value")
    r = page.request.post(f"/alert/{red['id']}/door-knocks/{RESIDENTS[0]}", form={"csrf": csrf, "status": "reached"})
    assert r.status == 403 and not [p for p in PERSONAL if p in r.text()]
    page.context.close()


def test_the_keeper_takes_extinguishers_out_on_a_phone(world: dict[str, Any]) -> None:
    svc = world["svc"]
    before = next(s for s in svc.api("/supplies").json() if s["id"] == "sup-ext-b01")["quantity"]
    phone = login(world, WORKER, PHONE, "**/inbox")
    phone.locator("header nav a[href='/supplies']").click()
    phone.wait_for_url("**/supplies")
    row = phone.locator("tr#s-sup-ext-b01")
    assert row.locator(".qty").inner_text() == str(before)
    # Only what the caller keeps is in the form (worker-g1 keeps building 1's; the sandbags are worker-g2's).
    options = phone.locator("#move-form select[name=supply] option[value]:not([value=''])")
    assert sorted(options.evaluate_all("os => os.map(o => o.value)")) == ["sup-ext-b01", "sup-hood-b01"]
    assert phone.locator("tr#s-sup-sandbag [data-action=pick]").count() == 0
    shot(phone, world, "supplies-390x844")
    row.locator("[data-action=pick]").click()
    phone.wait_for_url("**/supplies?supply=sup-ext-b01#move")
    form = phone.locator("#move-form")
    assert form.locator("select[name=supply]").input_value() == "sup-ext-b01"
    assert form.locator("input[name=reason][value=used]").is_checked()
    form.locator("input[name=quantity]").fill("5")
    form.locator(".step-btn[data-step='1']").click()  # the thumb's + : 6
    assert form.locator("input[name=quantity]").input_value() == "6"
    form.locator("input[name=note]").fill("1号楼火情领用")
    form.locator("[data-action=move]").click()
    phone.wait_for_url(re.compile(r".*/supplies\?moved=sup-ext-b01.*"))
    left = before - 6
    assert text(phone, "#done") == f"✓ 已登记：灭火器 领用 6 具，现有 {left} 具"
    assert phone.locator("tr#s-sup-ext-b01 .qty").inner_text() == str(left)
    if left < 20:  # below its minimum of 20: said in words
        assert "短缺" in phone.locator("tr#s-sup-ext-b01 .states").inner_text()
    assert next(s for s in svc.api("/supplies").json() if s["id"] == "sup-ext-b01")["quantity"] == left
    shot(phone, world, "supplies-moved-390x844")
    # More than there is: the form says what is wrong and keeps what was typed; nothing moves.
    form.locator("select[name=supply]").select_option("sup-ext-b01")
    form.locator("input[name=quantity]").fill(str(left + 12))
    form.locator("input[name=note]").fill("再领一批")
    form.locator("[data-action=move]").click()
    error = phone.locator("#form-error")
    error.wait_for(timeout=10000)
    assert error.inner_text() == f"库存只有 {left} 具，不能领用 {left + 12} 具"
    assert form.locator("input[name=quantity]").input_value() == str(left + 12)
    assert form.locator("input[name=quantity]").get_attribute("aria-invalid") == "true"
    assert form.locator("input[name=note]").input_value() == "再领一批"
    assert form.locator("select[name=supply]").input_value() == "sup-ext-b01"
    assert next(s for s in svc.api("/supplies").json() if s["id"] == "sup-ext-b01")["quantity"] == left
    shot(phone, world, "supplies-error-390x844")
    # A stock count: the number counted, the difference worked out by the service.
    form.locator("label.reason-choice:has(input[value=count])").click()
    assert phone.locator("#qty-label").inner_text() == "清点实有数量"
    form.locator("input[name=quantity]").fill(str(left + 1))
    form.locator("[data-action=move]").click()
    phone.wait_for_url(re.compile(r".*/supplies\?moved=sup-ext-b01.*"))
    assert text(phone, "#done") == f"✓ 已盘点：灭火器 实有 {left + 1} 具（+1）"
    # The ledger, as Excel and as CSV, with the movements in words.
    with phone.expect_download() as got:
        phone.locator("[data-action=ledger-xlsx]").click()
    assert Path(got.value.path()).read_bytes()[:2] == b"PK"
    csv = phone.request.get("/supplies/ledger.csv")
    assert csv.ok and "1号楼火情领用" in csv.text() and "领用" in csv.text() and "盘点" in csv.text()
    phone.goto("/supplies?lang=en&kind=fire")
    assert phone.locator("tr.supply").count() == 2
    assert phone.locator(".kinds a.on").inner_text() == "Fire"
    phone.set_viewport_size(WALL)
    shot(phone, world, "supplies-en-1920x1080")
    phone.context.close()


def test_the_street_office_counts_the_people_in_a_shelter(world: dict[str, Any]) -> None:
    worker = login(world, WORKER, PHONE, "**/inbox")
    worker.goto("/shelters")
    assert worker.locator("#sh-sh-school").count() == 1 and worker.locator("#sh-sh-school form").count() == 0
    worker.context.close()
    phone = login(world, STREET, PHONE, "**/wall")
    phone.goto("/shelters")
    card = phone.locator("#sh-sh-school")
    yicun = phone.locator('section[data-community="linfen-yicun"] .norm')
    assert yicun.get_attribute("data-norm") == "ok" and "达标" in yicun.inner_text() and "15%" in yicun.inner_text()
    # A number the browser lets through but the service refuses: the card says what is wrong, as typed.
    csrf = phone.locator("form.logout input[name=csrf]").get_attribute("value")
    r = phone.request.post("/shelters/sh-school/occupancy", form={"csrf": csrf, "count": "5.5"})
    assert r.status == 422 and "请填写人数（0 或正整数）" in r.text() and 'value="5.5"' in r.text()
    count = card.locator("input[name=count]")
    count.fill("539")
    phone.locator("#sh-sh-school .step-btn[data-step='1']").click()  # 540 of 600: 90 %
    phone.locator("#sh-sh-school [data-action=occupancy]").click()
    phone.wait_for_url("**/shelters?updated=sh-school#sh-sh-school")
    card = phone.locator("#sh-sh-school")
    assert card.get_attribute("data-state") == "nearly"
    assert "接近满员" in card.locator(".oc-tag").inner_text()
    assert text(phone, "#sh-sh-school .occ-line") == "540 / 600 人（90%）"
    assert text(phone, "#done") == "✓ 已更新：临汾路小学操场 现有 540 人"
    assert world["svc"].api("/shelters").json()[0]["occupancy"] == 540
    shot(phone, world, "shelters-390x844")
    phone.goto("/shelters?lang=en")
    assert "Nearly full" in phone.locator("#sh-sh-school .oc-tag").inner_text()
    phone.set_viewport_size(WALL)
    shot(phone, world, "shelters-en-1920x1080")
    phone.goto("/shelters?lang=zh-CN")
    shot(phone, world, "shelters-1920x1080")
    phone.context.close()


def test_the_street_office_sees_every_communitys_supplies_on_the_wall(world: dict[str, Any]) -> None:
    page = login(world, STREET, WALL, "**/wall")
    page.locator("header nav a[href='/supplies']").click()
    page.wait_for_url("**/supplies")
    assert page.locator(".res-list h2").all_inner_texts() == ["临汾一村", "临汾二村"]
    assert page.locator("tr.supply").count() == 6
    # The street office moves any supply in its street.
    assert page.locator("#move-form select[name=supply] option[value]:not([value=''])").count() == 6
    assert page.locator("#move-form").is_visible() and page.locator("thead").first.is_visible()
    pump = page.locator("tr#s-sup-pump")
    assert pump.locator(".qty").inner_text() == "2" and "正常" in pump.locator(".states").inner_text()
    assert "长期" in page.locator("tr#s-sup-sandbag .expiry").inner_text()
    shot(page, world, "supplies-1920x1080")
    page.context.close()


def test_late_door_knocks_are_recorded_from_the_late_alerts_page(
        tmp_path: Path, mosquitto: Mosquitto, world: dict[str, Any]) -> None:
    # A service of its own whose door knocks are late after one second: door_knocks.late tells the community,
    # whose page of that alert shows the door knocks to record.
    prefix = f"k{uuid.uuid4().hex[:8]}"
    tokens = yaml.safe_load(EXAMPLE_SITE.read_text(encoding="utf-8"))["api_tokens"] + [
        {"token": "committee-yicun-page-token", "recipient": "committee-yicun"}]
    config = site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=None, database="unused", prefix=prefix,
                         extra={"resources": {"door_knock_within_s": 1}, "api_tokens": tokens})
    svc = ServiceProcess(config).start()
    pub = DevicePublisher(mosquitto.url, f"dev-{prefix}")
    try:
        svc.wait_healthy()
        alert = building_1_red(svc, pub, prefix)
        late = svc.wait_for(lambda: next((a for a in svc.api("/alerts", community=YICUN,
                                                               rule="door_knocks.late").json()
                                          if a["device_id"] == f"knocks:{alert['id']}"), None), 15, "the late alert")
        page = login({**world, "svc": svc}, "committee-yicun-page-token", PHONE, "**/wall")
        page.goto(f"/alert/{late['id']}")
        assert text(page, "#knocks .kn-due") == "⚠ 已超时，已通知社区"
        assert page.locator("#knocks .kn-of").get_attribute("href") == f"/alert/{alert['id']}#knocks"
        assert page.locator("#knocks li.knock").count() == 2
        # What the late alert is about: the alert whose door knocks are late, not its internal place.
        assert page.locator("dd.subject a").get_attribute("href") == f"/alert/{alert['id']}#knocks"
        assert "knocks:" not in text(page, "dl.facts")
        shot(page, world, "alert-knocks-late-390x844")
        for vid in RESIDENTS:
            page.locator(f'li.knock[data-vulnerable-id="{vid}"] [data-action=reached]').click()
            page.locator(f'li.knock[data-vulnerable-id="{vid}"][data-status=reached]').wait_for(timeout=10000)
        page.wait_for_url(f"**/alert/{alert['id']}#k-{RESIDENTS[1]}")
        assert text(page, "#knocks .kn-due") == "✓ 已全部记录"
        # Every knock recorded: the late alert ends.
        svc.wait_for(lambda: svc.api(f"/alerts/{late['id']}").json()["status"] == "resolved" or None, 15,
                     "the late alert to end")
        page.context.close()
    finally:
        pub.close()
        svc.stop()
