"""Simulated sites and devices: generated sites load, and the same seed gives the same readings."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import yaml

from device_sim.sites import generate_site
from device_sim.types import make_model
from kernel.ids import DeviceType
from kernel.settings import parse_settings
from kernel.site import Site

REPO = Path(__file__).resolve().parents[2]


def test_a_generated_site_loads_with_chinese_names_grids_and_recipients() -> None:
    site = generate_site(4, 9, 10, seed=7)
    settings = parse_settings(yaml.safe_dump(site, allow_unicode=True), env={})
    assert len(settings.communities) == 4 and len(settings.devices) == 4 * 9 * 10
    assert all("\u4e00" <= c.name[0] <= "\u9fff" for c in settings.communities)
    assert [len(c.grids) for c in settings.communities] == [3, 3, 3, 3]  # 4 buildings per grid
    place = Site(settings).place("c002", "sd-c002-b09-01")
    assert (place.building, place.grid) == ("b09", "g3")
    roles = [r.role for r in settings.recipients]
    assert roles.count("grid_worker") == 12 and roles.count("community") == 4 and "bureau" in roles
    assert generate_site(4, 9, 10, seed=7) == site and generate_site(4, 9, 10, seed=8) != site


def test_the_same_seed_gives_the_same_readings() -> None:
    def readings(seed: int) -> list[dict[str, object]]:
        rng = random.Random(seed)
        models = [make_model(t, random.Random(rng.random())) for t in DeviceType]
        out = []
        for step in range(50):
            t = 1_777_600_000.0 + step * 30.0
            for m in models:
                if step == 20:
                    m.begin("incident", t, {"readings": 3})
                out.append(m.fields(t))
        return out

    assert readings(3) == readings(3)
    assert readings(3) != readings(4)


def test_cbrain_simulate_site_writes_a_file_the_service_accepts(tmp_path: Path) -> None:
    out = tmp_path / "street.yaml"
    args = ["simulate-site", "--out", str(out), "--communities", "2", "--buildings", "3", "--devices-per-building", "4"]
    made = subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, cwd=REPO)
    assert made.returncode == 0, made.stderr
    checked = subprocess.run([sys.executable, "-m", "app.cli", "config", "check", str(out)], capture_output=True,
                             text=True, cwd=REPO)
    assert checked.returncode == 0 and "2 communities, 24 devices" in checked.stdout
    bad = subprocess.run([sys.executable, "-m", "app.cli", "simulate-site", "--out", str(out), "--communities", "0"],
                         capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and "must be at least 1" in bad.stderr
