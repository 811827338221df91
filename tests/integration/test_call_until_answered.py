"""叫应 end to end: readings through real Mosquitto to `cbrain run`; calls to real HTTP receivers (webhooks)
and to the Alibaba Cloud stand-in (SMS, voice); answers by the SMS link and by the voice key; the
ledger; and a service killed in the middle that keeps every deadline.

The site is the example site with short deadlines (red: DEADLINE_S) and 叫应 for red alerts only, so
the orange alarms of single detectors stay out of it; the red alert is a building's smoke.multi.
"""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from openpyxl import load_workbook

from device_sim.receiver import Receiver
from tests.aliyun_standin import AliyunStandIn
from tests.servers import InfluxD, Mosquitto
from tests.service import DevicePublisher, ServiceProcess, recipients_at, site_config, telemetry

pytestmark = pytest.mark.integration
YICUN = "linfen-yicun"
KEY_ID, KEY_SECRET = "LTAI-cbrain-test", "the-secret-of-the-test-key"
VOICE_SECRET = "voice-callback-secret-0123456789"
PHONES = {"worker-g1": "13800000001", "worker-g2": "13800000002", "committee-yicun": "13800000003",
          "street-office": "13800000004"}


def iso(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def site(tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, db: str, prefix: str, receiver: Receiver,
         standin: AliyunStandIn, deadline_s: float) -> Path:
    """The example site: every person on duty with a webhook, an SMS and a voice channel (the stand-in)."""
    people = recipients_at(receiver.base)
    aliyun = {"access_key_id": KEY_ID, "access_key_secret": KEY_SECRET, "endpoint": standin.url}
    for r in people:
        phone = PHONES.get(r["id"])
        if phone is not None:
            r["channels"] += [{"type": "sms", "phone": phone, "sign_name": "社区大脑", "template_code": "SMS_4001",
                               **aliyun},
                              {"type": "voice", "phone": phone, "tts_code": "TTS_5001", **aliyun}]
    path = site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=db, prefix=prefix,
                       roster=True, extra={"recipients": people,
                              "alerts": {"answer": {"min_level": "red", "deadline_s": {"red": deadline_s},
                                                    "voice_callback_secret": VOICE_SECRET},
                                         "retry_min_s": 0.2, "retry_max_s": 1.0}})
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["http"]["public_url"] = f"http://127.0.0.1:{raw['http']['port']}"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def standin() -> Any:
    s = AliyunStandIn({KEY_ID: KEY_SECRET}).start()
    yield s
    s.close()


def red_alert(svc: ServiceProcess, mosquitto: Mosquitto, prefix: str) -> dict[str, Any]:
    """Two detectors of building 1 alarm: the building's red smoke.multi."""
    pub = DevicePublisher(mosquitto.url, f"dev-{prefix}")
    now_ms = int(time.time() * 1000)
    for i, device in enumerate(("sd-b01-0501", "sd-b01-0502")):
        pub.publish(telemetry(prefix, YICUN, "smoke_detector", device), {"ts": now_ms + i, "seq": 0, "alarm": True})
    pub.wait_acked()
    pub.close()
    return svc.wait_for(lambda: next((a for a in svc.api("/alerts", rule="smoke.multi").json()), None), 20,
                        "the red alert")


def calls_to(receiver: Receiver, who: str) -> list[dict[str, Any]]:
    """The call notifications a person's webhook got, oldest first."""
    return [r.json for r in sorted(receiver.unique(f"/{who}").values(), key=lambda r: r.at)
            if r.json["event"] == "call"]


def ledger(svc: ServiceProcess, alert_id: str) -> list[dict[str, Any]]:
    r = svc.api(f"/alerts/{alert_id}/ledger")
    assert r.status_code == 200, r.text
    entries: list[dict[str, Any]] = r.json()["entries"]
    return entries


