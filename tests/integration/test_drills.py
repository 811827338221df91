"""Drills end to end (docs/drills.md): the real service, Mosquitto, InfluxDB and a webhook receiver for every
person of the example site (its duty roster kept). A drill of 临汾一村 is started; a kitchen fire (two smoke
detectors of building 1: a red smoke.multi) is a drill alert: 【演练】 in its summary, `"drill": true` in every
notification, the street office told and the bureau not. The grid's A person answers the 叫应 call after its
deadline; a whistle is blown from the alert and property management signs after its target; one vulnerable
resident is knocked. The report (JSON, HTML, Excel) has the times the API's own records give, and names the late.
"""

from __future__ import annotations

import io
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook

from device_sim.receiver import Receiver
from tests.service import ADMIN, DevicePublisher, ServiceProcess, recipients_at, site_config, telemetry

pytestmark = pytest.mark.integration
YICUN = "linfen-yicun"
G1 = "example-token-worker-g1"
DEADLINE_S = 1.5  # 叫应: the red alert's calls must be answered within this
SIGN_S = 1.5  # property management must sign within this
DEPARTMENTS = [
    {"id": "fire", "name": "消防救援站", "kind": "fire", "contacts": ["fire-linfen"],
     "targets": {"urgent": {"sign_s": 60, "arrive_s": 120, "done_s": 900}}},
    {"id": "property-yicun", "name": "临汾一村物业", "kind": "property", "contacts": ["property-yicun"],
     "targets": {"urgent": {"sign_s": SIGN_S, "arrive_s": 120, "done_s": 900}}},
]


def iso(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def post(svc: ServiceProcess, path: str, body: Any = None, token: str = ADMIN) -> httpx.Response:
    return svc.http.post(f"/api/v1{path}", json=body, headers={"Authorization": f"Bearer {token}"})


def told(rx: Receiver, who: str) -> list[dict[str, Any]]:
    return [r.json for r in sorted(rx.unique(f"/{who}").values(), key=lambda r: r.at)]


def test_a_drill_runs_end_to_end_and_its_report_names_the_late(
        tmp_path: Path, mosquitto: Any, influxdb: Any, influx_db: str, unique_prefix: str,
        receiver: Receiver) -> None:
    config = site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=influx_db,
                         prefix=unique_prefix, roster=True,
                         extra={"recipients": recipients_at(receiver.base), "departments": DEPARTMENTS,
                                "whistles": {"supervisors": ["street-office"]},
                                "alerts": {"answer": {"min_level": "red", "deadline_s": {"red": DEADLINE_S}},
                                           "retry_min_s": 0.2, "retry_max_s": 1.0}})
    svc = ServiceProcess(config).start()
    try:
        svc.wait_healthy()
        # Only those who run drills start one; a community's own, or any for the street office and admins.
        assert post(svc, "/drills", {"community": YICUN, "scenario": "kitchen-fire"}, G1).status_code == 403
        started = post(svc, "/drills", {"community": YICUN, "scenario": "kitchen-fire"})
        assert started.status_code == 200, started.text
        drill = started.json()
        assert drill["status"] == "running" and drill["bureau"] is False
        assert post(svc, "/drills", {"community": YICUN, "scenario": "again"}).status_code == 409

        pub = DevicePublisher(mosquitto.url, f"dev-{unique_prefix}")
        now_ms = int(time.time() * 1000)
        for i, device in enumerate(("sd-b01-0501", "sd-b01-0502")):
            pub.publish(telemetry(unique_prefix, YICUN, "smoke_detector", device),
                        {"ts": now_ms + i, "seq": 0, "alarm": True})
        pub.wait_acked()
        pub.close()
        alert = svc.wait_for(lambda: next(iter(svc.api("/alerts", rule="smoke.multi").json()), None), 20,
                             "the red alert")
        assert alert["level"] == "red" and alert["summary"].startswith("【演练】"), alert

        # A whistle from the drill alert: the fire station signs and arrives at once, property management late.
        blown = post(svc, "/whistles", {"grade": "urgent", "what": "厨房起火（演练）", "where": "1号楼",
                                        "departments": ["fire", "property-yicun"], "alert_id": alert["id"]}, G1)
        assert blown.status_code == 200, blown.text
        whistle = svc.api(f"/whistles/{blown.json()['id']}").json()
        orders = {o["department"]: o for o in whistle["orders"]}
        for step in ("sign", "arrive", "done"):
            assert svc.http.post(f"/api/v1/work-orders/{orders['fire']['link_token']}/{step}").status_code == 200
        rated = post(svc, f"/whistles/{whistle['id']}/orders/fire/confirm", {"rating": 4}, G1)
        assert rated.status_code == 200, rated.text
        # The grid's A person (张伟) lets the call pass its deadline; the B person is called; then A acknowledges.
        svc.wait_for(lambda: any(n["event"] == "call" for n in told(receiver, "worker-g2")), DEADLINE_S + 10,
                     "the B person called at A's deadline")
        acked = post(svc, f"/alerts/{alert['id']}/ack", {"note": "演练：已到场"}, G1)
        assert acked.status_code == 200, acked.text
        late_by = iso(orders["property-yicun"]["due"]["sign"]) - time.time()
        time.sleep(max(0.0, late_by) + 0.2)
        prop = orders["property-yicun"]["link_token"]
        for step in ("sign", "arrive"):
            assert svc.http.post(f"/api/v1/work-orders/{prop}/{step}").status_code == 200
        # One of the building's two vulnerable residents is reached.
        knocked = post(svc, f"/alerts/{alert['id']}/door-knocks/v-b01-0302", {"status": "reached"}, G1)
        assert knocked.status_code == 200, knocked.text

        ended = post(svc, f"/drills/{drill['id']}/end")
        assert ended.status_code == 200, ended.text
        assert post(svc, f"/drills/{drill['id']}/end").status_code == 409
        report = svc.api(f"/drills/{drill['id']}/report").json()
        assert report == ended.json()
        check_report(svc, report, alert["id"], whistle["id"])
        check_files(svc, drill["id"])
        listed = svc.api("/drills", community=YICUN).json()
        assert [(d["id"], d["status"], d["score"]) for d in listed] == [
            (drill["id"], "ended", report["figures"]["score"])]
        assert svc.api("/drills", token="example-token-worker-g3").json() == []
        assert svc.api(f"/drills/{drill['id']}/report", token="example-token-worker-g3").status_code == 404

        # Who was told: the street office, every notification marked; the bureau nothing at all.
        street = svc.wait_for(lambda: [n for n in told(receiver, "street-office") if n.get("alert", {}).get("id")
                                       == alert["id"]] or None, 10, "the street office told")
        assert all(n["drill"] is True and n["alert"]["summary"].startswith("【演练】") for n in street)
        calls = [n for n in told(receiver, "worker-g1") if n["event"] == "call"]
        assert calls and all(n["drill"] is True for n in calls)
        opened = [n for n in told(receiver, "property-yicun") if n["event"] == "order_opened"]
        assert opened and opened[0]["drill"] is True and opened[0]["work_order"]["summary"].startswith("【演练】")
        time.sleep(0.5)
        assert told(receiver, "bureau") == []
        check_scorecard(svc, alert["id"], whistle["id"])
    finally:
        svc.close()


