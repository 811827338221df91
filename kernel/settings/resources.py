"""What a community has for a bad day (CONTRACT §13): its shelters (避难场所), its emergency supplies kept
in tiers (云仓储, coded by GB/T 38565-2020) and the vulnerable residents somebody must reach in person.
All optional; `check_resources` checks their references with the site file's locations."""

from __future__ import annotations

import re
from datetime import date
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from kernel.ids import Identifier
from kernel.settings.base import _Model
from kernel.settings.location import Location
from kernel.settings.problems import ReferenceProblem

if TYPE_CHECKING:
    from kernel.settings.site_file import Settings

# What a supply is for: the incidents it fits (an alert's incident: kernel/resources.py).
SupplyKind = Literal["fire", "flood", "medical", "power", "rescue", "living"]
SupplyTier = Literal["community", "school", "supermarket", "household"]
VulnerableCategory = Literal["elderly_alone", "bedridden", "disabled", "chronically_ill", "other"]


class Shelter(_Model):
    """An emergency shelter (避难场所) the community's residents go to, and who updates its occupancy."""

    id: Identifier
    name: str = Field(min_length=1, max_length=100)
    capacity: int = Field(gt=0, le=1_000_000)  # people
    location: Location | None = None
    manager: Identifier | None = None  # a recipient: the one who reports the occupancy from a phone


class Supply(_Model):
    """An emergency supply kept in stock: what (its 7-digit GB/T 38565-2020 code), how many at the start (the
    stock then moves by the ledger), the least to keep, what incidents it fits, where, who keeps it, until when."""

    id: Identifier
    code: str = Field(pattern=r"^[0-9]{7}$")
    name: str = Field(min_length=1, max_length=100)
    unit: str = Field(min_length=1, max_length=20)
    quantity: int = Field(ge=0, le=10_000_000)
    min_quantity: int = Field(default=0, ge=0, le=10_000_000)
    kind: list[SupplyKind] = []
    place: str = Field(min_length=1, max_length=200)
    building: Identifier | None = None  # where it is kept, when that is one of the community's buildings
    location: Location | None = None
    keeper: Identifier  # a recipient
    tier: SupplyTier = "community"
    expires: date | None = None  # the last day it may be used

    @field_validator("code", mode="before")
    @classmethod
    def _seven_digits(cls, value: object) -> object:
        # Unquoted, YAML reads the code as a number and drops its leading zeros: say so, not "a valid string".
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(f'write the code in quotes, e.g. code: "1010101" (unquoted, {value!r} is read as a '
                             "number and loses any leading zeros)")
        if not isinstance(value, str) or not re.fullmatch(r"[0-9]{7}", value):
            raise ValueError(f"a supply's code is the 7 digits of GB/T 38565-2020, e.g. \"1010101\", not {value!r}")
        return value


class Vulnerable(_Model):
    """A resident who must be reached in person when their building burns or floods. Personal data: only
    the grid worker of their grid, their community and admins see it (CONTRACT §13); never logged."""

    id: Identifier
    building: Identifier
    unit: str | None = Field(default=None, max_length=20)
    room: str | None = Field(default=None, max_length=20)
    category: VulnerableCategory
    name: str | None = Field(default=None, max_length=50)
    contact: str | None = Field(default=None, max_length=100)
    needs: str | None = Field(default=None, max_length=200)  # a wheelchair, oxygen, a carer's number


def check_resources(settings: Settings) -> None:
    """Ids unique across the site (the API names them alone); keepers and managers are listed recipients;
    a supply's building and a vulnerable resident's are the community's."""
    recipients = {r.id for r in settings.recipients}
    seen: dict[str, dict[str, tuple[str | int, ...]]] = {"shelter": {}, "supply": {}, "vulnerable resident": {}}
    for ci, c in enumerate(settings.communities):
        buildings = {b.id for b in c.buildings}
        loc: tuple[str | int, ...] = ("communities", ci)
        lists: tuple[tuple[str, str, list[str]], ...] = (
            ("shelter", "shelters", [x.id for x in c.shelters]), ("supply", "supplies", [x.id for x in c.supplies]),
            ("vulnerable resident", "vulnerable", [x.id for x in c.vulnerable]))
        for kind, key, ids in lists:
            for i, item_id in enumerate(ids):
                if item_id in seen[kind]:
                    raise ReferenceProblem((*loc, key, i, "id"), f"{kind} {item_id!r} is listed twice")
                seen[kind][item_id] = (*loc, key, i)
        for i, sh in enumerate(c.shelters):
            if sh.manager is not None and sh.manager not in recipients:
                raise ReferenceProblem((*loc, "shelters", i, "manager"),
                                       f"shelter {sh.id!r} names manager {sh.manager!r}, "
                                       "which is not a listed recipient")
        for i, s in enumerate(c.supplies):
            if s.keeper not in recipients:
                raise ReferenceProblem((*loc, "supplies", i, "keeper"),
                                       f"supply {s.id!r} names keeper {s.keeper!r}, which is not a listed recipient")
            if s.building is not None and s.building not in buildings:
                raise ReferenceProblem((*loc, "supplies", i, "building"), f"supply {s.id!r} names building "
                                       f"{s.building!r}, which community {c.id!r} lacks")
        for i, v in enumerate(c.vulnerable):
            if v.building not in buildings:
                raise ReferenceProblem((*loc, "vulnerable", i, "building"), f"vulnerable resident {v.id!r} "
                                       f"names building {v.building!r}, which community {c.id!r} lacks")


class ResourceSettings(_Model):
    """How shelters, supplies and door knocks behave (CONTRACT §13)."""

    # A red building alert's door knocks not all done within this time: the community is told
    # (rule door_knocks.late).
    door_knock_within_s: float = Field(default=900.0, gt=0, le=86_400)
    # supplies.expiring fires this many days before a supply's last day.
    expiring_within_days: int = Field(default=30, ge=1, le=365)
    # Other communities' shelters shown with a building's alert when within this distance.
    shelter_radius_m: float = Field(default=1000.0, gt=0, le=50_000)


class ResilienceSettings(_Model):
    """The resilience scorecard (docs/resilience.md)."""

    # Every community's scorecard is written to the reading store (measurement `resilience`) at start and
    # this often (at least daily).
    history_interval_s: float = Field(default=86_400.0, ge=60, le=86_400)
