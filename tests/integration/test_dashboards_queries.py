"""Every query of every dashboard, substituted as Grafana substitutes it, returns data from the real
InfluxDB after the kitchen-fire and garage-flood scenarios have played through the real service (every
device type's panels included: the site's sheds and fire lanes report all along); the wall's counts
equal what the API lists."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards.build import load_all
from dashboards.grafana_macros import DashboardQuery, queries_of, substitute, variables_of
from device_sim.scenario import SHIPPED
from kernel.devices import CATALOG, device_kind
from tests.servers import InfluxD, Mosquitto, free_port
from tests.service import EXAMPLE_SITE, ServiceProcess, env_without_cb, site_config

REPO = Path(__file__).resolve().parents[2]
FIRE_COMMUNITY, OTHER_COMMUNITY = "linfen-yicun", "linfen-ercun"
DASHBOARDS = load_all()
WALL = next(d for d in DASHBOARDS.values() if d["uid"] == "cb-wall")


def _site(tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, db: str, prefix: str) -> Path:
    path = site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=db, prefix=prefix,
                       base=SHIPPED / "site.yaml")
    raw = yaml.safe_load(path.read_text(encoding="utf-8").replace("127.0.0.1:9101", f"127.0.0.1:{free_port()}"))
    # The scenarios' site lists no shelters: the example site's, for the map's shelter layer (shelter_state).
    shelters = {c["id"]: c.get("shelters", []) for c in yaml.safe_load(EXAMPLE_SITE.read_text(encoding="utf-8"))
                ["communities"]}
    for c in raw["communities"]:
        c["shelters"] = shelters[c["id"]]
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def _scenario(site: Path, name: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "app.cli", "simulate", "--scenario", name,
                             "--config", str(site), "--quiet", *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env_without_cb())


def _community_of_each_type() -> dict[str, str]:
    """For each device type's measurement, a community of the shipped site with such a device (the fire's
    community where it has one)."""
    devices = yaml.safe_load((SHIPPED / "site.yaml").read_text(encoding="utf-8"))["devices"]
    out: dict[str, str] = {}
    for d in sorted(devices, key=lambda d: d["community"] != FIRE_COMMUNITY):
        out.setdefault(device_kind(d["type"]).measurement, d["community"])
    return out


def _chosen(query: str, communities: dict[str, str]) -> dict[str, str]:
    """The community variable a person would pick to see this query's device type."""
    for measurement, community in communities.items():
        if f'FROM "{measurement}"' in query:
            return {"community": community}
    return {"community": FIRE_COMMUNITY}


def _window() -> tuple[int, int]:
    """Grafana's default range for these dashboards, now-6h to now, in epoch milliseconds."""
    now = int(time.time() * 1000)
    return now - 6 * 3600 * 1000, now


def _run(influxdb: InfluxD, db: str, q: DashboardQuery, chosen: dict[str, str], dashboard: dict[str, Any]) -> list[Any]:
    from_ms, to_ms = q.range_ms(*_window())
    text = substitute(q.query, from_ms=from_ms, to_ms=to_ms, variables=variables_of(dashboard, chosen),
                      min_interval=q.min_interval)
    res = influxdb.query(text, db=db)
    series: list[Any] = res["results"][0].get("series", [])
    return series


def _wall_count(influxdb: InfluxD, db: str, level: str) -> dict[str, float]:
    """The wall panel's answer: per community, the unacknowledged alerts of a level."""
    q = next(q for q in queries_of(WALL) if f'last("firing_{level}")' in q.query)
    return {s["tags"]["community"]: s["values"][0][1] for s in _run(influxdb, db, q, {}, WALL)}


def _shelters_on_the_map(influxdb: InfluxD, db: str) -> dict[str, tuple[float, float]]:
    """The map's shelter layer: per shelter, the occupancy and the share its tooltip shows."""
    q = next(q for q in queries_of(WALL) if 'FROM "shelter_state"' in q.query)
    out: dict[str, tuple[float, float]] = {}
    for s in _run(influxdb, db, q, {}, WALL):
        columns = s["columns"]
        for row in s["values"]:
            value = dict(zip(columns, row, strict=True))
            out[s["tags"]["shelter"]] = (value["occupancy"], value["share"])
    return out


def _api_count(service: ServiceProcess, community: str, level: str) -> int:
    r = service.api("/alerts", status="firing", level=level, community=community)
    assert r.status_code == 200, r.text
    return len(r.json())