def test_b_is_called_at_the_deadline_and_answers_by_the_sms_link(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str,
        receiver: Receiver, standin: AliyunStandIn) -> None:
    deadline = 3.0
    svc = ServiceProcess(site(tmp_path, mosquitto, influxdb, influx_db, unique_prefix, receiver, standin,
                              deadline)).start()
    try:
        svc.wait_healthy()
        alert = red_alert(svc, mosquitto, unique_prefix)
        # A (worker-g1) is called on every channel at once: webhook, SMS and voice.
        standin.wait_for("SendSms", 1, PhoneNumbers=PHONES["worker-g1"])
        standin.wait_for("SingleCallByTts", 1, CalledNumber=PHONES["worker-g1"])
        svc.wait_for(lambda: calls_to(receiver, "worker-g1"), 10, "A's webhook call")
        # Nobody answers: at the deadline the B person (worker-g2) is called.
        sms_b = standin.wait_for("SendSms", 1, timeout_s=deadline + 10, PhoneNumbers=PHONES["worker-g2"])[0]
        entries = ledger(svc, alert["id"])
        a_rows = [e for e in entries if e["person"] == "worker-g1"]
        b_rows = [e for e in entries if e["person"] == "worker-g2"]
        assert {e["channel"] for e in a_rows} == {"webhook", "sms", "voice"}
        assert {e["status"] for e in a_rows} == {"missed"} and {e["attempt"] for e in b_rows} == {"B"}
        gap = iso(b_rows[0]["called_at"]) - iso(a_rows[0]["called_at"])
        assert deadline - 0.05 <= gap < deadline + 2, gap
        # B answers by the SMS's link: the page (a GET answers nothing), then its button.
        link = sms_b.json_param("TemplateParam")["link"]
        assert re.match(rf"^{re.escape(svc.base)}/r/[\w.-]+$", link), link
        page = svc.http.get(link.removeprefix(svc.base))
        assert page.status_code == 200 and "<form" in page.text
        assert {e["status"] for e in ledger(svc, alert["id"]) if e["person"] == "worker-g2"} == {"waiting"}
        answered = svc.http.post(link.removeprefix(svc.base), data={"note": "我在楼下，马上到"})
        assert answered.status_code == 200, answered.text
        assert "cb_session" in answered.headers.get("set-cookie", "")
        entries = ledger(svc, alert["id"])
        b_rows = [e for e in entries if e["person"] == "worker-g2"]
        assert {(e["status"], e["answered_via"], e["note"]) for e in b_rows} == {
            ("answered", "sms", "我在楼下，马上到")}
        for e in entries:  # each attempt, on each channel, with its times
            assert e["sent_at"] and e["called_at"] and e["due_at"], e
        svc.wait_for(lambda: all(e["delivery"] == "delivered" for e in ledger(svc, alert["id"])), 10,
                     "every call delivered")
        assert all(e["delivered_at"] for e in ledger(svc, alert["id"]))
        detail = svc.api(f"/alerts/{alert['id']}").json()
        assert detail["status"] == "acknowledged" and detail["acknowledged_by"] == "worker-g2"
        events = [h["event"] for h in detail["history"]]
        assert events[:4] == ["fired", "called", "answer_missed", "called"] and "answered" in events
        # Answered: the community's duty is not called, however long one waits.
        time.sleep(deadline + 1)
        assert calls_to(receiver, "committee-yicun") == []
        assert not standin.of("SendSms") or {s.params["PhoneNumbers"] for s in standin.of("SendSms")} == {
            PHONES["worker-g1"], PHONES["worker-g2"]}
        # The ledger as CSV and as a spreadsheet, in words; outside one's scope it is not there.
        rows = list(csv.reader(io.StringIO(svc.api(f"/alerts/{alert['id']}/ledger", format="csv").text
                                           .lstrip("\ufeff"))))
        assert rows[0][:3] == ["网格/社区/街道", "职责", "人员"] and len(rows) == 1 + len(entries)
        assert any("已应答" in r and "短信链接" in r for r in rows[1:])
        x = svc.api(f"/alerts/{alert['id']}/ledger", format="xlsx", lang="en")
        assert x.headers["content-type"].startswith("application/vnd.openxmlformats")
        sheet = load_workbook(io.BytesIO(x.content)).active
        assert sheet is not None and sheet.cell(1, 2).value == "Duty" and sheet.max_row == 1 + len(entries)
        assert svc.api(f"/alerts/{alert['id']}/ledger", token="example-token-worker-g3").status_code == 404
        assert svc.api(f"/alerts/{alert['id']}/ledger", format="pdf").status_code == 422
        # The alert page shows the ledger with its export links.
        page = svc.http.get(f"/alert/{alert['id']}")
        assert page.status_code == 200 and "叫应台账" in page.text and "短信链接" in page.text
        assert f"/alert/{alert['id']}/ledger.xlsx" in page.text
        export = svc.http.get(f"/alert/{alert['id']}/ledger.csv")
        assert export.status_code == 200 and "我在楼下，马上到" in export.text
    finally:
        svc.close()


