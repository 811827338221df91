"""`cbrain routes test`: who would be told of an alert, from the site file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SITE = str(Path(__file__).resolve().parents[2] / "examples" / "site.yaml")


def routes(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", "routes", "test", "--config", SITE, *args],
                          capture_output=True, text=True, timeout=30, cwd=Path(__file__).resolve().parents[2])


@pytest.mark.parametrize(("args", "told"), [
    (("--community", "linfen-yicun", "--device", "sd-b01-0501", "--level", "blue"), ["worker-g1"]),
    (("--community", "linfen-yicun", "--device", "sd-b01-0501", "--level", "orange"),
     ["worker-g1", "committee-yicun", "street-office"]),
    (("--community", "linfen-yicun", "--building", "b03", "--level", "red"),
     ["worker-g2", "committee-yicun", "street-office", "bureau"]),
    (("--community", "linfen-ercun", "--device", "wl-garage", "--level", "yellow", "--escalations", "1"),
     ["worker-g3", "committee-ercun", "street-office"]),
    # A device the site does not place goes to its community's recipients.
    (("--community", "linfen-ercun", "--device", "not-listed", "--level", "blue"), ["committee-ercun"]),
])
def test_routes_follow_section_4(args: tuple[str, ...], told: list[str]) -> None:
    result = routes(*args)
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()[1:]] == told


def test_an_unknown_community_is_a_one_line_error() -> None:
    result = routes("--community", "nowhere", "--level", "blue")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