@pytest.mark.integration
def test_every_dashboard_query_returns_data_after_the_fire_and_the_flood(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD, influx_db: str, unique_prefix: str) -> None:
    site = _site(tmp_path, mosquitto, influxdb, influx_db, unique_prefix)
    service = ServiceProcess(site).start()
    try:
        service.wait_healthy()
        flood = _scenario(site, "garage-flood", "--verify")
        out, _ = flood.communicate(timeout=170)
        assert flood.returncode == 0, f"{out}\nservice:\n{service.log_tail()}"
        firing = service.api("/alerts", status="firing").json() + service.api("/alerts", status="acknowledged").json()
        assert not [a for a in firing if a["rule"].startswith("water.")]
        # After the drain the wall counts for the flooded community what the API lists: no water alert.
        time.sleep(2.0)
        for level in ("blue", "yellow", "orange", "red"):
            assert _wall_count(influxdb, influx_db, level).get(OTHER_COMMUNITY) == \
                _api_count(service, OTHER_COMMUNITY, level), level

        # The scenarios replay their readings up to now, each from its own past: the fire plays on a
        # fresh service (its own state) that writes into the same database.
        service.stop()
        fire_dir = tmp_path / "fire"
        fire_dir.mkdir()
        service = ServiceProcess(_site(fire_dir, mosquitto, influxdb, influx_db, unique_prefix)).start()
        service.wait_healthy()
        # The kitchen fire at a third of its usual speed: its red alert stays long enough to compare. Not
        # verified: the acknowledgement below adds notifications its expectations do not list.
        fire = _scenario(service.config, "kitchen-fire", "--speed", "20")
        matched: tuple[int, float, float] | None = None
        acked = False
        deadline = time.monotonic() + 170
        while fire.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
            before = _api_count(service, FIRE_COMMUNITY, "red")
            if matched is None and before:
                wall = _wall_count(influxdb, influx_db, "red")
                after = _api_count(service, FIRE_COMMUNITY, "red")
                if before == after and wall.get(FIRE_COMMUNITY) == before:
                    matched = (before, wall[FIRE_COMMUNITY], wall.get(OTHER_COMMUNITY, -1))
            if matched is not None and not acked:
                # Somebody on duty acknowledges the fire's first alert (for the time-to-acknowledge panels).
                firing = service.api("/alerts", status="firing", community=FIRE_COMMUNITY).json()
                if firing:
                    r = service.http.post(f"/api/v1/alerts/{firing[0]['id']}/ack", json={"note": "on our way"},
                                          headers={"Authorization": "Bearer example-token-admin"})
                    acked = r.status_code == 200
        out, _ = fire.communicate(timeout=60)
        assert fire.returncode == 0, f"{out}\nservice:\n{service.log_tail()}"
        assert matched is not None, "the wall never showed the fire's red alerts as the API listed them"
        assert matched[0] >= 1 and matched[2] == 0, matched
        assert acked

        # The school's playground takes in 546 of its 600: the map's shelter layer says so within seconds.
        r = service.http.post("/api/v1/shelters/sh-school/occupancy", json={"count": 546},
                              headers={"Authorization": "Bearer example-token-admin"})
        assert r.status_code == 200, r.text
        shown = service.wait_for(lambda: _shelters_on_the_map(influxdb, influx_db).get("sh-school") == (546.0, 0.91),
                                 10, "the school's occupancy on the map")
        assert shown and _shelters_on_the_map(influxdb, influx_db)["sh-park"] == (0.0, 0.0)

        empty = []
        ran = 0
        communities = _community_of_each_type()
        assert set(communities) == {k.measurement for k in CATALOG.values()}, "a device type is not in the site"
        for path, dashboard in DASHBOARDS.items():
            for q in queries_of(dashboard):
                ran += 1
                series = _run(influxdb, influx_db, q, _chosen(q.query, communities), dashboard)
                if not series or not any(s.get("values") for s in series):
                    empty.append(f"{path.name} {q.where}: {q.query}")
        # Every query of every file ran; each type's plots are among them.
        assert ran == sum(len(queries_of(d)) for d in DASHBOARDS.values())
        # 40 queries in each language besides the device types' plots (the wall's among them).
        plots = sum(len(k.plots) + sum(p.wall for p in k.plots) for k in CATALOG.values())
        assert ran >= 2 * (40 + plots)
        assert not empty, "queries without data:\n" + "\n".join(empty)
    finally:
        service.stop()
