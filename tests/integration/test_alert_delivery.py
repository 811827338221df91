"""Delivery of alert notifications under trouble, end to end: real Mosquitto, InfluxDB, `cbrain run`, and real
HTTP receivers that fail, hang, throttle, refuse, or are not there when the service dies; the live SSE stream;
escalation on the service clock."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from device_sim.receiver import Answer, Receiver
from device_sim.receiver import signed_by as verify
from tests.servers import InfluxD, Mosquitto
from tests.service import EXAMPLE_SITE, DevicePublisher, ServiceProcess, recipients_at, site_config, telemetry

pytestmark = pytest.mark.integration
YICUN, ERCUN = "linfen-yicun", "linfen-ercun"
SECRETS = {r["id"]: r["channels"][0]["secret"]
           for r in yaml.safe_load(EXAMPLE_SITE.read_text(encoding="utf-8"))["recipients"]}
ORANGE_G1 = {"worker-g1", "committee-yicun", "street-office"}
EVERYONE_G1 = ORANGE_G1 | {"bureau"}




class Site:
    """One running service with a device publisher, for one test."""

    def __init__(self, tmp: Path, mosquitto: Mosquitto, influxdb: InfluxD, db: str, prefix: str,
                 recipients: list[dict[str, Any]], alerts: dict[str, Any] | None = None) -> None:
        extra: dict[str, Any] = {"recipients": recipients}
        if alerts:
            extra["alerts"] = alerts
        self.prefix = prefix
        self.config = site_config(tmp, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=db, prefix=prefix,
                                  extra=extra)
        self.svc = ServiceProcess(self.config).start()
        self.svc.wait_healthy()
        self.pub = DevicePublisher(mosquitto.url, f"dev-{prefix}")
        self.seq: Counter[str] = Counter()

    def send(self, community: str, device_type: str, device_id: str, fields: dict[str, Any]) -> None:
        seq = self.seq[device_id]
        self.seq[device_id] += 1
        self.pub.publish(telemetry(self.prefix, community, device_type, device_id),
                         {"ts": int(time.time() * 1000), "seq": seq, **fields})
        self.pub.wait_acked()

    def smoke_alarm(self, device: str = "sd-b01-0501", community: str = YICUN) -> None:
        """smoke.alarm, orange."""
        self.send(community, "smoke_detector", device, {"alarm": True})

    def overcurrent(self) -> None:
        """ebike.overcurrent, orange, in building 2 (grid g1)."""
        self.send(YICUN, "ebike_charger", "ev-b02-p01", {"current_a": 15.0})

    def alert(self, rule: str, timeout: float = 15) -> dict[str, Any]:
        """The alert of a rule, once it exists."""
        def find() -> dict[str, Any] | None:
            return next((a for a in self.svc.api("/alerts").json() if a["rule"] == rule), None)
        return self.svc.wait_for(find, timeout, f"an alert of {rule}")

    def detail(self, alert_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.svc.api(f"/alerts/{alert_id}").json()
        return result

    def act(self, alert_id: str, action: str, token: str = "example-token-admin") -> httpx.Response:
        return self.svc.http.post(f"/api/v1/alerts/{alert_id}/{action}", headers={"Authorization": f"Bearer {token}"})

    def metric_sum(self, name: str) -> float:
        """A metric summed over its labels."""
        return sum(v for k, v in self.svc.metrics().items() if k == name or k.startswith(name + "{"))

    def close(self) -> None:
        self.pub.close()
        self.svc.close()


@pytest.fixture
def make_site(tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str,
              unique_prefix: str) -> Iterator[Any]:
    made: list[Site] = []

    def make(recipients: list[dict[str, Any]], alerts: dict[str, Any] | None = None) -> Site:
        site = Site(tmp_path, mosquitto, influxdb, influx_db, unique_prefix, recipients, alerts)
        made.append(site)
        return site

    yield make
    for s in made:
        s.close()


def told(receiver: Receiver) -> Counter[tuple[str, str, str]]:
    """(recipient, event, rule) of every unique notification delivered."""
    return Counter((r.json["recipient"], r.json["event"], r.json["alert"]["rule"])
                   for r in receiver.unique().values())


def wait_told(site: Site, receiver: Receiver, n: int, timeout: float = 20) -> None:
    site.svc.wait_for(lambda: len(receiver.unique()) >= n, timeout, f"{n} notifications delivered")


def check_delivery(receiver: Receiver, secrets: dict[str, str]) -> None:
    """Every delivered request is signed and carries the notification its headers name."""
    for r in receiver.delivered():
        body = r.json
        assert verify(secrets[r.path.strip("/")], r), f"signature of {r.path}"
        assert body["event_id"] == r.headers["X-CB-Event-Id"]


# ---- a receiver that fails in every way a retry can help with -------------------------------------------------


def test_retries_through_errors_a_hang_and_throttling_deliver_every_notification(make_site: Any,
                                                                                  receiver: Receiver) -> None:
    receiver.script["/worker-g1"] = [
        Answer(500),
        Answer(200, delay_s=2.5),  # answers long after the sender gave up: the receiver got it, the sender can't know
        Answer(429, headers={"Retry-After": "1"}),
        Answer(200),
    ]
    site = make_site(recipients_at(receiver.base),
                     {"webhook_timeout_s": 1, "retry_min_s": 0.2, "retry_max_s": 2})
    site.smoke_alarm()
    wait_told(site, receiver, 3)
    alarm = site.alert("smoke.alarm")
    assert site.act(alarm["id"], "ack").status_code == 200
    wait_told(site, receiver, 6)
    assert told(receiver) == Counter({(who, ev, "smoke.alarm"): 1 for who in ORANGE_G1
                                      for ev in ("fired", "acknowledged")})
    check_delivery(receiver, SECRETS)

    # The outbox: everything delivered; worker-g1's first notification took four attempts.
    site.svc.wait_for(lambda: all(n["status"] == "delivered" for n in site.detail(alarm["id"])["notifications"]),
                      10, "the outbox to record every delivery")
    sent = site.detail(alarm["id"])["notifications"]
    assert len(sent) == 6
    attempts = {(n["recipient"], n["event"]): n["attempts"] for n in sent}
    assert attempts[("worker-g1", "fired")] == 4
    assert all(v == 1 for k, v in attempts.items() if k != ("worker-g1", "fired")), attempts
    assert {(n["recipient"], n["event"]): n["last_error"] for n in sent}[("worker-g1", "fired")] == "HTTP 429"
    # Each notification arrived at least once; after deduplication by event id, once.
    assert set(receiver.unique()) == {n["event_id"] for n in sent}
    site.svc.wait_for(lambda: len(receiver.requests) >= 9, 10, "the hung request to be answered")
    first = next(n["event_id"] for n in sent if (n["recipient"], n["event"]) == ("worker-g1", "fired"))
    tries = [r for r in receiver.requests if r.headers["X-CB-Event-Id"] == first]
    assert sorted(r.answered for r in tries) == [200, 200, 429, 500]
    assert len([r for r in receiver.delivered() if r.headers["X-CB-Event-Id"] == first]) == 2  # a duplicate
    assert len({r.body for r in tries}) == 1  # a retry sends the same notification
    # Retry-After was honoured.
    throttled = next(r.at for r in tries if r.answered == 429)
    assert min(r.at for r in tries if r.at > throttled) - throttled >= 0.9

    m = site.svc.metrics()
    assert site.metric_sum("cb_notifications_retries_total") >= 3
    assert site.metric_sum("cb_notifications_delivered_total") == 6
    assert m.get("cb_notifications_pending") == 0
    assert m.get("cb_notifications_undeliverable_total", 0) == 0
    assert site.metric_sum("cb_notifications_failed_total") == 0


# ---- a refusal falls back to the recipient's next channel -----------------------------------------------------


def with_backup(receiver: Receiver) -> list[dict[str, Any]]:
    recipients = recipients_at(receiver.base)
    worker = next(r for r in recipients if r["id"] == "worker-g1")
    worker["channels"].append({"type": "webhook", "url": f"{receiver.base}/worker-g1-backup", "secret": "backup-s3"})
    return recipients


def test_a_refusal_is_recorded_and_the_next_channel_delivers(make_site: Any, receiver: Receiver) -> None:
    receiver.script["/worker-g1"] = [Answer(410)]
    site = make_site(with_backup(receiver))
    site.smoke_alarm()
    wait_told(site, receiver, 3)
    check_delivery(receiver, SECRETS | {"worker-g1-backup": "backup-s3"})
    refused = [r for r in receiver.requests if r.path == "/worker-g1"]
    assert [r.answered for r in refused] == [410]  # a refusal is not retried
    backup = receiver.delivered("/worker-g1-backup")
    assert len(backup) == 1
    assert backup[0].json["recipient"] == "worker-g1" and backup[0].body == refused[0].body
    assert backup[0].headers["X-CB-Event-Id"] == refused[0].headers["X-CB-Event-Id"]

    alarm = site.alert("smoke.alarm")
    site.svc.wait_for(lambda: all(n["status"] == "delivered" for n in site.detail(alarm["id"])["notifications"]),
                      10, "the outbox to record every delivery")
    row = next(n for n in site.detail(alarm["id"])["notifications"] if n["recipient"] == "worker-g1")
    assert (row["channel"], row["status"], row["attempts"]) == (1, "delivered", 1)
    assert row["last_error"] == "HTTP 410"  # the first channel's refusal stays on the record
    assert site.metric_sum("cb_notifications_failed_total") == 1
    assert site.metric_sum("cb_notifications_delivered_total") == 3
    assert site.svc.metric("cb_notifications_undeliverable_total") == 0


def test_after_giving_up_on_a_channel_the_next_one_gets_its_own_retries(make_site: Any, receiver: Receiver) -> None:
    receiver.script["/worker-g1"] = [Answer(503)] * 100
    receiver.script["/worker-g1-backup"] = [Answer(503), Answer(503)]
    site = make_site(with_backup(receiver), {"give_up_s": 1, "retry_min_s": 0.1, "retry_max_s": 0.3})
    site.smoke_alarm()
    wait_told(site, receiver, 3)
    backup = receiver.delivered("/worker-g1-backup")
    assert len(backup) == 1 and backup[0].json["recipient"] == "worker-g1"
    assert len([r for r in receiver.requests if r.path == "/worker-g1-backup"]) == 3
    assert site.metric_sum("cb_notifications_failed_total") == 1
    assert site.svc.metric("cb_notifications_undeliverable_total") == 0


# ---- a crash between the alert and its delivery ---------------------------------------------------------------


def test_notifications_waiting_for_delivery_survive_kill_9_and_the_alert_is_not_made_twice(
        make_site: Any, receiver: Receiver) -> None:
    for who in ORANGE_G1:
        receiver.script[f"/{who}"] = [Answer(500, delay_s=6)]  # hang: the service dies before anything arrives
    site = make_site(recipients_at(receiver.base))
    site.smoke_alarm()
    alarm = site.alert("smoke.alarm")
    waiting = site.detail(alarm["id"])["notifications"]
    assert {(n["recipient"], n["status"]) for n in waiting} == {(who, "pending") for who in ORANGE_G1}
    site.svc.wait_for(lambda: all(not receiver.script[f"/{w}"] for w in ORANGE_G1), 10, "delivery to start")
    site.svc.kill()
    assert receiver.delivered() == []

    site.svc.start()  # the receiver answers 200 now
    site.svc.wait_healthy()
    wait_told(site, receiver, 3)
    assert {r.json["event_id"] for r in receiver.unique().values()} == {n["event_id"] for n in waiting}
    assert told(receiver) == Counter({(who, "fired", "smoke.alarm"): 1 for who in ORANGE_G1})
    check_delivery(receiver, SECRETS)

    # The same episode goes on after the restart: one alert, nobody told again.
    site.smoke_alarm()
    site.svc.wait_metric("cb_readings_stored_total", 1)
    time.sleep(1)
    alerts = site.svc.api("/alerts").json()
    assert [(a["id"], a["rule"], a["status"]) for a in alerts] == [(alarm["id"], "smoke.alarm", "firing")]
    assert len(receiver.unique()) == 3
    sent = site.detail(alarm["id"])["notifications"]
    assert [n["status"] for n in sent] == ["delivered"] * 3
    assert [h["event"] for h in site.detail(alarm["id"])["history"]] == ["fired"]

    # Who was told survives the restart too: the acknowledgement reaches exactly those three.
    acked = site.svc.http.post(f"/api/v1/alerts/{alarm['id']}/ack", json={"note": "到场处理"},
                               headers={"Authorization": "Bearer example-token-admin"})
    assert acked.status_code == 200, acked.text
    wait_told(site, receiver, 6)
    assert told(receiver) == Counter({(who, event, "smoke.alarm"): 1 for who in ORANGE_G1
                                      for event in ("fired", "acknowledged")})


# ---- the live stream ------------------------------------------------------------------------------------------


class Stream:
    """One client of GET /api/v1/events: the notifications it receives."""

    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base, token
        self.got: list[dict[str, Any]] = []
        self.ids: list[str] = []
        self.connected = asyncio.Event()

    async def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"}
        async with httpx.AsyncClient(base_url=self.base, timeout=httpx.Timeout(30, connect=5)) as client, \
                client.stream("GET", "/api/v1/events", headers=headers) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            event = None
            async for line in r.aiter_lines():
                if line.startswith(":"):
                    self.connected.set()
                elif line.startswith("id: "):
                    self.ids.append(line[4:])
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    assert event == "notification"
                    self.got.append(orjson.loads(line[6:]))


async def until(check: Any, within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def test_the_event_stream_carries_committed_notifications_within_the_callers_scope(
        make_site: Any, receiver: Receiver) -> None:
    site = make_site(recipients_at(receiver.base))

    async def scenario() -> None:
        admin = Stream(site.svc.base, "example-token-admin")
        g1 = Stream(site.svc.base, "example-token-worker-g1")
        g3 = Stream(site.svc.base, "example-token-worker-g3")
        tasks = [asyncio.create_task(s.run()) for s in (admin, g1, g3)]
        try:
            await asyncio.wait_for(asyncio.gather(*(s.connected.wait() for s in (admin, g1, g3))), 10)
            await asyncio.to_thread(site.smoke_alarm)
            await until(lambda: len(admin.got) >= 3 and len(receiver.unique()) >= 3, 15, "3 notifications")
            by_id = {r.headers["X-CB-Event-Id"]: r.json for r in receiver.unique().values()}
            assert {n["event_id"]: n for n in admin.got} == by_id  # the same objects as the webhooks carry
            assert admin.ids == [n["event_id"] for n in admin.got]
            assert {(n["recipient"], n["event"]) for n in admin.got} == {(w, "fired") for w in ORANGE_G1}
            assert [(n["recipient"], n["event"]) for n in g1.got] == [("worker-g1", "fired")]

            alarm = admin.got[0]["alert"]["id"]
            assert (await asyncio.to_thread(site.act, alarm, "ack", "example-token-worker-g1")).status_code == 200
            await until(lambda: len(admin.got) >= 6 and len(g1.got) >= 2, 10, "the acknowledgements")
            assert sorted(n["event"] for n in g1.got) == ["acknowledged", "fired"]
            await asyncio.sleep(0.5)
            assert g3.got == []  # another grid's worker hears nothing of g1
            assert len(admin.got) == 6

            # ... but hears of its own grid.
            await asyncio.to_thread(site.smoke_alarm, "sd-b11-0301", ERCUN)
            await until(lambda: len(g3.got) >= 1 and len(admin.got) >= 9, 10, "the g3 alert")
            assert [(n["recipient"], n["event"], n["alert"]["grid"]) for n in g3.got] == [("worker-g3", "fired",
                                                                                           "g3")]
            assert len(g1.got) == 2
            for n in admin.got + g1.got + g3.got:
                # (a fire alert of a building tells the people on site what is on hand: docs/resources.md)
                on_site = n["recipient"] in ("worker-g1", "worker-g3", "committee-yicun", "committee-ercun")
                on_hand = {"on_hand"} if on_site and n["alert"]["status"] != "resolved" else set()
                assert set(n) == {"event_id", "event", "alert", "recipient"} | on_hand, n
            assert not any(t.done() for t in tasks), "a stream ended early"
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(scenario())
    started = time.monotonic()
    assert site.svc.stop() == 0
    assert time.monotonic() - started < 10


def test_the_service_stops_on_sigterm_while_a_client_follows_the_event_stream(make_site: Any,
                                                                              receiver: Receiver) -> None:
    site = make_site(recipients_at(receiver.base))
    lines: list[str] = []

    def follow() -> None:
        with contextlib.suppress(httpx.HTTPError), httpx.stream(
                "GET", f"{site.svc.base}/api/v1/events", headers={"Authorization": "Bearer example-token-admin"},
                timeout=30) as r:
            lines.extend(r.iter_lines())

    threading.Thread(target=follow, daemon=True).start()
    site.svc.wait_for(lambda: ": connected" in lines, 10, "the stream")
    assert site.svc.proc is not None
    site.svc.proc.send_signal(signal.SIGTERM)
    try:
        assert site.svc.proc.wait(8) == 0
    except subprocess.TimeoutExpired:
        site.svc.kill()
        raise AssertionError("the service did not stop within 8 s of SIGTERM") from None


# ---- escalation on the service clock --------------------------------------------------------------------------


def test_an_unacknowledged_orange_alert_escalates_to_the_bureau_an_acknowledged_one_does_not(
        make_site: Any, receiver: Receiver) -> None:
    site = make_site(recipients_at(receiver.base),
                     {"ack_timeout_s": {"blue": 1, "yellow": 2, "orange": 2, "red": 2}})
    # The charger's alert is acknowledged at once.
    site.overcurrent()
    charger = site.alert("ebike.overcurrent", timeout=5)
    r = site.act(charger["id"], "ack", "example-token-worker-g1")
    assert r.status_code == 200 and r.json()["status"] == "acknowledged"

    # The smoke alarm is not.
    site.smoke_alarm()
    smoke = site.alert("smoke.alarm")
    wait_told(site, receiver, 3 + 3 + 3)  # charger fired + acknowledged, smoke fired

    def escalations() -> list[Any]:
        return [r for r in receiver.unique().values() if r.json["event"] == "escalated"]

    site.svc.wait_for(lambda: {r.json["recipient"] for r in escalations()} == EVERYONE_G1, 6, "an escalation")
    fired_at = min(r.at for r in receiver.unique().values()
                   if r.json["event"] == "fired" and r.json["alert"]["rule"] == "smoke.alarm")
    first = escalations()
    assert all(r.json["alert"]["id"] == smoke["id"] and r.json["alert"]["level"] == "orange" for r in first)
    bureau_at = next(r.at for r in first if r.json["recipient"] == "bureau")
    assert 1.5 <= bureau_at - fired_at <= 3.5, bureau_at - fired_at
    # Still not acknowledged: re-sent at the top tier one deadline later.
    site.svc.wait_for(lambda: len(escalations()) >= 8, 6, "a second escalation")
    assert Counter(r.json["recipient"] for r in escalations()) == Counter({w: 2 for w in EVERYONE_G1})
    detail = site.detail(smoke["id"])
    assert detail["tier"] == "bureau"
    assert [h["event"] for h in detail["history"]] == ["fired", "escalated", "escalated"]

    # The acknowledged charger never escalated, though its deadline passed long ago.
    assert not [r for r in escalations() if r.json["alert"]["rule"] == "ebike.overcurrent"]
    assert [h["event"] for h in site.detail(charger["id"])["history"]] == ["fired", "acknowledged"]
    assert site.detail(charger["id"])["tier"] == "street_office"

    # Resolving stops the escalations.
    assert site.act(smoke["id"], "resolve").status_code == 200
    site.svc.wait_for(lambda: sum(r.json["event"] == "resolved" for r in receiver.unique().values()) == 4, 10,
                      "the resolution")
    count = len(escalations())
    time.sleep(2.5)
    assert len(escalations()) == count
    assert site.svc.metric('cb_alert_events_total{level="orange",event="escalated"}') == 2
    assert site.svc.metric('cb_alert_events_total{level="orange",event="resolved"}') == 1
