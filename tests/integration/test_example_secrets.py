"""Start-up refuses the public example secrets beyond loopback, before binding; on loopback it warns."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from app.auth import FAILURES_ALLOWED
from app.example_secrets import example_secrets_in, is_loopback, known_example_secrets
from kernel.settings import parse_settings
from tests.servers import LOOPBACK, InfluxD, Mosquitto, free_port
from tests.service import EXAMPLE_SITE, ServiceProcess, env_without_cb, site_config

REPO = Path(__file__).resolve().parents[2]


def _port_is_closed(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((LOOPBACK, port)) != 0


def _fresh_site(tmp: Path, host: str, **changes: object) -> Path:
    """A site file on unreachable servers, listening on host, with every example secret replaced."""
    raw = yaml.safe_load(EXAMPLE_SITE.read_text(encoding="utf-8"))
    for i, r in enumerate(raw["recipients"]):
        for c in r["channels"]:
            if "secret" in c:
                c["secret"] = f"s{i}-0f3c9a7d1e5b2c48"
    for i, t in enumerate(raw["api_tokens"]):
        t["token"] = f"t{i}-8c2e4b6a9d1f3e57"
    raw["mqtt"] = {"url": f"mqtt://{LOOPBACK}:{free_port()}"}
    raw["influx"] = {"url": None}
    raw["http"] = {"host": host, "port": free_port()}
    raw["state_dir"] = str(tmp / "state")
    raw.update(changes)
    path = tmp / "site.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def test_the_known_values_come_from_the_example_files() -> None:
    """Both example site files are read: their tokens and webhook secrets are all known."""
    known = known_example_secrets()
    assert {"example-token-admin", "example-secret-g1", "example-secret-b"} <= known
    # The demo's push sources (app/defaults/site.yaml) prove themselves with public tokens too.
    assert {"example-token-ctwing", "example-token-onenet"} <= known


def test_each_kind_of_example_secret_is_found(tmp_path: Path) -> None:
    """Tokens (plain and as digest), channel secrets, a push source's token and a broker password are named;
    fresh ones are not."""
    raw = yaml.safe_load(_fresh_site(tmp_path, LOOPBACK).read_text(encoding="utf-8"))
    assert example_secrets_in(parse_settings(yaml.safe_dump(raw), env={})) == []
    raw["api_tokens"][0] = {"token_sha256": hashlib.sha256(b"example-token-worker-g1").hexdigest(),
                            "recipient": "worker-g1"}
    raw["recipients"][2]["channels"][0]["secret"] = "example-secret-g3"
    raw["mqtt"] = {"url": "mqtt://cbrain:example-token-admin@127.0.0.1:1883"}
    raw["sources"] = [{"id": "aep", "type": "ctwing", "token": "example-token-ctwing"},
                      {"id": "studio", "type": "onenet", "token": "a-fresh-push-token-5e1c"}]
    found = example_secrets_in(parse_settings(yaml.safe_dump(raw, allow_unicode=True), env={}))
    assert len(found) == 4, found
    assert "source aep (ctwing) token is the example value 'example-token-ctwing'" in found
    assert "api_tokens[0] (recipient worker-g1) is the digest of an example token" in found
    assert any("recipient worker-g3 channel 0 (webhook) secret" in f for f in found)
    assert any(f.startswith("mqtt password of 'cbrain'") for f in found)


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("::1", True), ("localhost", True),
                                                ("127.0.0.2", True), ("0.0.0.0", False), ("::", False),
                                                ("192.0.2.10", False), ("cbrain.example", False)])
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.integration
def test_start_up_beyond_loopback_with_example_secrets_exits_naming_them(tmp_path: Path) -> None:
    """`cbrain run` on 0.0.0.0 with the example site: exit 2, one line naming every example secret, and the
    port never opened."""
    site = _fresh_site(tmp_path, "0.0.0.0")
    raw = yaml.safe_load(site.read_text(encoding="utf-8"))
    raw["recipients"][0]["channels"][0]["secret"] = "example-secret-g1"
    raw["api_tokens"][3]["token"] = "example-token-admin"
    site.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    port = raw["http"]["port"]
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "run", "--config", str(site)], cwd=REPO,
                            env=env_without_cb(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while proc.poll() is None:
            assert _port_is_closed(port), "the HTTP port was opened"
            time.sleep(0.02)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "http.host 0.0.0.0" in lines[0]
    assert "recipient worker-g1 channel 0 (webhook) secret is the example value 'example-secret-g1'" in lines[0]
    assert "api_tokens[3] (role admin) is the example token 'example-token-admin'" in lines[0]
    assert "example-secret-g2" not in lines[0]
    assert not (tmp_path / "state").exists(), "the service opened its state before refusing"


@pytest.mark.integration
def test_start_up_beyond_loopback_with_fresh_secrets_serves(tmp_path: Path) -> None:
    """The same site with its secrets replaced starts on 0.0.0.0 (reached here through loopback); a token kept
    as token_sha256 lets its holder in, and guessing is cut off with 429."""
    token = "held-by-the-admin-only-4f1d2c"
    site = _fresh_site(tmp_path, "0.0.0.0", api_tokens=[
        {"token_sha256": hashlib.sha256(token.encode()).hexdigest(), "role": "admin"}])
    svc = ServiceProcess(site).start()
    try:
        body = svc.wait_status(503)  # up, though its broker is not there
        assert body["warnings"] == []
        assert svc.api("/alerts", token=token).status_code == 200
        codes = [svc.api("/alerts", token=f"guess-{i}").status_code for i in range(FAILURES_ALLOWED)]
        assert codes == [401] * FAILURES_ALLOWED
        limited = svc.api("/alerts", token=token)
        assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 60
    finally:
        svc.close()


@pytest.mark.integration
def test_on_loopback_example_secrets_are_a_warning_in_the_log_and_on_health(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str) -> None:
    """The demo's way: the example site on 127.0.0.1 runs, and says which secrets are public."""
    svc = ServiceProcess(site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influxdb.url,
                                     database=influx_db, prefix=unique_prefix)).start()
    try:
        body = svc.wait_healthy()
        warnings = body["warnings"]
        assert any("example-token-admin" in w for w in warnings)
        assert any("example-secret-b" in w for w in warnings)
        assert len(warnings) == 19  # 4 tokens, 7 webhook secrets, 8 of the departments' contacts
        log = svc.log_tail(200)
        assert "example secret in use (fine on loopback only)" in log
    finally:
        svc.close()


def test_config_check_says_the_same(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`cbrain config check` refuses what `cbrain run` would refuse, and prints the loopback warnings."""
    from app.cli import main

    raw = yaml.safe_load(_fresh_site(tmp_path, "0.0.0.0").read_text(encoding="utf-8"))
    raw["api_tokens"][0]["token"] = "example-token-worker-g1"
    site = tmp_path / "exposed.yaml"
    site.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    assert main(["config", "check", str(site)]) == 2
    assert "example-token-worker-g1" in capsys.readouterr().err
    assert main(["config", "check", str(EXAMPLE_SITE)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 19 and all(line.startswith("warning: example secret in use") for line in err)
