"""The device simulator against a real Mosquitto, checked by a paho subscriber."""

from __future__ import annotations

import asyncio
import functools
import itertools
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from app.cli import main
from device_sim.fleet import DeviceSpec, Faults, Fleet, generate_devices
from device_sim.mqtt import MqttClient, MqttError, encode_topic
from kernel.ids import DeviceType
from tests.servers import Mosquitto, MosquittoFactory, free_port, server_port
from tests.service import EXAMPLE_SITE, env_without_cb

REPO = Path(__file__).resolve().parents[2]
REQUIRED = {DeviceType.SMOKE_DETECTOR: "alarm", DeviceType.EBIKE_CHARGER: "current_a",
            DeviceType.WATER_LEVEL: "level_cm", DeviceType.FIRE_LANE: "occupied",
            DeviceType.BATTERY_SHED: "temperature_c", DeviceType.WATER_LEAK: "leak"}


class Listener:
    """A paho subscriber that keeps every message it gets (topic, payload, retain flag)."""

    def __init__(self, broker: Mosquitto, topic: str, *, username: str | None = None,
                 password: str | None = None) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_message = lambda _c, _u, m: self._keep(m)
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        assert subscribed.wait(5), "no SUBACK"

    def _keep(self, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def telemetry(self) -> list[tuple[str, dict[str, Any]]]:
        """(device id, reading) in arrival order."""
        with self._lock:
            return [(t.split("/")[3], orjson.loads(p)) for t, p, _ in self.messages if t.endswith("/telemetry")]

    def statuses(self, device_id: str) -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.messages if t.split("/")[3] == device_id and t.endswith("/status")]

    async def wait(self, what: str, ok: Any, within_s: float = 5.0) -> None:
        deadline = time.monotonic() + within_s
        while not ok():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.02)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def by_device(readings: list[tuple[str, dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for device_id, body in readings:
        out[device_id].append(body)
    return out


async def test_readings_arrive_with_their_topics_payloads_seq_and_retained_status(
        mosquitto: Mosquitto, unique_prefix: str) -> None:
    specs = [DeviceSpec(f"c00{i % 2}", t, f"d{i}-{t.value.replace('_', '-')}") for i, t in enumerate(DeviceType)]
    listener = Listener(mosquitto, f"{unique_prefix}/#")
    try:
        total = 20 * len(specs)  # 20 readings of each type
        fleet = Fleet(mosquitto.url, unique_prefix, specs, rate=200.0, connections=2)
        st = await fleet.run(count=total)
        assert (st.readings, st.sent, st.acked, st.errors) == (total, total, total, 0)
        await listener.wait(f"{total} readings", lambda: len(listener.telemetry()) == total)
        now_ms = time.time() * 1000
        with listener._lock:
            topics = {t for t, _, _ in listener.messages}
        for spec in specs:
            base = f"{unique_prefix}/{spec.community}/{spec.device_type.value}/{spec.device_id}"
            assert {f"{base}/telemetry", f"{base}/status"} <= topics
            assert listener.statuses(spec.device_id) == [b"online"]
        for device_id, bodies in by_device(listener.telemetry()).items():
            spec = next(s for s in specs if s.device_id == device_id)
            assert [b["seq"] for b in bodies] == list(range(20))
            assert all(REQUIRED[spec.device_type] in b and abs(b["ts"] - now_ms) < 10_000 for b in bodies)
            assert len({b["ts"] for b in bodies}) == 20
    finally:
        listener.close()
    # Status is retained: a newcomer learns every device is online.
    late = Listener(mosquitto, f"{unique_prefix}/+/+/+/status")
    try:
        await late.wait("retained status", lambda: len(late.messages) == len(specs))
        assert all(p == b"online" and retained for _, p, retained in late.messages)
    finally:
        late.close()


async def test_dropouts_leave_gaps_duplicates_repeat_and_reordered_readings_come_late(
        mosquitto: Mosquitto, unique_prefix: str) -> None:
    specs = generate_devices(4, ["c001"])
    listener = Listener(mosquitto, f"{unique_prefix}/+/+/+/telemetry")
    try:
        fleet = Fleet(mosquitto.url, unique_prefix, specs, rate=500.0, connections=1,
                      faults=Faults(dropout=0.15, duplicate=0.15, reorder=0.15, skew_s=60))
        st = await fleet.run(count=400)
        assert st.dropped and st.duplicated and st.reordered and st.sent == st.acked
        await listener.wait("every reading sent", lambda: len(listener.telemetry()) == st.sent)
        missing = duplicates = inversions = 0
        for device_id, bodies in by_device(listener.telemetry()).items():
            seqs = [b["seq"] for b in bodies]
            counts = Counter(seqs)
            missing += fleet.core.devices[device_id].seq - len(counts)  # seqs used - seqs seen
            duplicates += sum(n - 1 for n in counts.values())
            inversions += sum(1 for a, b in itertools.pairwise(seqs) if b < a)
        assert missing == st.dropped
        assert duplicates == st.duplicated
        assert st.reordered - len(specs) <= inversions <= st.reordered
    finally:
        listener.close()


async def test_offline_drops_an_own_connection_so_the_broker_publishes_its_will(
        mosquitto: Mosquitto, unique_prefix: str) -> None:
    specs = generate_devices(3, ["c001"])
    own, behind = specs[0].device_id, specs[1].device_id
    listener = Listener(mosquitto, f"{unique_prefix}/#")
    try:
        start = time.time()
        fleet = Fleet(mosquitto.url, unique_prefix, specs, rate=60.0, start=start, own_connection=[own],
                      connections=1)
        for device_id in (own, behind):
            fleet.at(start + 0.5, functools.partial(fleet.offline, device_id))
            fleet.at(start + 1.2, functools.partial(fleet.online, device_id))
        await fleet.run(duration=2.0)
        for device_id in (own, behind):
            await listener.wait(f"{device_id} back online",
                                lambda d=device_id: listener.statuses(d) == [b"online", b"offline", b"online"])
            bodies = by_device(listener.telemetry())[device_id]
            assert [b["seq"] for b in bodies] == list(range(len(bodies)))  # seq continues, no gap
            quiet = [b for b in bodies if start + 0.55 < b["ts"] / 1000 < start + 1.2]
            assert not quiet and any(b["ts"] / 1000 > start + 1.2 for b in bodies)
        # The fleet never publishes `offline` for a device with its own connection: that one was the will.
        assert fleet.stats.errors == 0
    finally:
        listener.close()


def _password_file(path: Path, users: dict[str, str]) -> None:
    for i, (user, password) in enumerate(users.items()):
        args = ["mosquitto_passwd", "-b", *(["-c"] if i == 0 else []), str(path), user, password]
        subprocess.run(args, check=True, capture_output=True, timeout=10)
    path.chmod(0o600)


async def test_per_device_credentials_and_acl(mosquitto_factory: MosquittoFactory, unique_prefix: str,
                                              tmp_path: Path) -> None:
    specs = generate_devices(3, ["c001", "c002"])
    users = {s.device_id: f"pw-{s.device_id}" for s in specs} | {"reader": "reader-pw"}
    _password_file(tmp_path / "passwd", users)
    (tmp_path / "acl").write_text(f"user reader\ntopic read {unique_prefix}/#\n\n"
                                  f"pattern write {unique_prefix}/+/+/%u/#\n")
    broker = mosquitto_factory(extra_conf=f"allow_anonymous false\npassword_file {tmp_path / 'passwd'}\n"
                                          f"acl_file {tmp_path / 'acl'}\n")
    listener = Listener(broker, f"{unique_prefix}/#", username="reader", password="reader-pw")
    try:
        fleet = Fleet(broker.url, unique_prefix, specs, rate=150.0, credentials=lambda d: (d, users[d]))
        st = await fleet.run(count=30)
        assert (st.sent, st.acked, st.errors) == (30, 30, 0) and len(fleet.core.links) == 3
        await listener.wait("every device's readings", lambda: len(listener.telemetry()) == 30)
        assert Counter(d for d, _ in listener.telemetry()) == {s.device_id: 10 for s in specs}
        # The ACL holds: one device's login cannot publish as another.
        a, b = specs[0], specs[1]
        intruder = await MqttClient.open(broker.url, "intruder", username=a.device_id, password=users[a.device_id])
        await intruder.publish(encode_topic(f"{unique_prefix}/{b.community}/{b.device_type.value}/{b.device_id}/"
                                            "telemetry"), b'{"seq": 999}')
        await intruder.disconnect()
        await asyncio.sleep(0.2)
        assert all(body["seq"] != 999 for _, body in listener.telemetry())
    finally:
        listener.close()

    # A wrong password is a one-line error and exit status 1 from the command line.
    creds = tmp_path / "creds.csv"
    creds.write_text("".join(f"{s.device_id},{s.device_id},{users[s.device_id]}\n" for s in specs[:2])
                     + f"{specs[2].device_id},{specs[2].device_id},wrong\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "simulate", "--devices", "3", "--count", "5", "--mqtt-url", broker.url,
        "--prefix", unique_prefix, "--credentials", str(creds), cwd=REPO, env=env_without_cb(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1, err.decode()
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and "refused the connection" in lines[0], lines
    assert "not authorised" in lines[0] or "bad user name or password" in lines[0]


async def test_cbrain_simulate_runs_a_count_and_prints_its_summary(mosquitto: Mosquitto, unique_prefix: str) -> None:
    listener = Listener(mosquitto, f"{unique_prefix}/#")
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app.cli", "simulate", "--config", str(EXAMPLE_SITE), "--devices", "12",
            "--rate", "300", "--count", "150", "--connections", "2", "--mqtt-url", mosquitto.url,
            "--prefix", unique_prefix, cwd=REPO, env=env_without_cb(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        text = out.decode()
        assert "simulated 12 devices over 2 connections" in text
        assert "readings 150: sent 150, acknowledged 150, errors 0" in text
        assert "mean rate" in text and "rate error" in text and "max lateness" in text
        await listener.wait("150 readings", lambda: len(listener.telemetry()) == 150)
        devices = {t.split("/")[1] + "/" + t.split("/")[3] for t, _, _ in listener.messages}
        assert "linfen-yicun/sd-b01-0501" in devices  # listed in the site file
        assert "linfen-yicun/sd-sim-000000" in devices and "linfen-ercun/sd-sim-000001" in devices  # generated
    finally:
        listener.close()


@pytest.fixture
def tls_cert(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=30)
    return cert, key


async def test_mqtts_urls_connect_over_tls(mosquitto_factory: MosquittoFactory, unique_prefix: str,
                                          tls_cert: tuple[Path, Path]) -> None:
    cert, key = tls_cert
    tls_port = server_port()
    broker = mosquitto_factory(extra_conf=f"listener {tls_port} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\n")
    listener = Listener(broker, f"{unique_prefix}/#")
    try:
        fleet = Fleet(f"mqtts://127.0.0.1:{tls_port}", unique_prefix, generate_devices(2, ["c001"]), rate=100.0,
                      ssl_context=ssl.create_default_context(cafile=str(cert)))
        st = await fleet.run(count=10)
        assert (st.sent, st.acked) == (10, 10)
        await listener.wait("10 readings", lambda: len(listener.telemetry()) == 10)
    finally:
        listener.close()
    # Without the CA the certificate is not trusted: a clear error, not a hang.
    with pytest.raises(MqttError, match="cannot reach the broker"):
        await Fleet(f"mqtts://127.0.0.1:{tls_port}", unique_prefix, generate_devices(1, ["c001"])).run(count=1)


def test_an_unreachable_broker_is_a_one_line_error(capsys: Any) -> None:
    port = free_port()
    assert main(["simulate", "--devices", "2", "--count", "1", "--mqtt-url", f"mqtt://127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot reach the broker at 127.0.0.1:{port}" in err[0]
