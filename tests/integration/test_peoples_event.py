"""One event's PEOPLES functionality curve (docs/resilience.md, "Recovery"), end to end: a kitchen fire in
building 1 while the community's water gauge goes offline, the alerts left unanswered for a while, then
acknowledged, the gauge back, everything resolved. The API's curve is Q(t) = mean(share of devices online,
share of the event's alerts handled) at its sample times, worked out here from the API's own alert records,
and its normalised area is the exact integral of that step function within the sampling's error. The
community's card on a phone plots it with the same area.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import yaml

from tests.browser import ARGS, CHROMIUM, sign_in
from tests.servers import InfluxD, Mosquitto
from tests.service import EXAMPLE_SITE, DevicePublisher, ServiceProcess, site_config, telemetry

pytestmark = pytest.mark.integration
playwright_sync = pytest.importorskip("playwright.sync_api")
YICUN = "linfen-yicun"
ADMIN = {"Authorization": "Bearer example-token-admin"}
NS = 1_000_000_000


def ns(rfc3339: str | None) -> int | None:
    """An API time in ns (the API writes milliseconds)."""
    return None if rfc3339 is None else round(datetime.fromisoformat(rfc3339).timestamp() * 1000) * 1_000_000


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto, influxdb: InfluxD) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("peoples")
    prefix = f"p{uuid.uuid4().hex[:8]}"
    db = f"db_{prefix}"
    httpx.post(f"{influxdb.url}/query", data={"q": f'CREATE DATABASE "{db}"'})
    service = ServiceProcess(site_config(tmp, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=db,
                                         prefix=prefix)).start()
    service.wait_healthy()
    pub = DevicePublisher(mosquitto.url, f"dev-{prefix}")
    try:
        yield service, pub, prefix
    finally:
        pub.close()
        service.stop()


def alerts(service: ServiceProcess, **params: Any) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = service.api("/alerts", community=YICUN, **params).json()
    return got


def post(service: ServiceProcess, path: str, body: dict[str, Any]) -> None:
    r = service.http.post(f"/api/v1{path}", json=body, headers=ADMIN)
    assert r.status_code == 200, r.text


def q_at(t: int, event: list[dict[str, Any]], offline: list[tuple[int, int]], devices: int) -> float:
    """Q(t) from the records: the share of the event's alerts (started by t) handled by t, and the share of
    the community's devices online at t."""
    started = [a for a in event if ns(a["started_at"]) <= t]
    handled = sum(1 for a in started if any(x is not None and x <= t for x in (ns(a["acknowledged_at"]),
                                                                              ns(a["resolved_at"]))))
    share = handled / len(started) if started else 1.0
    online = 1 - sum(1 for a, b in offline if a <= t < b) / devices
    return (share + online) / 2


def test_an_events_functionality_curve_and_its_area_are_those_of_its_records(svc: Any) -> None:
    service, pub, prefix = svc
    gauge = telemetry(prefix, YICUN, "water_level", "wl-gate-east")
    pub.publish(gauge, {"ts": int(time.time() * 1000), "seq": 0, "level_cm": 2.0})
    now = int(time.time() * 1000)
    for i, device in enumerate(("sd-b01-0501", "sd-b01-0502")):
        pub.publish(telemetry(prefix, YICUN, "smoke_detector", device), {"ts": now + i, "seq": 0, "alarm": True})
    pub.wait_acked()
    serious = service.wait_for(lambda: (lambda xs: xs if len(xs) == 3 else None)(
        [a for a in alerts(service, status="firing") if a["level"] in ("orange", "red")]), 20, "the fire's alerts")
    # The gauge goes offline (its will) while nobody has answered yet.
    time.sleep(0.6)
    pub.publish(gauge.replace("/telemetry", "/status"), b"offline", retain=True)
    service.wait_for(lambda: alerts(service, rule="device.offline", status="firing"), 20, "the gauge offline")
    time.sleep(0.6)
    for a in serious:  # answered at last
        post(service, f"/alerts/{a['id']}/ack", {"note": "到场"})
    time.sleep(0.6)
    pub.publish(gauge.replace("/telemetry", "/status"), b"online", retain=True)
    pub.publish(gauge, {"ts": int(time.time() * 1000), "seq": 1, "level_cm": 2.0})
    service.wait_for(lambda: not alerts(service, rule="device.offline", status="firing"), 20, "the gauge back")
    time.sleep(0.6)
    for a in serious:
        post(service, f"/alerts/{a['id']}/resolve", {"category": "real"})

    card = service.api(f"/communities/{YICUN}/resilience").json()
    peoples = next(i for c in card["categories"] for i in c["indicators"] if i["id"] == "peoples_area")
    assert peoples["count"] == 1, peoples
    event = [service.api(f"/alerts/{a['id']}").json() for a in serious]
    gone = [service.api(f"/alerts/{a['id']}").json() for a in alerts(service, rule="device.offline")]
    offline = [(ns(a["started_at"]), ns(a["resolved_at"])) for a in gone]
    # The community's devices are those the site file registers for it.
    devices = sum(1 for d in yaml.safe_load(EXAMPLE_SITE.read_text(encoding="utf-8"))["devices"]
                  if d["community"] == YICUN)
    assert len(offline) == 1 and devices == 7
    start, end = min(ns(a["started_at"]) for a in event), max(ns(a["resolved_at"]) for a in event)
    # The curve: [seconds since the event's start, Q], Q to 4 decimals.
    curve = [(start + round(sec * NS), q) for sec, q in peoples["curve"]]
    assert peoples["curve"][0][0] == 0 and abs(curve[-1][0] - end) <= 2_000_000
    marks = sorted({x for a in event for x in map(ns, (a["started_at"], a["acknowledged_at"], a["resolved_at"]))
                    if x is not None} | {x for span in offline for x in span})
    for t, q in curve:
        if min(abs(t - m) for m in marks) > 3_000_000:  # (a sample on a record's millisecond may fall either way)
            assert q == pytest.approx(q_at(t, event, offline, devices), abs=6e-5), (t, q)
    # It dipped: alerts unanswered and the gauge offline at once, then back to 1.
    assert min(q for _t, q in curve) < 0.5 and curve[-1][1] == 1.0
    # The area: the exact integral of the step function Q over the event, within the sampling's error.
    points = [start, *[m for m in marks if start < m < end], end]
    exact = sum((b - a) * q_at(a, event, offline, devices) for a, b in itertools.pairwise(points))
    assert peoples["value"] == pytest.approx(exact / (end - start), abs=0.04)

    # The community's card plots it, with the same area (a phone, in the community's hand).
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = sign_in(browser, service.base, "example-token-admin", {"width": 390, "height": 844})
            page.goto(f"/resilience?community={YICUN}")
            assert page.locator("#peoples svg.curve polygon.area").count() == 1
            assert page.locator("#peoples .rs-area").inner_text().strip() == f"归一化面积 {peoples['value']:g}"
        finally:
            browser.close()
