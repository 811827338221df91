"""Every route of the application, found from the application itself, tried against a real service without a
token, with a bad one, and with one whose role or scope lacks the right. A new route is tried as soon as it
exists: it fails here until it is guarded, or listed as public below with the reason."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastapi.routing
import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from app.api import build_app
from app.config import load_settings
from app.service import Service
from device_sim.receiver import Receiver
from tests.servers import InfluxD, Mosquitto
from tests.service import ADMIN, DevicePublisher, ServiceProcess, recipients_at, site_config, telemetry

pytestmark = pytest.mark.integration
YICUN = "linfen-yicun"
G1 = "example-token-worker-g1"   # 张伟, grid g1 of 临汾一村: the alert and the device are theirs
G3 = "example-token-worker-g3"   # 王强, grid g3 of 临汾二村: none of it is theirs
STREET = "example-token-street"

# Routes anybody may call, and why.
PUBLIC = {
    ("GET", "/health"): "a load balancer asks; names no alert, device or person",
    ("GET", "/metrics"): "Prometheus asks; counts only",
    ("GET", "/openapi.json"): "the API's reference",
    ("GET", "/docs"): "the API's reference, as a page",
    ("GET", "/docs/oauth2-redirect"): "part of the reference page",
    ("GET", "/redoc"): "the API's reference, as a page",
    ("MOUNT", "/static"): "stylesheets and scripts of the pages",
    ("GET", "/login"): "the login form",
    ("POST", "/login"): "logging in (a wrong token is refused and counted per address)",
    ("GET", "/a/{signed}"): "an alert link: its signature is the credential",
    ("GET", "/r/{signed}"): "a 叫应 answer link (the SMS's): its signature is the credential",
    ("POST", "/r/{signed}"): "answering by that link: its signature is the credential",
    ("GET", "/wo/{token}"): "a department's work-order page: the signed token in the link is the credential",
    ("POST", "/wo/{token}/{step}"): "a department moving its work order on from that page",
    ("GET", "/api/v1/work-orders/{token}"): "a department's work-order link: the signed token is the credential",
    ("POST", "/api/v1/work-orders/{token}/{step}"): "a department moving its work order on by that link",
    ("POST", "/api/v1/answer/voice/{secret}"): "the voice provider's receipts: the secret in the path is the "
                                                "credential (404 for any other)",
    ("GET", "/ingest/{source_type}/{source_id}"): "a platform's URL check (OneNET): its signature is the "
                                                  "credential (404 for a source not in the site file)",
    ("POST", "/ingest/{source_type}/{source_id}"): "a platform's push (CTWing, OneNET): its token or signature is "
                                                   "the credential (404 for a source not in the site file)",
}

# For each API route: a call by someone whose role or scope lacks the right, and what it must get
# (403 for a right they lack or a filter outside their scope, 404 for a thing of another scope),
# then a call by someone who has it (any answer but 401, 403, 404).
# "scoped" routes answer everybody, with only what lies in their scope: what must not appear is checked.
RIGHTS: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/api/v1/devices"): {"token": G3, "params": {"community": YICUN}, "status": 403, "ok": G1},
    ("GET", "/api/v1/devices/{device_id}/readings"): {"token": G3, "status": 404, "ok": G1},
    ("GET", "/api/v1/communities"): {"token": G3, "scoped": lambda body: YICUN not in {c["id"] for c in body},
                                     "ok": G1},
    ("GET", "/api/v1/communities/{community_id}/resilience"): {"token": G3, "status": 404, "ok": G1},
    ("GET", "/api/v1/alerts"): {"token": G3, "params": {"community": YICUN}, "status": 403, "ok": G1},
    ("GET", "/api/v1/alerts/{alert_id}"): {"token": G3, "status": 404, "ok": G1},
    ("POST", "/api/v1/alerts/{alert_id}/ack"): {"token": G3, "status": 404, "ok": G1},
    ("POST", "/api/v1/alerts/{alert_id}/resolve"): {"token": G3, "json": {"category": "test"}, "status": 404,
                                                    "ok": G1},
    ("POST", "/api/v1/alerts/{alert_id}/handover"): {"token": G3, "json": {"to": "worker-g3"}, "status": 404,
                                                     "ok": ADMIN, "ok_json": {"to": "committee-yicun"}},
    ("POST", "/api/v1/silences"): {"token": G3, "json": {"community": YICUN, "building": "b01", "duration_s": 60,
                                                         "reason": "drill"}, "status": 403, "ok": G1},
    ("GET", "/api/v1/silences"): {"token": G3, "scoped": lambda body: body == [], "ok": G1},
    ("DELETE", "/api/v1/silences/{silence_id}"): {"token": G3, "status": 404, "ok": G1},
    ("GET", "/api/v1/rejections"): {"token": G3, "scoped": lambda body: all("yicun" not in r["topic"]
                                                                             for r in body), "ok": G1},
    ("GET", "/api/v1/dead_letters"): {"token": G1, "status": 403, "ok": STREET},
    ("GET", "/api/v1/unregistered"): {"token": G3, "scoped": lambda body: body == [], "ok": G1},
    ("GET", "/api/v1/events"): {"token": G3, "stream": True, "ok": G1},  # per message: test_event_stream_scope
    ("GET", "/api/v1/audit"): {"token": STREET, "status": 403, "ok": ADMIN},
    ("GET", "/api/v1/alerts/{alert_id}/ledger"): {"token": G3, "status": 404, "ok": G1},
    ("POST", "/api/v1/whistles"): {"token": G3, "json": {"community": YICUN, "grid": "g1", "where": "1号楼",
                                                        "what": "车棚冒烟", "grade": "urgent",
                                                        "departments": ["fire"]}, "status": 403, "ok": G1},
    ("GET", "/api/v1/whistles"): {"token": G3, "scoped": lambda body: all(w["community"] != YICUN for w in body),
                                  "ok": G1},
    ("GET", "/api/v1/whistles/stats"): {"token": G3, "scoped": lambda body: YICUN not in str(body), "ok": G1},
    ("GET", "/api/v1/whistles/{whistle_id}"): {"token": G3, "status": 404, "ok": G1},
    ("POST", "/api/v1/whistles/{whistle_id}/orders/{department}/confirm"): {"token": G3, "json": {"rating": 5},
                                                                           "status": 404, "ok": G1},
    ("GET", "/api/v1/supplies"): {"token": G3, "params": {"community": YICUN}, "status": 403, "ok": G1},
    ("GET", "/api/v1/supplies/ledger"): {"token": G3, "params": {"community": YICUN}, "status": 403, "ok": G1},
    ("POST", "/api/v1/supplies/{supply_id}/movements"): {"token": G3, "json": {"delta": -1, "reason": "used"},
                                                         "status": 404, "ok": G1},
    ("GET", "/api/v1/shelters"): {"token": G3, "scoped": lambda body: all(x["community"] != YICUN for x in body),
                                  "ok": G1},
    ("GET", "/api/v1/shelters/capacity"): {"token": G3, "scoped": lambda body: YICUN not in str(body), "ok": G1},
    ("POST", "/api/v1/shelters/{shelter_id}/occupancy"): {"token": G3, "json": {"count": 5}, "status": 404,
                                                          "ok": STREET},
    # (on the red alert of the building, which has door knocks: `red`)
    ("POST", "/api/v1/alerts/{alert_id}/door-knocks/{vulnerable_id}"): {"token": G3, "json": {"status": "reached"},
                                                                        "status": 404, "ok": G1, "red": True},
    # Drills: a grid worker does not run them; the report of another community's drill does not exist for them.
    ("POST", "/api/v1/drills"): {"token": G3, "json": {"community": "linfen-ercun", "scenario": "fire-drill"},
                                 "status": 403, "ok": STREET,
                                 "ok_json": {"community": "linfen-ercun", "scenario": "fire-drill"}},
    ("GET", "/api/v1/drills"): {"token": G3, "scoped": lambda body: body == [], "ok": G1},
    ("POST", "/api/v1/drills/{drill_id}/end"): {"token": G3, "status": 403, "ok": STREET},
    ("GET", "/api/v1/drills/{drill_id}/report"): {"token": G3, "status": 404, "ok": G1},
}

# Pages: without a session the page sends the browser to the login form (303) and the page's own
# requests answer 401/403; a session of another scope gets the "not found" page.
PAGES: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/"): {"none": 303},
    ("GET", "/wall"): {"none": 303, "scoped": True},
    ("GET", "/inbox"): {"none": 303, "scoped": True},
    ("GET", "/alert/{alert_id}"): {"none": 303, "other": 404},
    ("GET", "/device/{device_id}"): {"none": 303, "other": 404},
    ("GET", "/devices/unregistered"): {"none": 303, "other": 403},  # a grid worker has no list
    ("GET", "/alert/{alert_id}/ledger.{fmt}"): {"none": 303, "other": 404},
    ("GET", "/whistle/new"): {"none": 303, "scoped": True},
    ("POST", "/whistle/new"): {"none": 403},
    ("GET", "/whistles"): {"none": 303, "scoped": True},
    ("GET", "/whistle/{whistle_id}"): {"none": 303, "other": 404},
    ("POST", "/whistle/{whistle_id}/confirm/{department}"): {"none": 403, "other": 404},
    ("POST", "/alert/{alert_id}/{action}"): {"none": 403, "other": 404},
    ("POST", "/logout"): {"none": 403},
    ("GET", "/stream"): {"none": 401, "stream": True},
    ("GET", "/supplies"): {"none": 303, "scoped": True},
    ("POST", "/supplies/move"): {"none": 403},
    ("GET", "/supplies/ledger.{fmt}"): {"none": 303, "scoped": True},
    ("GET", "/shelters"): {"none": 303, "scoped": True},
    ("POST", "/shelters/{shelter_id}/occupancy"): {"none": 403, "other": 404},
    ("POST", "/alert/{alert_id}/door-knocks/{vulnerable_id}"): {"none": 403, "other": 404},
    ("GET", "/resilience"): {"none": 303, "scoped": True},
}


def app_routes(config: Path, tmp: Path) -> set[tuple[str, str]]:
    """(method, path) of every route of the application the service serves, built from the same site file."""
    settings = load_settings(str(config)).model_copy(update={"state_dir": str(tmp / "routes-state")})
    service = Service(settings, http_app=build_app)
    try:
        app = build_app(service.view)
    finally:
        service.statedb.close()
    out = set()
    # FastAPI >= 0.160 keeps included routers unflattened in app.routes; iter_route_contexts flattens them.
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    for ctx in flatten(app.routes) if flatten is not None else app.routes:
        r = getattr(ctx, "original_route", ctx)
        if isinstance(r, Mount):
            out.add(("MOUNT", ctx.path))
        elif isinstance(r, APIRoute | Route):
            out |= {(m, ctx.path) for m in (r.methods or ()) if m != "HEAD"}
        else:
            raise AssertionError(f"a route of a kind this test does not know: {r!r}")
    return out


def fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def addresses() -> Iterator[str]:
    """Loopback addresses to call from, one per bad token: the service limits failures per address."""
    for i in range(2, 250):
        yield f"127.0.0.{i}"


def call(base: str, method: str, url: str, *, token: str | None = None, cookies: dict[str, str] | None = None,
         source: str | None = None, **kw: Any) -> httpx.Response:
    """One request; a stream's answer is read as far as its head and first bytes."""
    transport = httpx.HTTPTransport(local_address=source) if source else None
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    with httpx.Client(base_url=base, transport=transport, timeout=10, cookies=cookies) as client, \
            client.stream(method, url, headers=headers, **kw) as r:
        if r.headers.get("content-type", "").startswith("text/event-stream"):
            r.iter_bytes().__next__()  # connected: enough to know it was let in
            r._content = b""
        else:
            r.read()
        return r


