"""The pages in real headless Chromium against the real broker and `cbrain run`."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.web.sessions import Sessions
from tests.browser import chromium, screenshot
from tests.servers import InfluxD, Mosquitto
from tests.service import DevicePublisher, ServiceProcess, site_config, telemetry

pytestmark = pytest.mark.integration
pytest.importorskip("playwright.sync_api")
YICUN, ERCUN = "linfen-yicun", "linfen-ercun"
WALL, PHONE = {"width": 1920, "height": 1080}, {"width": 390, "height": 844}
LINK_TTL_S = 600


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto,
          influxdb: InfluxD) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("pages")
    prefix = f"p{uuid.uuid4().hex[:8]}"
    db = f"db_{prefix}"
    httpx.post(f"{influxdb.url}/query", data={"q": f'CREATE DATABASE "{db}"'})
    # With the duty roster: an orange alert calls its grid's people (叫应), so the alert page has a ledger.
    # Links last long enough that no test races them; an expired link is one the test signs in the past.
    config = site_config(tmp, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=db, prefix=prefix,
                         roster=True, extra={"http": {"link_ttl_s": LINK_TTL_S,
                                                      "public_url": "http://pages.example"}})
    # The notifications' receivers are not running: deliveries wait and retry, which the pages show.
    svc = ServiceProcess(config).start()
    svc.wait_healthy()
    pub = DevicePublisher(mosquitto.url, f"dev-{prefix}")
    try:
        with chromium() as browser:
            yield {"svc": svc, "pub": pub, "prefix": prefix, "browser": browser, "tmp": tmp}
    finally:
        svc.stop()


def login(world: dict[str, Any], token: str, viewport: dict[str, int]) -> Any:
    context = world["browser"].new_context(viewport=viewport, base_url=world["svc"].base)
    page = context.new_page()
    page.on("pageerror", lambda e: print("page error:", e))
    page.on("console", lambda m: print("console:", m.text))
    page.goto("/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    return page


def shot(page: Any, world: dict[str, Any], name: str, full_page: bool = False) -> Path:
    return screenshot(page, world["tmp"], name, full_page=full_page)


def raise_smoke(world: dict[str, Any], community: str, device: str, seq: int) -> None:
    world["pub"].publish(telemetry(world["prefix"], community, "smoke_detector", device),
                         {"ts": int(time.time() * 1000), "seq": seq, "obscuration_pct_m": 6.0})
    world["pub"].wait_acked()


def test_no_session_no_data_and_cross_site_posts_refused(world: dict[str, Any]) -> None:
    svc = world["svc"]
    for path in ("/wall", "/inbox", "/alert/x", "/device/sd-b01-0501"):
        r = svc.http.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login", path
        assert "sd-b01" not in r.text
    assert svc.http.get("/stream").status_code == 401
    r = svc.http.post("/login", data={"token": "example-token-street"},
                      headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    ok = svc.http.post("/login", data={"token": "example-token-street"}, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/wall"
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("samesite", "SameSite")
    # A forged POST with the victim's cookie but no CSRF token, from another site: refused.
    session = "; ".join(f"{name}={value}" for name, value in ok.cookies.items())
    assert session
    r = svc.http.post("/alert/anything/ack", data={"note": "x"},
                      headers={"Cookie": session, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    bad = svc.http.post("/login", data={"token": "wrong-token-123"})
    assert bad.status_code == 401


def test_wall_sees_new_alert_worker_acknowledges_on_phone_wall_follows(world: dict[str, Any]) -> None:
    wall = login(world, "example-token-street", WALL)
    wall.wait_for_url("**/wall")
    wall.wait_for_function("document.querySelector('#updated').getAttribute('datetime')")
    raise_smoke(world, YICUN, "sd-b01-0501", 1)
    t0 = time.monotonic()
    item = wall.locator("li.alert[data-level=yellow]").first
    item.wait_for(timeout=5000)
    seen_s = time.monotonic() - t0
    assert seen_s < 2.0, seen_s
    assert item.get_attribute("data-status") == "firing"
    alert_id = item.get_attribute("data-alert-id")
    assert alert_id
    shot(wall, world, "wall-1920x1080")

    phone = login(world, "example-token-worker-g1", PHONE)
    phone.wait_for_url("**/inbox")
    card = phone.locator(f'li.alert[data-alert-id="{alert_id}"]')
    card.wait_for(timeout=5000)
    assert "临汾一村 › 1号楼 › 1号楼501室厨房" in card.inner_text()
    shot(phone, world, "inbox-390x844")
    row = phone.locator(f'li.actions-row[data-for="{alert_id}"]')
    row.locator("form[action$='/ack'] input[name=note]").fill("我到现场了")
    row.locator("[data-action=ack]").click()
    t0 = time.monotonic()
    wall.locator(f'li.alert[data-alert-id="{alert_id}"][data-status=acknowledged]').wait_for(timeout=5000)
    assert time.monotonic() - t0 < 2.0
    phone.goto(f"/alert/{alert_id}")
    assert "worker-g1" in phone.locator(".timeline").inner_text()
    assert "我到现场了" in phone.locator(".timeline").inner_text()
    shot(phone, world, "alert-390x844", full_page=True)
    phone.goto("/device/sd-b01-0501")
    shot(phone, world, "device-390x844", full_page=True)
    # Grayscale: the levels are still told apart by their words.
    wall.emulate_media(color_scheme="dark")
    wall.evaluate("document.documentElement.style.filter = 'grayscale(1)'")
    shot(wall, world, "wall-grayscale-1920x1080")
    text = wall.locator(".summary").inner_text()
    for word in ("红色", "橙色", "黄色", "蓝色"):
        assert word in text
    wall.set_viewport_size({"width": 3840, "height": 2160})
    wall.evaluate("document.documentElement.style.filter = ''")
    shot(wall, world, "wall-3840x2160")
    wall.context.close()
    phone.context.close()


def test_a_grid_worker_never_sees_another_grids_alert(world: dict[str, Any]) -> None:
    phone = login(world, "example-token-worker-g1", PHONE)
    phone.wait_for_url("**/inbox")
    raise_smoke(world, ERCUN, "sd-b11-0301", 1)
    svc = world["svc"]
    other = svc.wait_for(lambda: [a for a in svc.api("/alerts", community=ERCUN).json()
                                  if a["device_id"] == "sd-b11-0301"], 10, "the other grid's alert")[0]
    # The stream is ordered: once a heartbeat sent after the alert was committed has arrived, the alert
    # would have arrived before it (if it wrongly had been sent).
    before = phone.locator("#updated").get_attribute("datetime")
    phone.wait_for_function("b => document.querySelector('#updated').getAttribute('datetime') > b", arg=before,
                            timeout=20000)
    assert phone.locator(f'[data-alert-id="{other["id"]}"]').count() == 0
    assert phone.goto(f"/alert/{other['id']}").status == 404
    assert phone.goto("/device/sd-b11-0301").status == 404
    assert "sd-b11" not in phone.content()
    phone.context.close()


def test_stream_cut_shows_banner_then_catches_up(world: dict[str, Any]) -> None:
    wall = login(world, "example-token-street", WALL)
    wall.wait_for_url("**/wall")
    wall.wait_for_function("document.querySelector('#updated').getAttribute('datetime')")
    wall.context.route("**/stream*", lambda route: route.abort())
    wall.evaluate("window.stop()")  # cut the open stream; reconnects are refused
    wall.locator("#banner").wait_for(state="visible", timeout=20000)
    raise_smoke(world, YICUN, "sd-b01-0502", 1)
    svc = world["svc"]
    missed = svc.wait_for(lambda: [a for a in svc.api("/alerts", community=YICUN).json()
                                   if a["device_id"] == "sd-b01-0502"], 10, "the missed alert")[0]
    wall.context.unroute("**/stream*")
    wall.locator(f'li.alert[data-alert-id="{missed["id"]}"]').wait_for(timeout=10000)
    wall.locator("#banner").wait_for(state="hidden", timeout=10000)
    wall.context.close()


def test_an_alert_link_logs_in_for_that_alert_only_and_expires(world: dict[str, Any]) -> None:
    import sqlite3

    svc = world["svc"]
    raise_smoke(world, YICUN, "sd-b03-0101", 1)
    alert = svc.wait_for(lambda: [a for a in svc.api("/alerts", community=YICUN).json()
                                  if a["device_id"] == "sd-b03-0101"], 10, "the alert")[0]
    db = sqlite3.connect(world["tmp"] / "state" / "ingest.db")
    payload = db.execute("SELECT payload FROM outbox WHERE alert_id = ? AND recipient = 'worker-g2' "
                         "AND event = 'fired'", (alert["id"],)).fetchone()[0]
    import orjson
    link = orjson.loads(payload)["link"]
    assert link.startswith("http://pages.example/a/")
    path = link.removeprefix("http://pages.example")
    context = world["browser"].new_context(viewport=PHONE, base_url=svc.base)
    page = context.new_page()
    page.goto(path)
    page.wait_for_url(f"**/alert/{alert['id']}")
    assert page.locator(f'[data-alert-id="{alert["id"]}"] ~ *, [data-action=ack]').count() >= 1
    page.goto("/inbox")
    page.wait_for_url("**/login")  # the link opened that alert, nothing else
    # The same link signed longer ago than http.link_ttl_s (the service's key, the time set by the test):
    # expired, with no race against the wall clock.
    key = (world["tmp"] / "state" / "session.key").read_text(encoding="utf-8").strip()
    for age_s, expired in ((LINK_TTL_S + 5, True), (LINK_TTL_S - 60, False)):
        signed = Sessions(key, LINK_TTL_S, LINK_TTL_S, lambda age=age_s: time.time() - age).link(alert["id"],
                                                                                                  "worker-g2")
        page.goto(f"/a/{signed}")
        page.wait_for_url("**/login?expired=1" if expired else f"**/alert/{alert['id']}")
    context.close()


def test_hand_over_is_recorded_and_a_retried_action_acts_once(world: dict[str, Any]) -> None:
    svc = world["svc"]
    world["pub"].publish(telemetry(world["prefix"], YICUN, "ebike_charger", "ev-b02-p01"),
                         {"ts": int(time.time() * 1000), "seq": 1, "current_a": 12.0, "charging": True})
    world["pub"].wait_acked()
    alert = svc.wait_for(lambda: [a for a in svc.api("/alerts", community=YICUN, status="firing").json()
                                  if a["device_id"] == "ev-b02-p01"] or None, 10, "a firing alert")
    alert_id = alert[0]["id"] if alert else None
    assert alert_id
    auth = {"Authorization": "Bearer example-token-admin", "Idempotency-Key": "k-1"}
    first = svc.http.post(f"/api/v1/alerts/{alert_id}/ack", json={"note": "once"}, headers=auth)
    again = svc.http.post(f"/api/v1/alerts/{alert_id}/ack", json={"note": "once"}, headers=auth)
    assert first.status_code == again.status_code == 200
    fresh = svc.http.post(f"/api/v1/alerts/{alert_id}/ack", json={"note": "twice"},
                          headers={"Authorization": "Bearer example-token-admin"})
    assert fresh.status_code == 409  # without the key it is a second acknowledgement
    r = svc.http.post(f"/api/v1/alerts/{alert_id}/handover", json={"to": "worker-g1", "note": "请处理"},
                      headers={"Authorization": "Bearer example-token-street"})
    assert r.status_code == 200, r.text
    history = svc.api(f"/alerts/{alert_id}").json()["history"]
    assert [h["event"] for h in history].count("acknowledged") == 1
    assert any(h["event"] == "handed_over" and h["actor"] == "street-office" and "worker-g1" in h["note"]
               for h in history)
    r = svc.http.post(f"/api/v1/alerts/{alert_id}/resolve", json={"note": "演练", "category": "test"},
                      headers={"Authorization": "Bearer example-token-street"})
    assert r.status_code == 200
    assert svc.api(f"/alerts/{alert_id}").json()["resolve_note"] == "[test] 演练"


# The CJK ideographs: an English summary names places in the site file's words, nothing else in Chinese.
HAN = re.compile(r"[\u4e00-\u9fff]")


def narrowest_cell(page: Any, selector: str) -> float:
    """The width of the narrowest non-empty cell of a table, in multiples of the page's font size."""
    return float(page.evaluate("""sel => {
        const size = parseFloat(getComputedStyle(document.body).fontSize);
        const cells = [...document.querySelectorAll(sel + ' td')].filter(td => td.offsetParent !== null);
        return Math.min(...cells.map(td => td.getBoundingClientRect().width)) / size;
    }""", selector))


