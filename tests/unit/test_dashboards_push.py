"""`cbrain dashboards push` against a stand-in that answers as Grafana's HTTP API documents."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboards.build import generate
from dashboards.push import FOLDER_UID, push
from kernel.settings import Settings
from tests.grafana_standin import GrafanaApiStandIn
from tests.servers import LOOPBACK, free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def grafana() -> Iterator[GrafanaApiStandIn]:
    standin = GrafanaApiStandIn().start()
    yield standin
    standin.stop()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", "dashboards", "push", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


def test_push_uploads_datasource_folder_and_every_dashboard_and_again_overwrites(grafana: GrafanaApiStandIn) -> None:
    first = push(grafana.url, grafana.admin_token, influx_url="http://influxdb:8086")
    assert (first.datasource, first.folder) == ("created", "created")
    expected = {json.loads(t)["uid"]: json.loads(t) for t in generate().values()}
    assert sorted(first.dashboards) == sorted(expected)
    second = push(grafana.url, grafana.admin_token, influx_url="http://influxdb:8086")
    assert (second.datasource, second.folder) == ("updated", "updated")
    s = grafana.state
    assert list(s.datasources) == ["cb-influxdb"] and list(s.folders) == [FOLDER_UID]
    ds = s.datasources["cb-influxdb"]
    assert (ds["type"], ds["url"], ds["jsonData"]["version"], ds["jsonData"]["dbName"]) == (
        "influxdb", "http://influxdb:8086", "InfluxQL", "community_brain")
    assert sorted(s.dashboards) == sorted(expected)
    for uid, stored in s.dashboards.items():
        assert stored["folderUid"] == FOLDER_UID and stored["dashboard"]["version"] == 2
        sent = {k: v for k, v in stored["dashboard"].items() if k not in ("id", "version")}
        assert sent == {k: v for k, v in expected[uid].items() if k not in ("id", "version")}
    posts = [c for c in grafana.calls if c.path == "/api/dashboards/db"]
    assert len(posts) == 20 and all(c.body["overwrite"] is True for c in posts)
    assert all(c.headers.get("Authorization") == f"Bearer {grafana.admin_token}" for c in grafana.calls
               if c.path != "/api/health")


def test_the_command_line_says_what_was_uploaded(grafana: GrafanaApiStandIn) -> None:
    run = _cli("--url", grafana.url, "--token", grafana.admin_token)
    assert run.returncode == 0, run.stderr
    assert "10 dashboards uploaded" in run.stdout


@pytest.mark.parametrize(("token", "words"), [("wrong-token", "401 Unauthorized"), ("viewer", "403 Forbidden")])
def test_a_refused_token_is_one_line_and_a_non_zero_exit(grafana: GrafanaApiStandIn, token: str, words: str) -> None:
    run = _cli("--url", grafana.url, "--token", grafana.viewer_token if token == "viewer" else token)
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], run.stderr
    assert not grafana.state.dashboards


def test_an_unreachable_grafana_is_one_line_and_a_non_zero_exit() -> None:
    run = _cli("--url", f"http://{LOOPBACK}:{free_port()}", "--token", "whatever")
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "unreachable" in lines[0], run.stderr


def test_a_store_with_a_token_gets_a_data_source_that_sends_it(grafana: GrafanaApiStandIn) -> None:
    """InfluxDB 2.x or 3: Grafana's InfluxQL data source carries the token as a custom header, as the
    provisioned one does (deploy/grafana/influxdb2)."""
    settings = Settings.model_validate({"communities": [{"id": "c", "name": "c"}],
                                        "influx": {"url": "http://influxdb:8086", "token": "tok-123", "flavor": "v2"}})
    push(grafana.url, grafana.admin_token, settings=settings)
    ds = grafana.state.datasources["cb-influxdb"]
    assert ds["jsonData"]["httpHeaderName1"] == "Authorization"
    assert ds["secureJsonData"] == {"httpHeaderValue1": "Token tok-123"}
    push(grafana.url, grafana.admin_token, influx_url="http://influxdb:8086")  # 1.x: no header
    assert "httpHeaderName1" not in grafana.state.datasources["cb-influxdb"]["jsonData"]