def check_report(svc: ServiceProcess, report: dict[str, Any], alert_id: str, whistle_id: str) -> None:
    """The report's times are the API's own records'."""
    detail = svc.api(f"/alerts/{alert_id}").json()
    history = detail["history"]
    fired = next(h["at"] for h in history if h["event"] == "fired")
    acked = next(h for h in history if h["event"] == "acknowledged")
    a = next(x for x in report["alerts"] if x["id"] == alert_id)
    assert (a["fired_at"], a["first_ack_at"], a["first_ack_by"]) == (fired, acked["at"], "worker-g1")
    assert a["time_to_first_ack_s"] == pytest.approx(iso(acked["at"]) - iso(fired), abs=0.002)
    assert a["summary"].startswith("【演练】")
    ledger = {(e["person"], e["attempt"]): e for e in svc.api(f"/alerts/{alert_id}/ledger").json()["entries"]}
    calls = {(c["person"], c["attempt"]): c for c in report["calls"] if c["alert_id"] == alert_id}
    assert set(calls) == set(ledger) == {("worker-g1", "A"), ("worker-g2", "B")}
    for key, c in calls.items():
        e = ledger[key]
        assert (c["called_at"], c["due_at"], c["answered_at"], c["status"]) == (
            e["called_at"], e["due_at"], e["answered_at"], e["status"])
        assert c["answer_s"] == pytest.approx(iso(e["answered_at"]) - iso(e["called_at"]), abs=0.002)
        assert c["on_time"] is (iso(e["answered_at"]) <= iso(e["due_at"]))
    assert calls[("worker-g1", "A")]["on_time"] is False and calls[("worker-g2", "B")]["on_time"] is True
    assert all(c["within_5min"] for c in calls.values())
    orders = {o["department"]: o for o in svc.api(f"/whistles/{whistle_id}").json()["orders"]}
    steps = {(o["department"], o["step"]): o for o in report["orders"]}
    for (dept, step), o in steps.items():
        done = orders[dept]["signed_at" if step == "sign" else "arrived_at"]
        assert (o["due_at"], o["done_at"]) == (orders[dept]["due"][step], done)
        assert o["on_time"] is (iso(done) <= iso(o["due_at"]))
    assert steps[("property-yicun", "sign")]["on_time"] is False and steps[("fire", "sign")]["on_time"] is True
    late_sign = iso(orders["property-yicun"]["signed_at"]) - iso(orders["property-yicun"]["due"]["sign"])
    late_call = iso(ledger[("worker-g1", "A")]["answered_at"]) - iso(ledger[("worker-g1", "A")]["due_at"])
    late = {(x["who"], x["what"]): x["late_s"] for x in report["late"]}
    assert set(late) == {("worker-g1", "call"), ("property-yicun", "sign")}, report["late"]
    assert late[("property-yicun", "sign")] == pytest.approx(late_sign, abs=0.002)
    assert late[("worker-g1", "call")] == pytest.approx(late_call, abs=0.002)
    knocks = {k["vulnerable_id"]: k for k in report["door_knocks"]}
    assert set(knocks) == {"v-b01-0302", "v-b01-0601"} and knocks["v-b01-0302"]["on_time"] is True
    assert knocks["v-b01-0601"]["done_at"] is None and knocks["v-b01-0601"]["on_time"] is None  # not yet due
    f = report["figures"]
    assert (f["calls"], f["calls_on_time"], f["calls_answered_within_5min"]) == (2, 1, 2)
    assert (f["order_steps"], f["order_steps_on_time"], f["door_knocks"], f["door_knocks_done"]) == (4, 3, 2, 1)
    assert f["score"] == pytest.approx((1 + 3 + 1) / (2 + 4 + 1), abs=1e-4)
    assert report["drill"]["score"] == f["score"] and report["drill"]["ended_at"]