def test_the_alert_page_reads_on_a_grid_workers_phone(world: dict[str, Any]) -> None:
    svc = world["svc"]
    world["pub"].publish(telemetry(world["prefix"], YICUN, "ebike_charger", "ev-b02-p01"),
                         {"ts": int(time.time() * 1000), "seq": 2, "current_a": 5.0, "temperature_c": 66.6,
                          "charging": True})
    world["pub"].wait_acked()
    alert = svc.wait_for(lambda: [a for a in svc.api("/alerts", community=YICUN, rule="ebike.overheat").json()
                                  if a["device_id"] == "ev-b02-p01"], 10, "the overheating alert")[0]
    svc.wait_for(lambda: svc.api(f"/alerts/{alert['id']}/ledger").json()["entries"], 10, "the call of 叫应")
    phone = login(world, "example-token-worker-g1", PHONE)
    phone.wait_for_url("**/inbox")
    phone.goto(f"/alert/{alert['id']}")
    # The reading with its field and unit, the rule by its name, the level in words.
    assert phone.locator(".facts .value").inner_text() == "温度 66.6 °C"
    assert phone.locator(".facts .rule-name").inner_text().startswith("充电过热")
    assert "橙色" in phone.locator(".alert .level").first.inner_text()
    # One tap opens the map app at building 2's coordinates (GCJ-02, from the site file).
    nav = phone.locator("a[data-action=navigate]")
    assert nav.get_attribute("href").startswith(
        "https://uri.amap.com/marker?position=121.45251,31.31768&name=")
    assert "coordinate=gaode" in nav.get_attribute("href")
    # Every event of the deliveries in words: no raw `call`, `fired`.
    events = phone.locator(".sent td.lead").all_inner_texts()
    assert events and not {"call", "fired", "escalated", "reminder"} & set(events), events
    assert "叫应呼叫" in events
    # The ledger on a phone: a card of labelled lines per call, no cell a column of single characters.
    assert phone.locator(".ledger thead").is_hidden()
    assert narrowest_cell(phone, ".ledger") > 10, narrowest_cell(phone, ".ledger")
    assert "张伟" in phone.locator(".ledger td.lead").all_inner_texts()  # worker-g1, the A of grid g1
    shot(phone, world, "alert-ledger-390x844", full_page=True)
    # In English: the summary too, rendered from the alert's fields.
    phone.goto(f"/alert/{alert['id']}?lang=en")
    what = phone.locator(".alert .what").inner_text()
    assert what.startswith("[orange (II)]") and "charging over-temperature" in what, what
    assert "(temperature 66.6 °C)" in what, what
    assert HAN.search(what.replace("临汾一村", "").replace("2号楼", "").replace("第一网格", "")) is None, what
    assert phone.locator(".facts .rule-name").inner_text().startswith("charging over-temperature")
    assert "call (叫应)" in phone.locator(".sent td.lead").all_inner_texts()
    shot(phone, world, "alert-en-390x844", full_page=True)
    phone.goto("/inbox")
    card = phone.locator(f'li.alert[data-alert-id="{alert["id"]}"] .what')
    assert card.inner_text().startswith("[orange (II)]")
    phone.context.close()
    # On the wall the ledger stays a table, every column wide enough to read.
    wall = login(world, "example-token-street", WALL)
    wall.wait_for_url("**/wall")
    wall.goto(f"/alert/{alert['id']}")
    assert wall.locator(".ledger thead").is_visible()
    assert narrowest_cell(wall, ".ledger") > 1.5
    shot(wall, world, "alert-ledger-1920x1080", full_page=True)
    wall.context.close()
