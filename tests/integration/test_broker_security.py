"""Breaking in: a real Mosquitto running the files of `cbrain mqtt provision`, with the service over TLS.

One broker of its own (not the session broker) with password_file, acl_file, no anonymous access,
a plain listener for the attacks and a TLS listener with a throwaway CA; one service connected to it
over TLS with its provisioned account.
"""

from __future__ import annotations

import asyncio
import csv
import secrets
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from app.cli import main
from device_sim.mqtt import ConnectRefused, MqttClient, MqttError
from kernel.devices import CATALOG
from tests.servers import LOOPBACK, InfluxD, Mosquitto, free_port, make_certificates
from tests.service import EXAMPLE_SITE, ServiceProcess, env_without_cb, site_config, telemetry

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
COMMUNITY = "linfen-yicun"
A, B = "sd-b01-0501", "sd-b01-0502"  # two smoke detectors of the example site


@dataclass
class Secured:
    """The secured broker, the service connected to it over TLS, and the provisioned accounts."""

    broker: Mosquitto
    tls_port: int
    ca_file: Path
    site: Path
    service: ServiceProcess
    influx: InfluxD
    database: str
    prefix: str
    passwords: dict[str, str]  # user name -> password
    credentials: Path

    def stored(self, measurement: str, device_id: str) -> list[dict[str, object]]:
        """Stored points of one device."""
        return [r for r in self.influx.rows(measurement, self.database) if r["device_id"] == device_id]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, influxdb: InfluxD) -> Iterator[Secured]:
    """Provision the example site, start the broker on the generated files and the service over TLS."""
    tmp = tmp_path_factory.mktemp("secured")
    prefix = f"cbt{secrets.token_hex(4)}"
    database = f"cbt_{secrets.token_hex(6)}"
    influxdb.create_database(database)
    ca, crt, key = make_certificates(tmp / "tls")
    tls_port = free_port()
    recipients = yaml.safe_load(EXAMPLE_SITE.read_text(encoding="utf-8"))["recipients"]
    for r in recipients:
        if r["id"] == "worker-g1":
            r["channels"].insert(0, {"type": "mqtt"})  # the alert publisher logs in and speaks TLS too
    site = site_config(tmp, mqtt_url=f"mqtts://{LOOPBACK}:{tls_port}", influx_url=influxdb.url, database=database,
                       prefix=prefix, extra={"mqtt": {"ca_file": str(ca)}, "recipients": recipients})
    out = tmp / "broker-accounts"
    assert main(["mqtt", "provision", "--config", str(site), "--out", str(out)]) == 0
    with (out / "credentials.csv").open(encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    passwords = {user: password for _, user, password in rows}
    service_user = f"cbrain-{prefix}"
    # The service's row, pasted into the site file as the provisioning command says.
    text = site.read_text(encoding="utf-8")
    site.write_text(text.replace(f"client_id: {service_user}\n", f"client_id: {service_user}\n  username: "
                                 f"{service_user}\n  password: {passwords[service_user]}\n"), encoding="utf-8")
    broker = Mosquitto(tmp / "mosquitto", extra_conf="\n".join([
        "allow_anonymous false",
        f"password_file {out / 'passwd'}",
        f"acl_file {out / 'acl'}",
        f"listener {tls_port} {LOOPBACK}",
        f"cafile {ca}",
        f"certfile {crt}",
        f"keyfile {key}",
    ]))
    broker.start()
    service = ServiceProcess(site).start()
    try:
        health = service.wait_healthy()
        assert health["broker"]["url"].startswith("mqtts://")
        yield Secured(broker, tls_port, ca, site, service, influxdb, database, prefix, passwords,
                      out / "credentials.csv")
    finally:
        service.close()
        broker.stop()
        influxdb.drop_database(database)


def _reading(seq: int, **fields: object) -> bytes:
    return orjson.dumps({"ts": int(time.time() * 1000), "seq": seq, **fields})


async def test_an_anonymous_client_is_refused(secured: Secured) -> None:
    """No user name: CONNACK 5, not authorised."""
    with pytest.raises(ConnectRefused) as refused:
        await MqttClient.open(secured.broker.url, "anonymous-intruder", timeout_s=5)
    assert refused.value.code == 5


async def test_a_wrong_password_is_refused(secured: Secured) -> None:
    """A device's name with somebody else's password, and a made-up user, are both refused."""
    for user, password in ((A, secured.passwords[B]), ("nobody", "guess")):
        with pytest.raises(ConnectRefused) as refused:
            await MqttClient.open(secured.broker.url, f"intruder-{user}", username=user, password=password,
                                  timeout_s=5)
        assert refused.value.code in (4, 5)


async def test_tls_needs_the_sites_ca(secured: Secured) -> None:
    """The TLS listener's certificate is trusted through the site's CA file only."""
    url = f"mqtts://{LOOPBACK}:{secured.tls_port}"
    with pytest.raises(MqttError):
        await MqttClient.open(url, f"dev-{A}", username=A, password=secured.passwords[A], timeout_s=5)
    client = await MqttClient.open(url, f"dev-{A}", username=A, password=secured.passwords[A], timeout_s=5,
                                   ssl_context=ssl.create_default_context(cafile=str(secured.ca_file)))
    await client.disconnect()


async def test_a_device_cannot_publish_for_another(secured: Secured) -> None:
    """A's login publishing to B's topic reaches neither the service nor the store; A's own reading does."""
    before = secured.service.metric("cb_readings_stored_total")
    received_before = secured.service.metric("cb_messages_received_total")
    client = await MqttClient.open(secured.broker.url, f"dev-{A}", username=A, password=secured.passwords[A])
    try:
        # Mosquitto acknowledges a PUBLISH it refuses (MQTT 3.1.1 has no way to say no) and drops it.
        await client.publish(telemetry(secured.prefix, COMMUNITY, "smoke_detector", B),
                             _reading(1, alarm=True, obscuration_pct_m=30.0))
        # Its own id under another community or another type, and B's status, are not its topics either.
        await client.publish(telemetry(secured.prefix, "linfen-ercun", "smoke_detector", A), _reading(1, alarm=True))
        await client.publish(telemetry(secured.prefix, COMMUNITY, "water_level", A), _reading(1, level_cm=80.0))
        await client.publish(f"{secured.prefix}/{COMMUNITY}/smoke_detector/{B}/status", b"offline", retain=True)
        await client.publish(f"{secured.prefix}/{COMMUNITY}/alerts", b'{"forged": true}')
        await client.publish(telemetry(secured.prefix, COMMUNITY, "smoke_detector", A),
                             _reading(1, obscuration_pct_m=0.25))
        assert await client.drain(5)
    finally:
        await client.disconnect()
    # A's own reading came after the forged one on the same connection: once it is stored, the forged
    # one would have been too.
    secured.service.wait_metric("cb_readings_stored_total", before + 1, 20)
    await asyncio.sleep(0.5)
    assert secured.service.metric("cb_readings_stored_total") == before + 1
    assert [r["obscuration_pct_m"] for r in secured.stored("smoke_detector", A)][-1] == 0.25
    assert secured.stored("smoke_detector", B) == []
    assert secured.stored("water_level", A) == []
    assert {r["community"] for r in secured.stored("smoke_detector", A)} == {COMMUNITY}
    # Of the six messages, the broker passed on exactly one.
    assert secured.service.metric("cb_messages_received_total") == received_before + 1
    response = secured.service.api("/alerts", community=COMMUNITY)
    assert response.status_code == 200
    assert [a for a in response.json() if a["device_id"] == B] == []


def test_a_device_subscribing_to_everything_receives_nothing(secured: Secured) -> None:
    """A device's login subscribes to `#` and to the prefix; while others' readings flow, nothing arrives."""
    got: list[str] = []
    acks: list[list[int]] = []
    subscribed = threading.Event()
    spy = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"spy-{A}",
                      protocol=paho.MQTTv311)
    spy.username_pw_set(A, secured.passwords[A])
    spy.on_message = lambda _c, _u, m: got.append(m.topic)

    def on_subscribe(_c: object, _u: object, _mid: int, codes: list[object], _p: object) -> None:
        acks.append([getattr(c, "value", c) for c in codes])  # type: ignore[misc]
        subscribed.set()

    spy.on_subscribe = on_subscribe
    spy.connect(LOOPBACK, secured.broker.port)
    spy.loop_start()
    try:
        spy.subscribe([("#", 1), (f"{secured.prefix}/#", 1)])
        assert subscribed.wait(5), "no SUBACK"
        before = secured.service.metric("cb_readings_stored_total")
        proc = subprocess.run(
            [sys.executable, "-m", "app.cli", "simulate", "--config", str(secured.site), "--credentials",
             str(secured.credentials), "--count", "16", "--rate", "50", "--quiet"],
            cwd=REPO, env=env_without_cb(), capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        secured.service.wait_metric("cb_readings_stored_total", before + 16, 20)
        time.sleep(0.5)
    finally:
        spy.disconnect()
        spy.loop_stop()
    assert got == [], got[:5]


def test_the_simulator_with_credentials_csv_stores_every_reading(secured: Secured) -> None:
    """`cbrain simulate --credentials credentials.csv`, over TLS with the site's CA: every reading stored."""
    measurements = [k.measurement for k in CATALOG.values()]  # every type the example site may list

    def stored() -> int:
        return sum(len(secured.influx.rows(m, secured.database)) for m in measurements)

    before_points = stored()
    before = secured.service.metric("cb_readings_stored_total")
    count = 80
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "simulate", "--config", str(secured.site), "--credentials",
         str(secured.credentials), "--count", str(count), "--rate", "100", "--quiet"],
        cwd=REPO, env=env_without_cb(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f"acknowledged {count}" in proc.stdout and "errors 0" in proc.stdout, proc.stdout
    assert "mqtts://" in proc.stdout
    secured.service.wait_metric("cb_readings_stored_total", before + count, 20)
    deadline = time.monotonic() + 10
    while stored() < before_points + count and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stored() == before_points + count
    assert secured.service.health()[1]["broker"]["ok"]


def test_a_wrong_row_in_credentials_csv_is_one_line_and_exit_1(secured: Secured, tmp_path: Path) -> None:
    """A device whose password was rotated away cannot connect; the simulator says so in one line."""
    rows = secured.credentials.read_text(encoding="utf-8").splitlines()
    bad = tmp_path / "credentials.csv"
    bad.write_text("\n".join(r.replace(f"{A},{A},{secured.passwords[A]}", f"{A},{A},stale") for r in rows) + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "simulate", "--config", str(secured.site), "--credentials", str(bad),
         "--count", "8", "--quiet"], cwd=REPO, env=env_without_cb(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused the connection" in lines[0], lines


def test_the_mqtt_alert_channel_publishes_with_the_services_account(secured: Secured) -> None:
    """A's smoke alarm reaches worker-g1 through the MQTT channel: the service's publisher logged in over TLS
    and its ACL lets it write the alerts topic, which only the service's account may read."""
    got: list[bytes] = []
    subscribed = threading.Event()
    user = f"cbrain-{secured.prefix}"
    listener = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"{user}-test-listener",
                           protocol=paho.MQTTv311)
    listener.username_pw_set(user, secured.passwords[user])
    listener.on_message = lambda _c, _u, m: got.append(bytes(m.payload))
    listener.on_subscribe = lambda *_a: subscribed.set()
    listener.connect(LOOPBACK, secured.broker.port)
    listener.loop_start()
    try:
        listener.subscribe(f"{secured.prefix}/+/alerts", qos=1)
        assert subscribed.wait(5), "no SUBACK"

        async def alarm() -> None:
            client = await MqttClient.open(secured.broker.url, f"dev-{A}-alarm", username=A,
                                           password=secured.passwords[A])
            await client.publish(telemetry(secured.prefix, COMMUNITY, "smoke_detector", A), _reading(2, alarm=True))
            await client.disconnect()

        asyncio.run(alarm())
        deadline = time.monotonic() + 20
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        listener.disconnect()
        listener.loop_stop()
    assert got, "no notification on the alerts topic"
    note = orjson.loads(got[0])
    assert (note["alert"]["device_id"], note["alert"]["rule"]) == (A, "smoke.alarm")
