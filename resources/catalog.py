"""The site file's shelters, supplies and vulnerable residents, indexed: by id, by community and building,
and what lies nearest a building (CONTRACT §13, "With an alert")."""

from __future__ import annotations

from dataclasses import dataclass

from kernel.ids import UNKNOWN
from kernel.resources import distance_m
from kernel.settings import Location, Settings, Shelter, Supply, Vulnerable


@dataclass(frozen=True, slots=True)
class Placed:
    """A shelter or supply with its community, and where it is when known."""

    community: str
    lat: float | None
    lon: float | None


class Catalog:
    """Lookups over the site file's resources; no state (stock and occupancy are the book's)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.shelters: dict[str, tuple[str, Shelter]] = {}
        self.supplies: dict[str, tuple[str, Supply]] = {}
        self.vulnerable: dict[str, tuple[str, Vulnerable]] = {}
        self.by_building: dict[tuple[str, str], list[Vulnerable]] = {}
        self._buildings: dict[tuple[str, str], tuple[Location | None, str]] = {}
        self.residents: dict[str, int] = {}  # community -> residents, summed over its buildings that say
        self.grid_of_recipient = {r.id: (r.scope.community, r.scope.grid) for r in settings.recipients}
        for c in settings.communities:
            for b in c.buildings:
                self._buildings[(c.id, b.id)] = (b.location, b.grid)
                self.residents[c.id] = self.residents.get(c.id, 0) + (b.residents or 0)
            for sh in c.shelters:
                self.shelters[sh.id] = (c.id, sh)
            for s in c.supplies:
                self.supplies[s.id] = (c.id, s)
            for v in c.vulnerable:
                self.vulnerable[v.id] = (c.id, v)
                self.by_building.setdefault((c.id, v.building), []).append(v)

    def building_grid(self, community: str, building: str) -> str:
        """The grid of a building (UNKNOWN when the site file does not list it)."""
        found = self._buildings.get((community, building))
        return found[1] if found else UNKNOWN

    def supply_grid(self, community: str, s: Supply) -> str:
        """The grid a supply's alerts go to: its keeper's, else its building's."""
        kc, kg = self.grid_of_recipient.get(s.keeper, (None, None))
        if kc == community and kg is not None:
            return kg
        return self.building_grid(community, s.building) if s.building else UNKNOWN

    def where(self, community: str, building: str | None, location: Location | None) -> tuple[float, float] | None:
        """Coordinates: the item's own, else its building's."""
        if location is not None and location.lat is not None and location.lon is not None:
            return location.lat, location.lon
        if building is not None:
            found = self._buildings.get((community, building))
            if found and found[0] is not None and found[0].lat is not None and found[0].lon is not None:
                return found[0].lat, found[0].lon
        return None

    def distance(self, community: str, building: str, there: tuple[float, float] | None) -> float | None:
        """Metres from a building to a place, None when either has no coordinates."""
        here = self.where(community, building, None)
        if here is None or there is None:
            return None
        return round(distance_m(here[0], here[1], there[0], there[1]))

    def shelters_near(self, community: str, building: str) -> list[tuple[float | None, str, Shelter]]:
        """The community's shelters and other communities' within the radius, nearest first (those without
        coordinates last): (distance in m or None, community, shelter)."""
        radius = self.settings.resources.shelter_radius_m
        out = []
        for c, sh in self.shelters.values():
            d = self.distance(community, building, self.where(c, None, sh.location))
            if c == community or (d is not None and d <= radius):
                out.append((d, c, sh))
        return sorted(out, key=lambda x: (x[0] is None, x[0] or 0.0))

    def supplies_for(self, community: str, building: str, incident: str) -> list[tuple[float | None, Supply]]:
        """The community's supplies that fit the incident, nearest the building first: (distance, supply)."""
        out = []
        for c, s in self.supplies.values():
            if c != community or incident not in s.kind:
                continue
            d = 0.0 if s.building == building else self.distance(community, building,
                                                                  self.where(c, s.building, s.location))
            out.append((d, s))
        return sorted(out, key=lambda x: (x[0] is None, x[0] or 0.0))
