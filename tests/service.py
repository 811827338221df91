"""Running the real service (`cbrain run`) as a subprocess, and publishing to it, for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.servers import free_port

T = TypeVar("T")
ADMIN = "example-token-admin"
EXAMPLE_SITE = Path(__file__).resolve().parents[1] / "examples" / "site.yaml"


def site_config(tmp: Path, *, mqtt_url: str, influx_url: str | None, database: str, prefix: str = "cb",
                extra: dict[str, Any] | None = None, name: str = "site.yaml", base: Path = EXAMPLE_SITE,
                roster: bool = False) -> Path:
    """A site file (the example site by default) pointed at the test's servers, with its own state dir
    and HTTP port; without its duty roster unless `roster` (叫应's calls are the business of
    tests/integration/test_call_until_answered.py, not of the tests counting notifications)."""
    raw = yaml.safe_load(base.read_text(encoding="utf-8"))
    if not roster:
        for place in [raw.get("street") or {}, *raw.get("communities", []),
                      *(g for c in raw.get("communities", []) for g in c.get("grids", []))]:
            place.pop("duties", None)
            place.pop("roster_verified", None)
    raw["mqtt"] = {"url": mqtt_url, "prefix": prefix, "client_id": f"cbrain-{prefix}",
                   "reconnect_min_s": 0.1, "reconnect_max_s": 1.0}
    raw["influx"] = {"url": influx_url, "database": database}
    raw["http"] = {"host": "127.0.0.1", "port": free_port()}
    raw["state_dir"] = str(tmp / "state")
    raw["ingest"] = {"retry_max_s": 1.0}
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = raw[key] | value
        else:
            raw[key] = value
    path = tmp / name
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


class ServiceProcess:
    """`cbrain run --config FILE` in a subprocess, with its log in the test's directory."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        raw = yaml.safe_load(config.read_text(encoding="utf-8"))
        self.base = f"http://127.0.0.1:{raw['http']['port']}"
        self.log_path = config.with_suffix(".log")
        self.env = {**env_without_cb(), **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.base, timeout=5)

    def start(self) -> ServiceProcess:
        """Start the service (appending to its log)."""
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "run", "--config", str(self.config)],
            stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=Path(__file__).resolve().parents[1],
        )
        log.close()
        return self

    def kill(self) -> None:
        """SIGKILL: no chance to flush, close or acknowledge anything."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        """SIGTERM and wait for the orderly shutdown."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def log_tail(self, n: int = 40) -> str:
        """The last lines the service printed."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""

    def health(self) -> tuple[int, dict[str, Any]]:
        """GET /health."""
        r = self.http.get("/health")
        return r.status_code, r.json()

    def wait_healthy(self, timeout: float = 30) -> dict[str, Any]:
        """Wait until /health answers 200."""
        return self.wait_status(200, timeout)

    def wait_status(self, status: int, timeout: float = 30) -> dict[str, Any]:
        """Wait until /health answers this status; return its body."""
        def check() -> dict[str, Any] | None:
            try:
                code, body = self.health()
            except httpx.HTTPError:
                return None
            return body if code == status else None
        return self.wait_for(check, timeout, f"/health {status}")

    def wait_metric(self, name: str, at_least: float, timeout: float = 30) -> float:
        """Wait until a metric reaches a value; return it."""
        return self.wait_for(lambda: (lambda v: v if v >= at_least else None)(self.metric(name)),
                             timeout, f"{name} >= {at_least}")

    def metrics(self) -> dict[str, float]:
        """The /metrics samples, by series name with labels."""
        out: dict[str, float] = {}
        for line in self.http.get("/metrics").text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def metric(self, name: str) -> float:
        """One sample, 0 when absent; -1 while the service does not answer."""
        try:
            return self.metrics().get(name, 0.0)
        except httpx.HTTPError:
            return -1.0

    def api(self, path: str, token: str = ADMIN, **params: Any) -> httpx.Response:
        """GET under /api/v1 with a bearer token."""
        return self.http.get(f"/api/v1{path}", params=params, headers={"Authorization": f"Bearer {token}"})

    def wait_for(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        """Poll check until it returns something truthy; fail with the service log otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"service exited ({self.proc.returncode}) waiting for {what}:\n"
                                     f"{self.log_tail()}")
            got = check()
            if got:
                return got
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; service log:\n{self.log_tail()}")

    def close(self) -> None:
        """Stop the process if it runs."""
        self.stop()
        self.http.close()


class DevicePublisher:
    """A device-side MQTT client with a persistent session, so a broker restart loses nothing it sent."""

    def __init__(self, url: str, client_id: str) -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        self.client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=paho.MQTTv5)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.1, 1)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.acked: set[int] = set()
        self.client.on_publish = lambda _c, _u, mid, _rc, _p: self.acked.add(mid)
        self.client.connect(host, int(port), clean_start=False, properties=props)
        self.client.loop_start()
        self.infos: list[paho.MQTTMessageInfo] = []

    def publish(self, topic: str, payload: bytes | dict[str, Any], *, retain: bool = False) -> None:
        """Publish at QoS 1 (queued by the client while disconnected)."""
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        self.infos.append(self.client.publish(topic, body, qos=1, retain=retain))

    def stream(self, items: Iterable[tuple[str, bytes | dict[str, Any]]], rate: float) -> threading.Thread:
        """Publish items at a steady rate from a background thread."""
        def run() -> None:
            start = time.monotonic()
            for i, (topic, payload) in enumerate(items):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self.publish(topic, payload)
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def wait_acked(self, timeout: float = 60) -> None:
        """Wait until the broker has acknowledged every message published so far.

        Tracked by PUBACK (on_publish) rather than MQTTMessageInfo: a message published while the
        client is disconnected carries rc NO_CONN although paho keeps it and sends it on reconnect.
        Message ids repeat after 65535, which bounds a publisher's use here.
        """
        assert len(self.infos) < 65535
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(i.mid in self.acked for i in self.infos):
                return
            time.sleep(0.05)
        pending = sum(i.mid not in self.acked for i in self.infos)
        raise AssertionError(f"{pending} of {len(self.infos)} messages not acknowledged by the broker")

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def telemetry(prefix: str, community: str, device_type: str, device_id: str) -> str:
    """A device's telemetry topic."""
    return f"{prefix}/{community}/{device_type}/{device_id}/telemetry"


def stored_values(influx: Any, db: str, measurement: str, field: str) -> list[tuple[str, int, Any]]:
    """(device_id, time, value) of every stored point of a measurement, in time order."""
    res = influx.query(f'SELECT "{field}", device_id FROM "{measurement}"', db=db)
    series = res["results"][0].get("series", [])
    if not series:
        return []
    cols = series[0]["columns"]
    t, v, d = cols.index("time"), cols.index(field), cols.index("device_id")
    return [(row[d], row[t], row[v]) for row in series[0]["values"]]


def env_without_cb() -> dict[str, str]:
    """The environment without CB_* overrides (so a developer's shell cannot redirect the service)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CB_")}


def recipients_at(base: str) -> list[dict[str, Any]]:
    """The example site's recipients, their webhooks pointed at a test receiver."""
    out: list[dict[str, Any]] = yaml.safe_load(EXAMPLE_SITE.read_text(encoding="utf-8"))["recipients"]
    for r in out:
        for c in r["channels"]:
            if "url" in c:
                c["url"] = c["url"].replace("http://127.0.0.1:9101", base)
    return out
