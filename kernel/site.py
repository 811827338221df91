"""The site as the running service sees it: where each device is, and what each scope covers."""

from __future__ import annotations

from dataclasses import dataclass

from kernel.ids import UNKNOWN
from kernel.settings import Scope, Settings


@dataclass(frozen=True, slots=True)
class Place:
    """Where a device is."""

    community: str
    building: str = UNKNOWN
    grid: str = UNKNOWN


class Site:
    """Lookups over the site part of the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.street_id = settings.street.id if settings.street else None
        self.communities = {c.id: c for c in settings.communities}
        self._grid_of: dict[tuple[str, str], str] = {
            (c.id, b.id): b.grid for c in settings.communities for b in c.buildings
        }
        self._places: dict[tuple[str, str], Place] = {}
        for d in settings.devices:
            building = d.building or UNKNOWN
            grid = self._grid_of.get((d.community, building), UNKNOWN)
            self._places[(d.community, d.id)] = Place(d.community, building, grid)
        self.registered = {(d.community, d.id): d for d in settings.devices}
        # Devices that report less often than their type (a battery device behind another system):
        # their own expected interval, or their source's.
        sources = {s.id: s for s in settings.sources}
        self._intervals: dict[tuple[str, str], float] = {}
        for d in settings.devices:
            source = sources.get(d.source) if d.source is not None else None
            own = d.expected_interval_s or (source.interval_s() if source is not None else None)
            if own is not None:
                self._intervals[(d.community, d.id)] = own
        # One unplaced Place per community of the site (asked for every reading of an unlisted device).
        self._unplaced = {c: Place(c) for c in self.communities}

    def place(self, community: str, device_id: str) -> Place:
        """The device's place; a device the site does not list is in its topic's community, unplaced."""
        found = self._places.get((community, device_id))
        if found is None:
            found = self._unplaced.get(community)
            if found is None:
                return Place(community)
        return found

    def interval_of(self, community: str, device_id: str) -> float | None:
        """The device's own expected interval (seconds), or None: its type's."""
        return self._intervals.get((community, device_id))

    def grid_of(self, community: str, building: str) -> str:
        """The grid a building is in, or unknown."""
        return self._grid_of.get((community, building), UNKNOWN)

    def in_scope(self, scope: Scope | None, community: str, grid: str) -> bool:
        """Whether a thing in (community, grid) lies inside scope; None means everything."""
        if scope is None:
            return True
        # One service watches one street: a street scope covers every community it monitors.
        if scope.community is not None and scope.community != community:
            return False
        return scope.grid is None or scope.grid == grid