def test_nobody_answers_the_next_tiers_are_called_and_a_voice_key_answers(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str,
        receiver: Receiver, standin: AliyunStandIn) -> None:
    deadline = 2.0
    svc = ServiceProcess(site(tmp_path, mosquitto, influxdb, influx_db, unique_prefix, receiver, standin,
                              deadline)).start()
    try:
        svc.wait_healthy()
        alert = red_alert(svc, mosquitto, unique_prefix)
        # A, B of the grid, then the community's duty (社区应急负责人), each a deadline after the one before.
        call = standin.wait_for("SingleCallByTts", 1, timeout_s=3 * deadline + 10,
                                CalledNumber=PHONES["committee-yicun"])[0]
        assert [c["call"]["duty"] for c in calls_to(receiver, "committee-yicun")] == ["社区应急负责人"]
        assert call.json_param("TtsParam")["key"] == "1"
        # Then the street's duty (街道值班), the last of the roster; after its deadline the history says so.
        svc.wait_for(lambda: calls_to(receiver, "street-office"), deadline + 10, "the street's duty called")
        svc.wait_for(lambda: "unanswered" in [h["event"] for h in svc.api(f"/alerts/{alert['id']}").json()["history"]],
                     deadline + 10, "nobody answered")
        people = [(e["person"], e["attempt"], e["status"]) for e in ledger(svc, alert["id"])
                  if e["channel"] == "webhook"]
        assert people == [("worker-g1", "A", "missed"), ("worker-g2", "B", "missed"),
                          ("committee-yicun", "A", "missed"), ("street-office", "A", "missed")]
        # A wrong callback secret is not found; a receipt without the key answers nothing.
        bad = AliyunStandIn.push_voice_receipt(f"{svc.base}/api/v1/answer/voice/not-the-secret", call, "1")
        assert bad.status_code == 404
        callback = f"{svc.base}/api/v1/answer/voice/{VOICE_SECRET}"
        nothing = AliyunStandIn.push_voice_receipt(callback, call, "")
        assert nothing.status_code == 200 and nothing.json() == {"code": 0, "msg": "成功"}
        assert svc.api(f"/alerts/{alert['id']}").json()["status"] == "firing"
        # The committee presses 1, late: the ledger keeps both that it missed the deadline and that it answered.
        pressed = AliyunStandIn.push_voice_receipt(callback, call, "1")
        assert pressed.status_code == 200
        rows = [e for e in ledger(svc, alert["id"]) if e["person"] == "committee-yicun"]
        assert {(e["status"], e["answered_via"]) for e in rows} == {("answered_late", "voice")}
        assert all(e["answered_at"] for e in rows)
        assert svc.api(f"/alerts/{alert['id']}").json()["acknowledged_by"] == "committee-yicun"
    finally:
        svc.close()


