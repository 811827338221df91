"""Where a building, a device, a shelter or a supply is."""

from __future__ import annotations

from pydantic import Field, model_validator

from kernel.settings.base import _Model


class Location(_Model):
    """Where a building or device is: coordinates (lat and lon together, in the coordinate system of
    the map's tiles: GCJ-02 for Chinese web maps) and a text that people read ("3号楼2单元一楼")."""

    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    text: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _both_or_neither(self) -> Location:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("give lat and lon together")
        return self
