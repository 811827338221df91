"""A full disk under state_dir: the service lives through it, says why, tells the operators and resumes
by itself, with every acknowledged reading stored once; a corrupt state database stops the start in one line."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device_sim.receiver import Receiver
from tests.servers import InfluxDFactory, Mosquitto
from tests.service import (
    DevicePublisher,
    ServiceProcess,
    env_without_cb,
    recipients_at,
    site_config,
    telemetry,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
COMMUNITY = "linfen-yicun"
CHARGERS = ["ev-b02-p01", "ev-b02-p02", "ev-b01-p01"]
DISK_MB = 24
RATE = 1500.0
TOTAL = 36_000  # 24 s at RATE, below the 65,535 message ids one publisher can track


@contextlib.contextmanager
def small_disk(where: Path) -> Iterator[Path]:
    """A tmpfs of DISK_MB mounted at `where` (root, as in CI), always unmounted."""
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (make test runs as root)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=False)


def fill(path: Path) -> int:
    """Write `path` until the filesystem has no byte left; how many bytes it took."""
    written = 0
    with path.open("wb", buffering=0) as f:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            while True:
                try:
                    written += f.write(b"\0" * size)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return written


def told(receiver: Receiver, path: str, rule: str, event: str) -> list[dict[str, Any]]:
    return [r.json for r in receiver.unique(path).values()
            if r.json["alert"]["rule"] == rule and r.json["event"] == event]


def test_a_full_disk_pauses_intake_tells_the_operators_and_resumes_losing_nothing(
        tmp_path: Path, mosquitto: Mosquitto, influxd_factory: InfluxDFactory, receiver: Receiver,
        unique_prefix: str) -> None:
    influx = influxd_factory()
    recipients = [*recipients_at(receiver.base),
                  {"id": "ops", "name": "运维", "role": "admin", "scope": {},
                   "channels": [{"type": "webhook", "url": f"{receiver.base}/ops", "secret": "ops-secret"}]}]
    with small_disk(tmp_path / "disk") as disk:
        config = site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influx.url, database="cb",
                             prefix=unique_prefix, extra={
                                 "state_dir": str(disk / "state"), "recipients": recipients,
                                 # No watermark: the disk really fills and a write fails.
                                 "ingest": {"disk_pause_free_mb": 0, "disk_low_free_mb": 0, "disk_reserve_mb": 2,
                                            "retry_max_s": 0.5}})
        svc = ServiceProcess(config).start()
        pub = None
        try:
            svc.wait_healthy()
            assert svc.health()[1]["disk"]["reserve_kept"] is True
            pub = DevicePublisher(mosquitto.url, f"dev-{unique_prefix}")
            start_ms = int(time.time() * 1000) - 60_000
            stream = pub.stream(((telemetry(unique_prefix, COMMUNITY, "ebike_charger", CHARGERS[i % 3]),
                                  {"ts": start_ms + i, "seq": i // 3, "current_a": (i % 500) / 100})
                                 for i in range(TOTAL)), RATE)
            svc.wait_metric("cb_readings_received_total", 1500, 20)
            influx.stop()  # the spool grows in state_dir
            fill(disk / "filler")
            filled = time.monotonic()

            # The process lives, and /health says why within a second of the first refused write.
            body = svc.wait_for(lambda: (lambda h: h[1] if not h[1]["disk"]["ok"] else None)(svc.health()), 10,
                                "/health naming the disk")
            failed_at = time.monotonic()
            assert body["status"] == "degraded" and body["disk"]["error"]
            assert "state database cannot be written" in body["disk"]["error"] or "MB free" in body["disk"]["error"]
            assert svc.health()[0] == 503
            assert svc.metric("cb_state_write_failures_total{problem=\"full\"}") >= 1
            assert failed_at - filled < 5, "a commit follows within a few hundred ms; /health at once"

            # The operators are told: the admin and the street office, orange, through a real receiver.
            for who in ("/ops", "/street-office"):
                svc.wait_for(lambda w=who: told(receiver, w, "service.disk_full", "fired"), 20,
                             f"service.disk_full at {who}")
            alert = told(receiver, "/ops", "service.disk_full", "fired")[0]["alert"]
            assert alert["level"] == "orange" and "MB" in alert["summary"]
            assert not told(receiver, "/bureau", "service.disk_full", "fired")

            # Intake waits: nothing more is taken while the disk is full.
            assert svc.metric("cb_state_disk_paused") == 1
            # What the broker had already sent when the pause began still arrives (a busy machine takes
            # a while to read it): wait until the count stops moving, then check that it stays put.
            before, deadline = svc.metric("cb_messages_received_total"), time.monotonic() + 15
            while time.monotonic() < deadline:
                time.sleep(0.5)
                now = svc.metric("cb_messages_received_total")
                if now == before:
                    break
                before = now
            time.sleep(1.5)  # (checking that nothing happens: there is no event to wait for)
            assert svc.metric("cb_messages_received_total") == before
            assert svc.proc is not None and svc.proc.poll() is None

            # Space comes back: intake resumes by itself; every acknowledged reading is stored once.
            (disk / "filler").unlink()
            influx.start()
            stream.join(60)
            pub.wait_acked(60)
            svc.wait_metric("cb_readings_stored_total", TOTAL, 120)
            svc.wait_healthy(30)
            assert svc.metric("cb_readings_stored_total") == TOTAL
            assert svc.metric("cb_readings_duplicates_total") == 0
            assert influx.count("ebike_charger", "cb") == TOTAL
            svc.wait_for(lambda: told(receiver, "/ops", "service.disk_full", "resolved"), 20, "disk_full resolved")
            assert svc.health()[1]["disk"]["reserve_kept"] is True
            assert "Traceback" not in svc.log_path.read_text(errors="replace")
        finally:
            if pub is not None:
                pub.close()
            svc.close()


def test_a_corrupt_state_database_stops_the_start_with_one_line(tmp_path: Path) -> None:
    config = site_config(tmp_path, mqtt_url="mqtt://127.0.0.1:1", influx_url=None, database="cb")
    state = tmp_path / "state"
    state.mkdir()
    (state / "ingest.db").write_bytes(b"SQLite format 2\0" + os.urandom(8192))
    result = subprocess.run([sys.executable, "-m", "app.cli", "run", "--config", str(config)], cwd=REPO,
                            capture_output=True, text=True, timeout=60,
                            env={**env_without_cb(), "PYTHONPATH": str(REPO)})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("cbrain:")]
    assert len(lines) == 1, result.stderr
    assert str(state / "ingest.db") in lines[0] and "corrupt" in lines[0] and "backup" in lines[0]