def test_every_route_is_guarded(tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str,
                                unique_prefix: str, receiver: Receiver) -> None:
    config = site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=influx_db,
                         prefix=unique_prefix, extra={"recipients": recipients_at(receiver.base)})
    routes = app_routes(config, tmp_path)
    api = {r for r in routes if r[1].startswith("/api/")} - set(PUBLIC)
    pages = routes - api - set(PUBLIC)
    # Every route is public with a reason, or guarded with its rights stated here.
    assert api - set(RIGHTS) == set(), "API routes without their rights stated in RIGHTS"
    assert pages - set(PAGES) == set(), "pages neither public nor listed in PAGES"
    assert set(RIGHTS) - api == set() and set(PAGES) - pages == set(), "stale entries"
    assert len(api) >= 15 and len(pages) >= 8

    svc = ServiceProcess(config).start()
    pub = DevicePublisher(mosquitto.url, f"dev-{unique_prefix}")
    try:
        svc.wait_healthy()
        # What the service documents is what was found here.
        documented = {(m.upper(), path) for path, ops in svc.http.get("/openapi.json").json()["paths"].items()
                      for m in ops}
        assert documented <= routes, documented - routes
        pub.publish(telemetry(unique_prefix, YICUN, "smoke_detector", "sd-b01-0501"),
                    {"ts": int(time.time() * 1000), "seq": 0, "alarm": True})
        pub.wait_acked()
        alert = svc.wait_for(lambda: next(iter(svc.api("/alerts", status="firing").json()), None), 20, "an alert")
        r = svc.http.post("/api/v1/silences", headers={"Authorization": f"Bearer {G1}"},
                          json={"community": YICUN, "device_id": "sd-b01-0502", "duration_s": 600, "reason": "换电池"})
        assert r.status_code == 201, r.text
        silence_id = r.json()["id"]
        r = svc.http.post("/api/v1/whistles", headers={"Authorization": f"Bearer {G1}"},
                          json={"alert_id": alert["id"], "what": "烟感报警", "grade": "urgent",
                                "departments": ["fire"]})
        assert r.status_code in (200, 201), r.text
        # The building's second detector: a red alert of the building, with its residents' door knocks.
        pub.publish(telemetry(unique_prefix, YICUN, "smoke_detector", "sd-b01-0502"),
                    {"ts": int(time.time() * 1000), "seq": 0, "alarm": True})
        red = svc.wait_for(lambda: next(iter(svc.api("/alerts", status="firing", rule="smoke.multi").json()), None),
                           20, "the building's red alert")
        svc.wait_for(lambda: svc.api(f"/alerts/{red['id']}").json().get("door_knocks"), 20, "its door knocks")
        # A drill of the alerts' community, begun after them (their alerts stay real ones).
        r_drill = svc.http.post("/api/v1/drills", headers={"Authorization": f"Bearer {ADMIN}"},
                                json={"community": YICUN, "scenario": "fire-drill"})
        assert r_drill.status_code == 200, r_drill.text
        values = {"drill_id": r_drill.json()["id"], "alert_id": alert["id"], "device_id": "sd-b01-0501",
                  "silence_id": silence_id, "fmt": "csv",
                  "action": "ack", "signed": "not-a-signed-link", "whistle_id": r.json()["id"],
                  "department": "fire", "supply_id": "sup-ext-b01", "shelter_id": "sh-school",
                  "vulnerable_id": "v-b01-0302", "community_id": YICUN}
        source = addresses()

        for method, path in sorted(api):
            want = RIGHTS[(method, path)]
            url = fill(path, values | ({"alert_id": red["id"]} if want.get("red") else {}))
            r = call(svc.base, method, url)
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert r.headers["WWW-Authenticate"] == "Bearer" and r.json()["detail"], (method, path)
            r = call(svc.base, method, url, token="example-token-guessed", source=next(source))
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert r.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"', (method, path)
            r = call(svc.base, method, url, token=want["token"], params=want.get("params"), json=want.get("json"))
            if "status" in want:
                assert r.status_code == want["status"], (method, path, r.status_code, r.text)
                assert r.json()["detail"], (method, path)
                if want["status"] == 404:
                    # The same answer as for a thing that does not exist: nothing says it does.
                    other = call(svc.base, method, fill(path, dict.fromkeys(values, "nonexistent-0")),
                                 token=want["token"], json=want.get("json"))
                    assert (other.status_code, other.json()) == (r.status_code, r.json()), (method, path)
            elif "scoped" in want:
                assert r.status_code == 200 and want["scoped"](r.json()), (method, path, r.text)
            else:
                assert want.get("stream") and r.status_code == 200, (method, path, r.status_code)

        # Those who have the right are let in (so the refusals above are about rights, not broken routes);
        # in the order of an alert's life: acknowledged, resolved, then handed over (409: resolved).
        for method, path in sorted(api, key=lambda k: (k[1].endswith("handover"), k[0] == "DELETE", k)):
            want = RIGHTS[(method, path)]
            r = call(svc.base, method, fill(path, values | ({"alert_id": red["id"]} if want.get("red") else {})),
                     token=want["ok"],
                     json=want.get("ok_json", want.get("json")) if method == "POST" else None)
            assert r.status_code not in (401, 403, 404, 422), (method, path, r.status_code, r.text)
            assert r.status_code < 500, (method, path, r.status_code, r.text)

        # Pages, without a session and with a forged one.
        for cookies in (None, {"cb_session": "forged.session.value"}):
            for method, path in sorted(pages):
                r = call(svc.base, method, fill(path, values), cookies=cookies)
                want = PAGES[(method, path)]["none"]
                assert r.status_code == want, (method, path, cookies, r.status_code)
                if want == 303:
                    assert r.headers["location"] == "/login", (method, path)

        # A session of another grid: another scope's alert and device are "not found", and the wall and the
        # inbox do not show them.
        login = call(svc.base, "POST", "/login", data={"token": G3})
        assert login.status_code == 303
        session = {"cb_session": login.cookies["cb_session"]}
        wall = call(svc.base, "GET", "/wall", cookies=session)
        csrf = re.search(r'name="csrf" value="([^"]+)"', wall.text)
        assert wall.status_code == 200 and csrf is not None
        for method, path in sorted(pages):
            want, url = PAGES[(method, path)], fill(path, values)
            if "other" in want:
                r = call(svc.base, method, url, cookies=session, data={"csrf": csrf.group(1)})
                assert r.status_code == want["other"], (method, path, r.status_code)
            elif want.get("scoped"):
                r = call(svc.base, method, url, cookies=session)
                assert r.status_code == 200 and alert["id"] not in r.text and "sd-b01-0501" not in r.text, path
            elif want.get("stream"):
                r = call(svc.base, method, url, cookies=session)
                assert r.status_code == 200, path

        # Wrong tokens at the login form count as failed authentications of that address, as on the API.
        address = next(source)
        for _ in range(10):
            r = call(svc.base, "POST", "/login", data={"token": "example-token-guessed"}, source=address)
            assert r.status_code == 401
        r = call(svc.base, "POST", "/login", data={"token": G3}, source=address)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        r = call(svc.base, "GET", "/api/v1/alerts", token=G3, source=address)
        assert r.status_code == 429
        assert call(svc.base, "GET", "/api/v1/alerts", token=G3, source=next(source)).status_code == 200
    finally:
        pub.close()
        svc.close()
