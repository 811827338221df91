"""The site: its street, communities, grids, buildings, devices and the duty roster."""

from __future__ import annotations

from datetime import date

from pydantic import Field, model_validator

from kernel.ids import DeviceType, Identifier
from kernel.settings.base import _Model
from kernel.settings.location import Location
from kernel.settings.resources import Shelter, Supply, Vulnerable


class Duty(_Model):
    """A duty of the roster (网格员, 社区应急负责人, 街道值班): its A person, and the B person called when A does
    not answer (recipient ids)."""

    duty: str = Field(min_length=1, max_length=40)
    a: Identifier
    b: Identifier | None = None


class Street(_Model):
    """The street office the site belongs to."""

    id: Identifier
    name: str
    # The street's duties (街道值班) and when their roster was last verified.
    duties: list[Duty] = []
    roster_verified: date | None = None


class Grid(_Model):
    """A grid (网格) of a community, with its grid worker."""

    id: Identifier
    name: str
    duties: list[Duty] = []


class Building(_Model):
    """A building of a community, in one grid."""

    id: Identifier
    name: str
    grid: Identifier
    location: Location | None = None
    # Who lives there: for shelter capacity per resident and the resilience figures (CONTRACT §13).
    households: int | None = Field(default=None, ge=0, le=100_000)
    residents: int | None = Field(default=None, ge=0, le=1_000_000)


class Community(_Model):
    """A community (社区/小区)."""

    id: Identifier
    name: str
    grids: list[Grid] = []
    buildings: list[Building] = []
    # The community's duties (社区应急负责人), and when the roster of the community and its grids was last verified.
    duties: list[Duty] = []
    roster_verified: date | None = None
    # What it has for a bad day (CONTRACT §13, kernel/settings/resources.py).
    shelters: list[Shelter] = []
    supplies: list[Supply] = []
    vulnerable: list[Vulnerable] = []


class DeviceEntry(_Model):
    """A registered device and where it is."""

    id: Identifier
    type: DeviceType
    community: Identifier
    building: Identifier | None = None
    name: str | None = None
    location: Location | None = None
    # A device that reports through another system (docs/devices.md, "Connecting the devices you
    # have"): the source's id, its address there, the channel of a multi-channel address (a power
    # strip's socket, from 1), its own profile (overriding the source's) and the variables its
    # profile or codec reads (e.g. a distance sensor's mounting height).
    source: Identifier | None = None
    address: str | None = Field(default=None, min_length=1, max_length=256)
    port: int | None = Field(default=None, ge=1, le=64)
    profile: Identifier | None = None
    vars: dict[str, float | str] = {}
    # How often it reports when nothing happens, if not as often as its type (seconds): a battery
    # device's heartbeat. Its source's, or its type's, otherwise.
    expected_interval_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _source_fields(self) -> DeviceEntry:
        if self.source is None:
            extra = [k for k in ("address", "port", "profile") if getattr(self, k) is not None]
            if extra:
                raise ValueError(f"{extra[0]} needs source (the system the device reports through)")
        elif self.address is None:
            raise ValueError(f"a device of source {self.source!r} needs its address there")
        return self
