"""The unregistered devices' page (待登记设备) in real headless Chromium against the real broker and
`cbrain run`: a Zigbee2MQTT hub of one community reports an address nobody registered."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.browser import chromium, screenshot, sign_in
from tests.servers import Mosquitto
from tests.service import EXAMPLE_SITE, DevicePublisher, ServiceProcess, site_config

pytestmark = pytest.mark.integration
pytest.importorskip("playwright.sync_api")
WALL, PHONE = {"width": 1920, "height": 1080}, {"width": 375, "height": 812}
YICUN_TOKEN, ERCUN_TOKEN = "committee-yicun-page-token", "committee-ercun-page-token"
ADDRESS, LATER = "b05/0101/smoke", "b05/0102/smoke"
SMOKE = {"smoke": False, "battery": 97, "tamper": False, "linkquality": 120, "voltage": 3000}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("pages-sources")
    prefix = f"u{uuid.uuid4().hex[:8]}"
    base = f"zb-{prefix}"
    tokens = yaml.safe_load(EXAMPLE_SITE.read_text(encoding="utf-8"))["api_tokens"] + [
        {"token": YICUN_TOKEN, "recipient": "committee-yicun"},
        {"token": ERCUN_TOKEN, "recipient": "committee-ercun"}]
    sources = [{"id": "z2m", "type": "zigbee2mqtt", "base_topic": base, "community": "linfen-yicun"}]
    # The readings' store is SQLite (no InfluxDB): nothing of this page reads readings.
    config = site_config(tmp, mqtt_url=mosquitto.url, influx_url=None, database="unused", prefix=prefix,
                         extra={"sources": sources, "api_tokens": tokens})
    svc = ServiceProcess(config).start()
    svc.wait_healthy()
    pub = DevicePublisher(mosquitto.url, f"hub-{prefix}")
    for _ in range(3):
        pub.publish(f"{base}/{ADDRESS}", SMOKE)
    pub.wait_acked()
    heard = svc.wait_for(lambda: [u for u in svc.api("/unregistered").json() if u["address"] == ADDRESS
                                  and u["messages"] == 3], 10, "the unregistered address")[0]
    try:
        with chromium() as browser:
            yield {"svc": svc, "pub": pub, "base": base, "browser": browser, "tmp": tmp, "heard": heard}
    finally:
        svc.stop()


def login(world: dict[str, Any], token: str, viewport: dict[str, int], home: str = "**/wall",
          script: str | None = None) -> Any:
    return sign_in(world["browser"], world["svc"].base, token, viewport, home, init_script=script)


def shot(page: Any, world: dict[str, Any], name: str) -> None:
    screenshot(page, world["tmp"], name)


def test_the_community_finds_the_address_and_copies_its_devices_line(world: dict[str, Any]) -> None:
    line = world["heard"]["devices_line"]
    assert "source: z2m" in line and f'address: "{ADDRESS}"' in line and "building: ?" in line
    page = login(world, YICUN_TOKEN, PHONE)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    # The wall's small link, with the count.
    link = page.locator("#unreg-link")
    assert link.is_visible() and link.inner_text().startswith("1 台待登记设备")
    link.click()
    page.wait_for_url("**/devices/unregistered")
    card = page.locator(f'li.unreg[data-address="{ADDRESS}"]')
    assert card.count() == 1
    assert card.locator(".src-type").inner_text() == "Zigbee2MQTT 网关"
    assert card.locator(".src-id").inner_text() == "z2m"
    assert card.locator(".address").inner_text() == ADDRESS
    assert card.locator(".community").inner_text() == "临汾一村"
    assert card.locator(".messages").inner_text() == "3"
    assert card.locator(".devline code").inner_text() == line
    assert "楼栋 building" in card.locator(".fill").inner_text()
    assert '"battery":97' in card.locator(".sample pre").text_content()
    copy = card.locator("button[data-action=copy]")
    assert copy.inner_text() == "复制"
    copy.click()
    page.wait_for_function("b => b.textContent.startsWith('已复制')", arg=copy.element_handle())
    assert page.evaluate("navigator.clipboard.readText()") == line
    shot(page, world, "unregistered-375x812")
    # Live: an address first heard while the page is open shows up without a reload.
    world["pub"].publish(f"{world['base']}/{LATER}", SMOKE)
    world["pub"].wait_acked()
    page.locator(f'li.unreg[data-address="{LATER}"]').wait_for(timeout=25000)
    assert page.locator("#unreg-count").inner_text() == "2"
    page.goto("/devices/unregistered?lang=en")
    assert card.locator(".src-type").inner_text() == "Zigbee2MQTT hub"
    page.set_viewport_size(WALL)
    shot(page, world, "unregistered-en-1920x1080")
    page.context.close()


def test_without_a_clipboard_the_line_is_selected_for_the_person_to_copy(world: dict[str, Any]) -> None:
    # As over plain http on a phone: no navigator.clipboard, and the old copy command does nothing.
    page = login(world, YICUN_TOKEN, PHONE, script="delete Navigator.prototype.clipboard;"
                                                   "document.execCommand = () => false;")
    page.goto("/devices/unregistered")
    card = page.locator(f'li.unreg[data-address="{ADDRESS}"]')
    card.locator("button[data-action=copy]").click()
    assert page.evaluate("String(window.getSelection())") == world["heard"]["devices_line"]
    assert "Ctrl+C" in card.locator("button[data-action=copy]").inner_text()
    page.context.close()


def test_a_grid_worker_is_refused_and_another_community_sees_none(world: dict[str, Any]) -> None:
    worker = login(world, "example-token-worker-g1", PHONE, home="**/inbox")
    response = worker.goto("/devices/unregistered")
    assert response is not None and response.status == 403
    assert ADDRESS not in worker.content() and worker.locator("li.unreg").count() == 0
    worker.context.close()
    other = login(world, ERCUN_TOKEN, PHONE)
    assert other.locator("#unreg-link").is_hidden()
    response = other.goto("/devices/unregistered")
    assert response is not None and response.status == 200
    assert other.locator("li.unreg").count() == 0 and ADDRESS not in other.content()
    assert "都已登记" in other.locator("#unreg-none").inner_text()
    shot(other, world, "unregistered-empty-375x812")
    other.context.close()
    # The street office sees every community's; its wall's link follows the heartbeat.
    street = login(world, "example-token-street", WALL)
    link = street.locator("#unreg-link")
    before = int(link.inner_text().split(" ")[0])
    world["pub"].publish(f"{world['base']}/b05/0103/smoke", SMOKE)
    world["pub"].wait_acked()
    street.wait_for_function("n => document.querySelector('#unreg-link').textContent.startsWith(n + ' ')",
                             arg=before + 1, timeout=15000)
    street.goto("/devices/unregistered")
    assert street.locator(f'li.unreg[data-address="{ADDRESS}"]').count() == 1
    street.context.close()
