"""Readings lost before the service: a real Mosquitto that forgets the service's session while a
stream flows is alerted to the admins and the street office, the readings it lost are counted per
community to the committees, and /health says so; a broker that keeps its sessions raises nothing."""

from __future__ import annotations

import getpass
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from device_sim.receiver import Receiver
from tests.servers import InfluxD, Mosquitto, MosquittoFactory
from tests.service import DevicePublisher, ServiceProcess, recipients_at, site_config, telemetry

pytestmark = pytest.mark.integration

DEVICES = {"linfen-yicun": [f"sd-loss-y{i}" for i in range(6)], "linfen-ercun": [f"sd-loss-e{i}" for i in range(4)]}
RATE = 100.0  # readings a second over all devices
LOSS_RULES = ("service.broker_session_lost", "service.readings_lost", "device.gaps")


class Stream:
    """Every device reports in turn, each with its own seq, until stopped; remembers what it published."""

    def __init__(self, pub: DevicePublisher, prefix: str) -> None:
        self.pub, self.prefix = pub, prefix
        self.sent: dict[str, int] = {d: 0 for ds in DEVICES.values() for d in ds}
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        order = [(c, d) for c, ds in DEVICES.items() for d in ds]
        start, i = time.monotonic(), 0
        while not self._stop.is_set() and i < 60_000:  # bounded: at most ten minutes at RATE
            delay = start + i / RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            community, device = order[i % len(order)]
            seq = self.sent[device]
            self.pub.publish(telemetry(self.prefix, community, "smoke_detector", device),
                             {"ts": int(time.time() * 1000), "seq": seq, "obscuration_pct_m": 0.5})
            self.sent[device] = seq + 1
            i += 1

    def start(self) -> Stream:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(10)


@pytest.fixture
def receiver_and_recipients() -> Iterator[tuple[Receiver, list[dict[str, Any]]]]:
    r = Receiver().start()
    recipients = recipients_at(r.base)
    recipients.append({"id": "ops", "name": "运维值班", "role": "admin",
                       "channels": [{"type": "webhook", "url": f"{r.base}/ops", "secret": "ops-secret-for-tests"}]})
    yield r, recipients
    r.stop()


def start_service(tmp_path: Path, broker: Mosquitto, influxdb: InfluxD, db: str, prefix: str,
                  recipients: list[dict[str, Any]]) -> ServiceProcess:
    config = site_config(tmp_path, mqtt_url=broker.url, influx_url=influxdb.url, database=db, prefix=prefix, extra={
        "recipients": recipients,
        # A small in-flight window: what the service has not taken waits in its session on the broker.
        "mqtt": {"receive_maximum": 20},
        "ingest": {"loss_window_s": 8.0},
    })
    svc = ServiceProcess(config).start()
    svc.wait_healthy()
    return svc


def stored_per_device(influxdb: InfluxD, db: str) -> dict[str, int]:
    res = influxdb.query('SELECT count("obscuration_pct_m") FROM "smoke_detector" GROUP BY "device_id"', db=db)
    return {s["tags"]["device_id"]: int(s["values"][0][1]) for s in res["results"][0].get("series", [])}


def fired(receiver: Receiver, path: str, rule: str) -> list[dict[str, Any]]:
    return [r.json for r in receiver.unique(path).values()
            if r.json["event"] == "fired" and r.json["alert"]["rule"] == rule]


