"""The pages show times in the site's time zone (as their clock does), not the UTC they are kept in."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from app.web.kit import HERE, local_time

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_a_utc_time_reads_as_the_sites_local_time() -> None:
    assert local_time("2026-12-06T14:40:14.123Z", zone=SHANGHAI, fmt="%H:%M:%S") == "22:40:14"
    assert local_time("2026-12-06T23:59:00Z", zone=SHANGHAI, fmt="%Y-%m-%d %H:%M:%S") == "2026-12-07 07:59:00"
    assert local_time(None, zone=SHANGHAI, fmt="%H:%M:%S") == ""
    assert local_time("not a time", zone=SHANGHAI, fmt="%H:%M:%S") == "not a time"


def test_no_template_slices_a_utc_time_for_people_to_read() -> None:
    """Every time on a page goes through the local-time filters (|local, |hms, |mdhm)."""
    for path in Path(HERE / "templates").glob("*.html"):
        text = path.read_text(encoding="utf-8")
        for sliced in ("[11:19]", "[:19]", "[5:16]", "[11:16]"):
            assert sliced not in text, (path.name, sliced)
