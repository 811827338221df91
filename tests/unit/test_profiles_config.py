"""Profiles and sources in the site file: what `cbrain config check` says (file:line), the mapping's
options, and `cbrain profiles test`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.config import load_settings
from ingest.sources.mapping import CompiledProfile
from kernel.errors import ConfigError
from kernel.settings.profiles import Profile
from tests.sources_kit import BASE

REPO = Path(__file__).parents[2]

SOURCES = """
sources:
  - {id: aep, type: ctwing, token: "a secret token"}
"""
DEVICE = """
devices:
  - {id: sd-1, type: smoke_detector, community: linfen-yicun, source: aep, address: dev1, profile: mine}
"""


def site(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(BASE + text, encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    return str(caught.value)


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_a_bad_jmespath_is_named_with_its_line(tmp_path: Path) -> None:
    path = site(tmp_path, SOURCES + DEVICE + """
profiles:
  - id: mine
    device_type: smoke_detector
    fields:
      alarm: {path: "payload.serviceData.[Alarm"}
""")
    msg = error_of(path)
    assert msg.startswith(f"{path}:{line_of(path, 'Alarm')}:") and "not a JMESPath expression" in msg


def test_a_field_the_device_type_lacks(tmp_path: Path) -> None:
    path = site(tmp_path, SOURCES + DEVICE + """
profiles:
  - id: mine
    device_type: smoke_detector
    fields:
      level_cm: {path: a}
""")
    msg = error_of(path)
    assert f"{path}:{line_of(path, 'level_cm')}" in msg and "'level_cm' is not a field of smoke_detector" in msg


def test_a_profile_nobody_uses(tmp_path: Path) -> None:
    path = site(tmp_path, SOURCES + DEVICE + """
profiles:
  - id: mine
    device_type: smoke_detector
    fields: {alarm: {path: a}}
  - id: spare
    device_type: smoke_detector
    fields: {alarm: {path: a}}
""")
    msg = error_of(path)
    assert msg.startswith(f"{path}:{line_of(path, 'spare')}:") and "'spare' is not used" in msg


def test_a_profile_file_names_its_own_lines(tmp_path: Path) -> None:
    (tmp_path / "profiles.yaml").write_text("""# ours
- id: mine
  device_type: smoke_detector
  fields: {alarm: {path: a}}
- id: unused
  device_type: smoke_detector
  fields: {alarm: {path: a}}
""", encoding="utf-8")
    path = site(tmp_path, SOURCES + DEVICE + "profile_files: [profiles.yaml]\n")
    msg = error_of(path)
    assert msg.startswith(f"{tmp_path / 'profiles.yaml'}:5:") and "'unused' is not used" in msg
    (tmp_path / "profiles.yaml").write_text("- id: mine\n  device_type: smoke_detector\n  fields: {alarm: {}}\n")
    assert error_of(path).startswith(f"{tmp_path / 'profiles.yaml'}:3:")


@pytest.mark.parametrize(("text", "needle", "says"), [
    (SOURCES + "devices:\n  - {id: sd-1, type: smoke_detector, community: linfen-yicun, source: aep, address: d}\n",
     "sd-1", "whose messages need a profile"),
    (SOURCES + "devices:\n  - {id: sd-1, type: water_level, community: linfen-yicun, source: aep, address: d,\n"
     "     profile: nb-smoke}\n", "profile: nb-smoke",
     "is a water_level but its profile 'nb-smoke' makes smoke_detector"),
    ("sources: [{id: lora, type: chirpstack}]\ndevices:\n  - {id: wl-1, type: water_level, community: linfen-yicun,\n"
     "     source: lora, address: a8, profile: dds75-lb}\n", "wl-1", "reads variable 'mount_height_cm'"),
    ("devices:\n  - {id: sd-1, type: smoke_detector, community: linfen-yicun, source: nowhere, address: d}\n",
     "sd-1", "names source 'nowhere'"),
    ("sources: [{id: z, type: zigbee2mqtt}]\ndevices:\n"
     "  - {id: sd-1, type: smoke_detector, community: linfen-yicun, source: z, address: d, port: 2}\n",
     "sd-1", "has no ports"),
    ("sources: [{id: z, type: zigbee2mqtt}]\ndevices:\n"
     "  - {id: sd-1, type: smoke_detector, community: linfen-yicun, source: z, address: d}\n"
     "  - {id: sd-2, type: smoke_detector, community: linfen-yicun, source: z, address: d}\n",
     "sd-2", "has the address of device 'sd-1'"),
    ("sources: [{id: z, type: zigbee9000}]\n", "zigbee9000", "type is one of chirpstack, ctwing"),
    ("sources: [{id: m, type: onenet}]\n", "onenet", "token"),
])
def test_references_between_sources_profiles_and_devices(tmp_path: Path, text: str, needle: str, says: str) -> None:
    path = site(tmp_path, text)
    msg = error_of(path)
    assert msg.startswith(f"{path}:{line_of(path, needle)}:"), msg
    assert says in msg


def test_a_used_codec_that_is_not_there(tmp_path: Path) -> None:
    path = site(tmp_path, """
