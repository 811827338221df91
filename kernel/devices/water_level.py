"""Water-level gauge (水位计): depth above the site's reference, rain intensity."""

from __future__ import annotations

from pydantic import Field

from kernel.alerting import Level
from kernel.devices import FieldInfo, Plot, register
from kernel.reading import ReadingPayload


class WaterLevelPayload(ReadingPayload):
    """A water-level gauge's reading."""

    level_cm: float = Field(ge=-500, le=2000)
    rain_mm_h: float | None = Field(default=None, ge=0)


KIND = register(
    "water_level", WaterLevelPayload, expected_interval_s=60.0, id_prefix="wl",
    zh="水位计", en="water gauge",
    fields={
        "level_cm": FieldInfo("积水深度", "water depth", "cm"),
        "rain_mm_h": FieldInfo("降雨强度", "rain", "mm/h"),
    },
    plots=(
        # water.level's default thresholds; the wall shows the deepest water of each community.
        Plot("level_cm", "mean", bands=((10.0, Level.BLUE), (15.0, Level.YELLOW), (25.0, Level.ORANGE),
                                        (40.0, Level.RED)), wall=True),
    ),
    rule_titles={
        "water.level": ("积水", "standing water"),
        "water.rising": ("水位快速上涨", "water rising fast"),
    },
)
