"""docs/alerts.md stays true: its Python and its shell (openssl) signature examples both verify a real
notification that `cbrain run` delivered to a real HTTP receiver, and both refuse a tampered body."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from device_sim.receiver import Received, Receiver
from tests.servers import InfluxD, Mosquitto
from tests.service import EXAMPLE_SITE, DevicePublisher, ServiceProcess, recipients_at, site_config, telemetry

pytestmark = pytest.mark.integration
DOC = Path(__file__).resolve().parents[2] / "docs" / "alerts.md"
SECRET = next(r["channels"][0]["secret"] for r in yaml.safe_load(EXAMPLE_SITE.read_text(encoding="utf-8"))["recipients"]
              if r["id"] == "worker-g1")


def _signature_section() -> str:
    return DOC.read_text(encoding="utf-8").split("## Webhook signature", 1)[1].split("\n## ", 1)[0]


def python_example() -> Callable[..., bool]:
    """The page's Python block, executed; the function it defines."""
    blocks = re.findall(r"^```python\n(.*?)^```", _signature_section(), re.M | re.S)
    assert len(blocks) == 1, "one Python example in the signature section"
    namespace: dict[str, Any] = {}
    exec(compile(blocks[0], f"{DOC}:python", "exec"), namespace)
    functions = [v for k, v in namespace.items() if callable(v) and getattr(v, "__module__", None) is None
                 and k.startswith("verify")]
    assert len(functions) == 1, "the Python example defines one verify… function"
    return functions[0]


def shell_example() -> str:
    """The page's openssl script."""
    blocks = [b for b in re.findall(r"^```sh\n(.*?)^```", _signature_section(), re.M | re.S) if "openssl" in b]
    assert len(blocks) == 1, "one openssl example in the signature section"
    return blocks[0]


def run_shell(tmp: Path, r: Received, body: bytes) -> subprocess.CompletedProcess[str]:
    """The shell example with the secret and headers in the environment and the body in a file, as it says."""
    (tmp / "body.json").write_bytes(body)
    env = {"PATH": "/usr/bin:/bin", "CB_SECRET": SECRET, "CB_TIMESTAMP": r.headers["X-CB-Timestamp"],
           "CB_SIGNATURE": r.headers["X-CB-Signature"], "CB_BODY": str(tmp / "body.json")}
    return subprocess.run(["bash", "-c", shell_example()], env=env, cwd=tmp, capture_output=True, text=True,
                          timeout=20)


@pytest.fixture(scope="module")
def notification(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto, influxdb: InfluxD) -> Received:
    """A notification of a smoke alarm, as the grid worker's webhook received it."""
    tmp = tmp_path_factory.mktemp("docs-alerts")
    db = "cbt_docs_alerts"
    influxdb.create_database(db)
    receiver = Receiver().start()
    config = site_config(tmp, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=db, prefix="cbtdocsal",
                         extra={"recipients": recipients_at(receiver.base)})
    svc = ServiceProcess(config).start()
    pub = DevicePublisher(mosquitto.url, "dev-cbtdocsal")
    try:
        svc.wait_healthy()
        pub.publish(telemetry("cbtdocsal", "linfen-yicun", "smoke_detector", "sd-b01-0501"),
                    {"ts": int(time.time() * 1000), "seq": 0, "alarm": True})
        pub.wait_acked()
        got = svc.wait_for(lambda: receiver.delivered("/worker-g1"), 30, "a notification to worker-g1")
        yield got[0]
    finally:
        pub.close()
        svc.close()
        receiver.stop()
        influxdb.drop_database(db)


def _tampered(body: bytes) -> bytes:
    assert b'"orange"' in body
    return body.replace(b'"orange"', b'"blue"', 1)


def test_the_python_example_verifies_a_real_notification(notification: Received) -> None:
    verify = python_example()
    r = notification
    assert r.json["alert"]["rule"] == "smoke.alarm"
    assert verify(SECRET, r.headers["X-CB-Timestamp"], r.body, r.headers["X-CB-Signature"]) is True


def test_the_python_example_refuses_a_tampered_body_and_a_wrong_secret(notification: Received) -> None:
    verify = python_example()
    r = notification
    assert verify(SECRET, r.headers["X-CB-Timestamp"], _tampered(r.body), r.headers["X-CB-Signature"]) is False
    assert verify("another-secret", r.headers["X-CB-Timestamp"], r.body, r.headers["X-CB-Signature"]) is False


def test_the_shell_example_verifies_a_real_notification(tmp_path: Path, notification: Received) -> None:
    done = run_shell(tmp_path, notification, notification.body)
    assert done.returncode == 0 and done.stdout.strip() == "valid", done


def test_the_shell_example_refuses_a_tampered_body(tmp_path: Path, notification: Received) -> None:
    done = run_shell(tmp_path, notification, _tampered(notification.body))
    assert done.returncode == 1 and done.stdout.strip() == "INVALID", done