sources: [{id: lora, type: chirpstack, profile: mine}]
devices:
  - {id: sd-1, type: smoke_detector, community: linfen-yicun, source: lora, address: a8}
profiles:
  - id: mine
    device_type: smoke_detector
    codec: codecs/nowhere.js
    fields: {alarm: {path: object.alarm}}
""")
    msg = error_of(path)
    assert msg.startswith(f"{path}:{line_of(path, 'nowhere.js')}:") and "cannot be read" in msg


def profile(fields: dict[str, object]) -> CompiledProfile:
    return CompiledProfile(Profile.model_validate({"id": "p", "device_type": "water_level", "fields": fields}))


def test_map_default_scale_offset_and_variables() -> None:
    p = profile({"level_cm": {"path": "d", "scale": -0.1, "offset": "mount_height_cm"},
                 "rain_mm_h": {"path": "r", "map": {"1": 5.0, "2": 20}, "default": 0}})
    assert p.fields({"d": 1700, "r": 2}, None, {"mount_height_cm": 180}) == {"level_cm": pytest.approx(10.0),
                                                                             "rain_mm_h": 20}
    assert p.fields({"d": 1700, "r": 9}, None, {"mount_height_cm": 180})["rain_mm_h"] == 0
    assert p.fields({"r": 1.0}, None, {}) == {"rain_mm_h": 5.0}  # 1.0 compares as "1"; no d: level left out
    assert p.fields({"d": [1000, 1500]}, 2, {"mount_height_cm": 200}) == {"level_cm": pytest.approx(50.0)}


def test_default_needs_map() -> None:
    with pytest.raises(ValueError, match="default is what a value not in map becomes"):
        Profile.model_validate({"id": "p", "device_type": "water_level", "fields": {"level_cm": {"path": "a",
                                                                                                  "default": 1}}})


def cbrain(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False)


def test_profiles_test_passes_the_built_in_profiles() -> None:
    done = cbrain("profiles", "test")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS  nb-smoke: smoke alarm" in done.stdout and " 0 failed" in done.stdout


def test_profiles_test_fails_a_wrong_example(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("""- id: mine
  device_type: smoke_detector
  fields: {alarm: {path: s, map: {1: true}, default: false}}
  examples:
    - {name: right, input: {s: 1}, reading: {alarm: true}}
    - {name: wrong, input: {s: 7}, reading: {alarm: true}}
    - {name: rejected, input: {x: 1}, rejected: missing_field}
""", encoding="utf-8")
    done = cbrain("profiles", "test", str(tmp_path / "p.yaml"))
    assert done.returncode == 1
    assert "PASS  mine: right" in done.stdout and "FAIL  mine: wrong" in done.stdout
    assert "PASS  mine: rejected" in done.stdout and "2 passed, 1 failed" in done.stdout


@pytest.mark.parametrize("body", [{"a": {"b": {"c": 3}}}, {"a": {"b": [1, 2]}}, {"a": [{"b": 1}]}, {"a": None},
                                  {"a": {"b": {"c": False}}}, {"a": "text"}, {}, [1, 2], None, {"a": {"b": {}}}])
def test_a_dotted_path_reads_as_jmespath_does(body: object) -> None:
    import jmespath

    for path in ("a", "a.b", "a.b.c"):
        fast = profile({"level_cm": {"path": path}})
        expected = jmespath.search(path, body)
        got = fast.fields(body).get("level_cm")
        assert got == expected and type(got) is type(expected), (path, body)