def test_a_restart_in_the_middle_keeps_every_deadline(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str,
        receiver: Receiver, standin: AliyunStandIn) -> None:
    deadline = 6.0
    svc = ServiceProcess(site(tmp_path, mosquitto, influxdb, influx_db, unique_prefix, receiver, standin,
                              deadline)).start()
    try:
        svc.wait_healthy()
        alert = red_alert(svc, mosquitto, unique_prefix)
        svc.wait_for(lambda: ledger(svc, alert["id"]), 10, "A called")
        svc.kill()  # kill -9 while A's deadline runs
        svc.start()
        svc.wait_healthy()
        standin.wait_for("SendSms", 1, timeout_s=deadline + 10, PhoneNumbers=PHONES["worker-g2"])
        entries = ledger(svc, alert["id"])
        a = next(e for e in entries if e["person"] == "worker-g1")
        b = next(e for e in entries if e["person"] == "worker-g2")
        # B was called at A's deadline as first set, not a deadline after the restart.
        gap = iso(b["called_at"]) - iso(a["called_at"])
        assert deadline - 0.05 <= gap < deadline + 1.5, gap
        svc.kill()  # and again while B's deadline runs
        time.sleep(1)
        svc.start()
        svc.wait_healthy()
        svc.wait_for(lambda: calls_to(receiver, "committee-yicun"), deadline + 10, "the community's duty called")
        entries = ledger(svc, alert["id"])
        c = next(e for e in entries if e["person"] == "committee-yicun")
        gap = iso(c["called_at"]) - iso(b["called_at"])
        assert deadline - 0.05 <= gap < deadline + 1.5, gap
        # Nothing was called twice by the restarts.
        assert [e["person"] for e in entries if e["channel"] == "webhook"] == ["worker-g1", "worker-g2",
                                                                               "committee-yicun"]
    finally:
        svc.close()


def test_on_a_phone_the_sms_link_answers_and_the_alert_page_shows_the_ledger(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str,
        receiver: Receiver, standin: AliyunStandIn) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    svc = ServiceProcess(site(tmp_path, mosquitto, influxdb, influx_db, unique_prefix, receiver, standin,
                              60.0)).start()
    try:
        svc.wait_healthy()
        alert = red_alert(svc, mosquitto, unique_prefix)
        link = standin.wait_for("SendSms", 1, PhoneNumbers=PHONES["worker-g1"])[0].json_param("TemplateParam")["link"]
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"])
            try:
                page = browser.new_context(viewport={"width": 390, "height": 844}, accept_downloads=True).new_page()
                page.goto(link)
                assert "红色" in page.inner_text(".level")  # the level in words, not by colour alone
                page.fill("input[name=note]", "收到，五分钟到")
                page.click("button[type=submit]")
                assert page.inner_text(".answered") == "已应答，谢谢"
                page.click(f"a[href='/alert/{alert['id']}']")
                row = page.locator("table.ledger tr.call-answered").first
                assert "短信链接" in row.inner_text() and "收到，五分钟到" in row.inner_text()
                with page.expect_download() as download:
                    page.click(f"a[href='/alert/{alert['id']}/ledger.xlsx']")
                assert download.value.suggested_filename == f"ledger-{alert['id']}.xlsx"
                sheet = load_workbook(io.BytesIO(Path(download.value.path()).read_bytes())).active
                assert sheet is not None and sheet.cell(1, 2).value == "职责"
                assert any(c.value == "已应答" for c in sheet[2])
            finally:
                browser.close()
        entries = ledger(svc, alert["id"])
        assert {e["status"] for e in entries if e["person"] == "worker-g1"} == {"answered"}
    finally:
        svc.close()


def test_a_stale_roster_is_reported_to_the_community_once(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str,
        receiver: Receiver, standin: AliyunStandIn) -> None:
    path = site(tmp_path, mosquitto, influxdb, influx_db, unique_prefix, receiver, standin, 60.0)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["communities"][1]["roster_verified"] = "2024-01-01"  # 临汾二村: checked long ago
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    svc = ServiceProcess(path).start()
    try:
        svc.wait_healthy()
        stale = svc.wait_for(lambda: svc.api("/alerts", rule="service.roster_stale").json(), 15, "the stale roster")
        assert [(a["community"], a["level"]) for a in stale] == [("linfen-ercun", "blue")]
        assert "值班名册" in stale[0]["summary"]
        svc.wait_for(lambda: receiver.unique("/committee-ercun"), 10, "the community told")
        told = {r.path for r in receiver.unique().values() if r.json["alert"]["rule"] == "service.roster_stale"}
        assert told == {"/committee-ercun"}
        svc.stop()  # a restart reports it no second time
        svc.start()
        svc.wait_healthy()
        time.sleep(1)
        assert len(svc.api("/alerts", rule="service.roster_stale").json()) == 1
        assert len([r for r in receiver.unique().values() if r.json["alert"]["rule"] == "service.roster_stale"]) == 1
    finally:
        svc.close()