def test_a_broker_that_forgets_the_session_is_alerted_and_the_lost_readings_counted(
        tmp_path: Path, mosquitto_factory: MosquittoFactory, influxdb: InfluxD, influx_db: str, unique_prefix: str,
        receiver_and_recipients: tuple[Receiver, list[dict[str, Any]]]) -> None:
    receiver, recipients = receiver_and_recipients
    broker = mosquitto_factory(persistence=False)
    svc = start_service(tmp_path, broker, influxdb, influx_db, unique_prefix, recipients)
    pub = DevicePublisher(broker.url, f"dev-{unique_prefix}")
    stream = Stream(pub, unique_prefix).start()
    try:
        svc.wait_metric("cb_readings_stored_total", 300, 30)
        assert svc.metric("cb_mqtt_sessions_lost_total") == 0  # the first connect of a fresh service is no loss
        # The service stops taking messages (a long GC pause, a stuck disk): the broker queues them in its
        # session; then the broker restarts without persistence and forgets that session with its queue.
        assert svc.proc is not None
        svc.proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(3)
            broker.restart()
        finally:
            svc.proc.send_signal(signal.SIGCONT)
        svc.wait_metric("cb_mqtt_connects", 2, 20)
        reconnected = time.time()
        # Within seconds of reconnecting: the admins and the street office are told, the communities not.
        for path in ("/ops", "/street-office"):
            got = svc.wait_for(lambda p=path: fired(receiver, p, "service.broker_session_lost"), 10,
                               f"session-lost alert at {path}")
            assert len(got) == 1 and got[0]["alert"]["level"] == "yellow"
            assert receiver.unique(path)[got[0]["event_id"]].at - reconnected < 5
        assert "持久会话" in got[0]["alert"]["summary"] and "persistent_client_expiration" in got[0]["alert"]["summary"]
        assert not fired(receiver, "/committee-yicun", "service.broker_session_lost")
        assert svc.metric("cb_mqtt_sessions_lost_total") == 1
        time.sleep(2)
    finally:
        stream.stop()
    pub.wait_acked()
    total = sum(stream.sent.values())
    svc.wait_for(lambda: svc.metric("cb_readings_received_total") >= total - svc.metric("cb_readings_seq_gap_total")
                 and svc.metric("cb_spool_points") == 0, 60, "every reading that reached the service stored")
    stored = stored_per_device(influxdb, influx_db)
    lost = {c: sum(stream.sent[d] - stored.get(d, 0) for d in ds) for c, ds in DEVICES.items()}
    assert all(n > 0 for n in lost.values()), lost  # the restart did lose readings in both communities
    # One alert per community, to its committee and the admins, with the count of readings that never arrived.
    for community, committee in (("linfen-yicun", "/committee-yicun"), ("linfen-ercun", "/committee-ercun")):
        got = svc.wait_for(lambda p=committee: fired(receiver, p, "service.readings_lost"), 30,
                           f"readings-lost alert at {committee}")
        assert len(got) == 1
        alert = got[0]["alert"]
        assert alert["community"] == community and alert["value"] == lost[community]
        assert f"{len(DEVICES[community])} 台设备共 {lost[community]} 条" in alert["summary"], alert["summary"]
        svc.wait_for(lambda c=community: any(n["alert"]["community"] == c
                                             for n in fired(receiver, "/ops", "service.readings_lost")),
                     10, f"readings-lost alert of {community} at /ops")
    # /health says so, and stays 200: the service itself works.
    code, health = svc.health()
    assert code == 200 and health["broker"]["sessions_lost"] == 1 and health["broker"]["session_present"] is False
    kinds = {f["kind"]: f for f in health["findings"] if f["kind"] != "readings_lost"}
    assert kinds["broker_session_lost"]["count"] == 1
    by_community = {f["community"]: f for f in health["findings"] if f["kind"] == "readings_lost"}
    assert {c: f["readings"] for c, f in by_community.items()} == lost
    assert {c: f["devices"] for c, f in by_community.items()} == {c: len(ds) for c, ds in DEVICES.items()}
    alerts = svc.api("/alerts", status="firing").json()
    assert sorted(a["rule"] for a in alerts if a["rule"] in LOSS_RULES) == [
        "service.broker_session_lost", "service.readings_lost", "service.readings_lost"]
    assert "MQTT session lost: the MQTT broker answered 'session present: False'" in svc.log_path.read_text()
    pub.close()
    svc.close()


SHIPPED_CONF = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "mosquitto.conf"
# The settings of the shipped broker configuration that keep the service's session and its queue.
KEEPING = ("persistence", "autosave_interval", "persistent_client_expiration", "max_queued_messages",
           "max_queued_bytes", "max_inflight_messages", "max_inflight_bytes", "set_tcp_nodelay")


class ShippedMosquitto(Mosquitto):
    """Mosquitto with the session and queue settings of deploy/mosquitto/mosquitto.conf, as shipped (its
    listeners, accounts and paths are the deployment's: here a loopback port and the test's directory)."""

    def render_conf(self) -> str:
        shipped = [line.strip() for line in SHIPPED_CONF.read_text(encoding="utf-8").splitlines()
                   if line.strip().split(" ", 1)[0] in KEEPING]
        assert len(shipped) == len(KEEPING), shipped
        return "\n".join([f"listener {self.port} 127.0.0.1", "allow_anonymous true", f"user {getpass.getuser()}",
                          f"persistence_location {self.data_dir}/", f"log_dest file {self.log_path}",
                          "log_type error", "log_type warning", "log_type notice", *shipped]) + "\n"


@pytest.fixture
def shipped_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = ShippedMosquitto(tmp_path / "broker")
    broker.start()
    yield broker
    broker.stop()


