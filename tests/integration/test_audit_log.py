"""The audit log through the real HTTP API of a real service: every action people take, read back by an
admin, kept across a restart, and refused to everybody else."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from device_sim.receiver import Receiver
from tests.servers import InfluxD, Mosquitto
from tests.service import ADMIN, DevicePublisher, ServiceProcess, recipients_at, site_config, telemetry

pytestmark = pytest.mark.integration
YICUN = "linfen-yicun"
WORKER = "example-token-worker-g1"
STREET = "example-token-street"


def post(svc: ServiceProcess, path: str, token: str, body: dict[str, Any] | None = None) -> Any:
    r = svc.http.post(f"/api/v1{path}", json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code in (200, 201), (path, r.status_code, r.text)
    return r.json()


def raise_alarm(svc: ServiceProcess, pub: DevicePublisher, prefix: str, device: str, seq: int) -> str:
    """A smoke alarm of a real reading; the id of its alert."""
    pub.publish(telemetry(prefix, YICUN, "smoke_detector", device),
                {"ts": int(time.time() * 1000), "seq": seq, "alarm": True})
    pub.wait_acked()
    found: dict[str, Any] = svc.wait_for(
        lambda: next((a for a in svc.api("/alerts", status="firing", rule="smoke.alarm").json()
                      if a["device_id"] == device), None), 20, f"alarm of {device}")
    return str(found["id"])


def audit(svc: ServiceProcess, token: str = ADMIN, **params: Any) -> dict[str, Any]:
    r = svc.api("/audit", token=token, **params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_every_action_is_in_the_audit_log_with_who_when_where_and_the_note(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str,
        receiver: Receiver) -> None:
    config = site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=influx_db,
                         prefix=unique_prefix, extra={"recipients": recipients_at(receiver.base)})
    svc = ServiceProcess(config).start()
    pub = DevicePublisher(mosquitto.url, f"dev-{unique_prefix}")
    try:
        svc.wait_healthy()
        before = time.time()
        assert audit(svc) == {"entries": [], "next_after": None}
        first = raise_alarm(svc, pub, unique_prefix, "sd-b01-0501", 0)
        post(svc, f"/alerts/{first}/ack", WORKER, {"note": "到场查看中"})
        post(svc, f"/alerts/{first}/handover", ADMIN, {"to": "committee-yicun", "note": "请居委会跟进"})
        post(svc, f"/alerts/{first}/resolve", WORKER, {"note": "炒菜油烟", "category": "false_alarm"})
        drill = post(svc, "/silences", STREET, {"community": YICUN, "building": "b01", "duration_s": 3600,
                                               "reason": "消防演练"})
        device = post(svc, "/silences", WORKER, {"community": YICUN, "device_id": "sd-b01-0502",
                                                "duration_s": 600, "reason": "更换电池"})
        r = svc.http.delete(f"/api/v1/silences/{drill['id']}", headers={"Authorization": f"Bearer {ADMIN}"})
        assert r.status_code == 200, r.text
        # A refused action leaves no entry: the alert is resolved already.
        r = svc.http.post(f"/api/v1/alerts/{first}/ack", headers={"Authorization": f"Bearer {ADMIN}"})
        assert r.status_code == 409

        page = audit(svc)
        assert page["next_after"] is None
        got = [(e["action"], e["actor"], e["role"], e["alert_id"], e["silence_id"], e["note"])
               for e in page["entries"]]
        assert got == [
            ("acknowledge", "worker-g1", "grid_worker", first, None, "到场查看中"),
            ("handover", "admin", "admin", first, None, "请居委会跟进"),
            ("resolve", "worker-g1", "grid_worker", first, None, "[false_alarm] 炒菜油烟"),
            ("silence", "street-office", "street_office", None, drill["id"], "消防演练"),
            ("silence", "worker-g1", "grid_worker", None, device["id"], "更换电池"),
            ("unsilence", "admin", "admin", None, drill["id"], None),
        ]
        entries = page["entries"]
        assert all(e["client"] == "127.0.0.1" for e in entries)
        assert [(e["community"], e["grid"]) for e in entries] == [(YICUN, "g1")] * 6
        assert entries[1]["detail"] == {"to": "committee-yicun"}
        assert entries[3]["detail"]["building"] == "b01" and entries[3]["detail"]["ends_at"] == drill["ends_at"]
        assert entries[4]["detail"]["device_id"] == "sd-b01-0502"
        seqs = [e["seq"] for e in entries]
        assert seqs == sorted(seqs) and len(set(seqs)) == 6
        ats = [time.mktime(time.strptime(e["at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone for e in entries]
        assert all(before - 1 <= t <= time.time() + 1 for t in ats), ats
        # The alert's own history tells the same story.
        history = svc.api(f"/alerts/{first}").json()["history"]
        assert [(h["event"], h["actor"]) for h in history if h["actor"] not in (None, "system")] == [
            ("acknowledged", "worker-g1"), ("handed_over", "admin"), ("resolved", "worker-g1")]

        # Filters and pages.
        assert [e["action"] for e in audit(svc, actor="worker-g1")["entries"]] == ["acknowledge", "resolve",
                                                                                   "silence"]
        assert [e["silence_id"] for e in audit(svc, action="silence")["entries"]] == [drill["id"], device["id"]]
        assert audit(svc, since="2999-01-01T00:00:00Z")["entries"] == []
        assert len(audit(svc, since=entries[2]["at"])["entries"]) >= 4
        one = audit(svc, limit=4)
        assert [e["seq"] for e in one["entries"]] == seqs[:4] and one["next_after"] == seqs[3]
        two = audit(svc, limit=4, after=one["next_after"])
        assert [e["seq"] for e in two["entries"]] == seqs[4:] and two["next_after"] is None
        for bad in ({"action": "delete"}, {"limit": 0}, {"since": "yesterday"}, {"since": "2025-01-01T00:00:00"},
                    {"after": -1}):
            r = svc.api("/audit", **bad)
            assert r.status_code == 422 and r.json()["detail"], (bad, r.text)

        # Admins only: everybody else is told so, and a stranger is asked who they are.
        for token in (WORKER, STREET, "example-token-worker-g3"):
            r = svc.api("/audit", token=token)
            assert r.status_code == 403 and "admin" in r.json()["detail"], (token, r.text)
        r = svc.http.get("/api/v1/audit")
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")

        # Durable: the log is in the state database, and survives a restart.
        assert svc.stop() == 0
        svc.start()
        svc.wait_healthy()
        assert audit(svc)["entries"] == entries

        # The pages' actions are logged the same way.
        second = raise_alarm(svc, pub, unique_prefix, "sd-b03-0101", 0)
        page = httpx.Client(base_url=svc.base, timeout=5)
        assert page.post("/login", data={"token": ADMIN}).status_code == 303
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.get("/wall").text)
        assert csrf is not None
        r = page.post(f"/alert/{second}/ack", data={"csrf": csrf.group(1), "note": "值班室已电话联系"},
                      headers={"Accept": "application/json"})
        assert r.status_code == 200, r.text
        page.close()
        last = audit(svc, after=entries[-1]["seq"])["entries"]
        assert [(e["action"], e["actor"], e["role"], e["alert_id"], e["note"], e["client"], e["grid"])
                for e in last] == [("acknowledge", "admin", "admin", second, "值班室已电话联系", "127.0.0.1", "g2")]
    finally:
        pub.close()
        svc.close()