def check_files(svc: ServiceProcess, drill_id: str) -> None:
    """The page and the workbook: the late by name, the measured times in rows."""
    page = svc.api(f"/drills/{drill_id}/report", format="html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "演练报告" in page.text and "张伟 (worker-g1)" in page.text and "临汾一村物业" in page.text
    english = svc.api(f"/drills/{drill_id}/report", format="html", lang="en").text
    assert "Drill report" in english and "answer the call" in english
    x = svc.api(f"/drills/{drill_id}/report", format="xlsx")
    assert x.headers["content-type"].startswith("application/vnd.openxmlformats")
    book = load_workbook(io.BytesIO(x.content))
    assert book.sheetnames == ["指标", "迟到", "演练告警", "叫应", "吹哨报到", "上门确认"]
    late = [[c.value for c in row] for row in book["迟到"].iter_rows(min_row=2)]
    assert {r[0] for r in late} == {"张伟 (worker-g1)", "临汾一村物业 (property-yicun)"}
    assert all(isinstance(r[2], float) and r[2] > 0 for r in late)
    calls = [[c.value for c in row] for row in book["叫应"].iter_rows(min_row=2)]
    assert len(calls) == 2 and {r[6] for r in calls} == {"是", "否"}
    assert book["吹哨报到"].max_row == 1 + 4 and book["上门确认"].max_row == 1 + 2


def check_scorecard(svc: ServiceProcess, alert_id: str, whistle_id: str) -> None:
    """The community's scorecard counts the drill, and its 叫应 and departments' figures are those of the
    same records (docs/resilience.md)."""
    card = svc.api(f"/communities/{YICUN}/resilience").json()
    ind = {i["id"]: i for c in card["categories"] for i in c["indicators"]}
    assert ind["drills_12m"]["value"] == 1
    ledger = svc.api(f"/alerts/{alert_id}/ledger").json()["entries"]
    within = [iso(e["answered_at"]) - iso(e["called_at"]) <= 300 for e in ledger]
    assert ind["answered_5min"]["value"] == pytest.approx(100 * sum(within) / len(within))
    orders = svc.api(f"/whistles/{whistle_id}").json()["orders"]
    signs = sorted(iso(o["signed_at"]) - iso(o["opened_at"]) for o in orders)
    assert ind["sign_median_s"]["value"] == pytest.approx(sum(signs) / len(signs), abs=0.002)  # (two: their mean)
    on_time = [iso(o["signed_at"]) <= iso(o["due"]["sign"]) for o in orders]
    assert ind["signed_in_time"]["value"] == pytest.approx(100 * sum(on_time) / len(on_time)) == 50
    assert ind["rating_mean"]["value"] == pytest.approx(4.0)