def test_a_broker_that_keeps_its_sessions_raises_nothing_across_three_restarts(
        tmp_path: Path, shipped_broker: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str,
        receiver_and_recipients: tuple[Receiver, list[dict[str, Any]]]) -> None:
    receiver, recipients = receiver_and_recipients
    broker = shipped_broker
    svc = start_service(tmp_path, broker, influxdb, influx_db, unique_prefix, recipients)
    pub = DevicePublisher(broker.url, f"dev-{unique_prefix}")
    stream = Stream(pub, unique_prefix).start()
    try:
        for n in range(3):
            svc.wait_metric("cb_readings_stored_total", 200 * (n + 1), 30)
            # As in the other test: readings wait in the session on the broker when it restarts.
            assert svc.proc is not None
            svc.proc.send_signal(signal.SIGSTOP)
            try:
                time.sleep(2)
                broker.restart()
            finally:
                svc.proc.send_signal(signal.SIGCONT)
            svc.wait_metric("cb_mqtt_connects", n + 2, 20)
        time.sleep(2)
    finally:
        stream.stop()
    pub.wait_acked()
    total = sum(stream.sent.values())
    svc.wait_metric("cb_readings_stored_total", total, 60)
    time.sleep(10)  # past the loss window: a burst would have closed and fired by now
    assert svc.metric("cb_mqtt_sessions_lost_total") == 0
    assert sum(stored_per_device(influxdb, influx_db).values()) == total
    assert not [a for a in svc.api("/alerts").json() if a["rule"] in LOSS_RULES]
    assert not [r for r in receiver.delivered() if r.json["alert"]["rule"] in LOSS_RULES]
    code, health = svc.health()
    assert code == 200 and health["findings"] == [] and health["broker"]["session_present"] is True
    pub.close()
    svc.close()


def test_a_restart_of_the_service_that_finds_its_session_gone_is_a_finding_too(
        tmp_path: Path, mosquitto_factory: MosquittoFactory, influxdb: InfluxD, influx_db: str, unique_prefix: str,
        receiver_and_recipients: tuple[Receiver, list[dict[str, Any]]]) -> None:
    receiver, recipients = receiver_and_recipients
    broker = mosquitto_factory(persistence=False)
    svc = start_service(tmp_path, broker, influxdb, influx_db, unique_prefix, recipients)
    assert svc.stop() == 0
    svc.close()
    broker.restart()  # while the service is away: its session and whatever was queued for it are gone
    again = ServiceProcess(svc.config).start()
    try:
        again.wait_healthy()
        got = again.wait_for(lambda: fired(receiver, "/ops", "service.broker_session_lost"), 10, "session-lost alert")
        assert len(got) == 1 and again.metric("cb_mqtt_sessions_lost_total") == 1
        # The street office's duty room sees it on its inbox page, its level in words.
        with httpx.Client(base_url=again.base, timeout=5) as page:
            assert page.post("/login", data={"token": "example-token-street"}).status_code in (200, 303)
            inbox = page.get("/inbox").text
        alert_id = got[0]["alert"]["id"]
        assert f'data-alert-id="{alert_id}"' in inbox and "黄色预警" in inbox and "持久会话" in inbox
    finally:
        again.close()


def test_one_devices_repeated_gaps_reach_its_grid_worker(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str,
        receiver_and_recipients: tuple[Receiver, list[dict[str, Any]]]) -> None:
    receiver, recipients = receiver_and_recipients
    svc = start_service(tmp_path, mosquitto, influxdb, influx_db, unique_prefix, recipients)
    pub = DevicePublisher(mosquitto.url, f"dev-{unique_prefix}")
    topic = telemetry(unique_prefix, "linfen-yicun", "smoke_detector", "sd-b01-0501")
    try:
        # A flaky link: three gaps (2 + 3 + 1 readings lost), the other detectors report without gaps.
        for seq in (0, 1, 4, 5, 9, 10, 12, 13):
            pub.publish(topic, {"ts": int(time.time() * 1000), "seq": seq, "obscuration_pct_m": 0.5})
        pub.wait_acked()
        got = svc.wait_for(lambda: fired(receiver, "/worker-g1", "device.gaps"), 30, "device.gaps at worker-g1")
        alert = got[0]["alert"]
        assert (alert["level"], alert["device_id"], alert["value"]) == ("blue", "sd-b01-0501", 6)
        assert "3 次缺失，共 6 条" in alert["summary"], alert["summary"]
        time.sleep(1)
        assert not [r for r in receiver.delivered() if r.json["alert"]["rule"] == "device.gaps"
                    and r.path != "/worker-g1"]  # blue: the grid worker only
        assert not [r for r in receiver.delivered() if r.json["alert"]["rule"] == "service.readings_lost"]
    finally:
        pub.close()
        svc.close()
