"""Shelters, supplies and door knocks as the API (app/http/resources.py) and the pages (app/web/resources.py)
see them, with who may do what and who may see whom (CONTRACT §13): a vulnerable resident's details only
to the grid worker of their grid, their community and admins; the street office and the bureau see counts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from alerts.runner import AlertsRunner
from app.audit import INSERT as AUDIT_INSERT
from app.audit import SCHEMA as AUDIT_SCHEMA
from app.audit import audit_row
from app.auth import Principal
from kernel.alerting import Level
from kernel.clock import NS, Clock, rfc3339
from kernel.errors import Reason, Refused
from kernel.ids import UNKNOWN
from kernel.metrics import Registry
from kernel.resources import ON_HAND_LEVELS, incident_of
from kernel.settings import Scope, Settings, Shelter, Supply
from kernel.site import Site
from kernel.writes import Write
from resources.book import KnockList, ResourceBook
from resources.catalog import Catalog
from resources.runner import ResourcesRunner
from resources.store import MOVEMENT_COLUMNS, SELECT_MOVEMENTS

# The norm of GB/T 44012-2024 for a community's shelters: room for at least 15 % of its residents.
SHELTER_NORM = 0.15
ON_HAND_SHELTERS, ON_HAND_SUPPLIES = 5, 10
Select = Callable[..., Any]


def may_see_people(who: Principal, community: str, grid: str) -> bool:
    """Whether the caller may see vulnerable residents' details at this place (admins, the community,
    the grid worker of the grid)."""
    if who.role == "admin":
        return True
    s = who.scope
    if who.role == "community":
        return s is None or s.community in (None, community)
    if who.role == "grid_worker":
        return s is not None and s.community == community and s.grid == grid
    return False


def _by(who: Principal) -> str:
    return who.recipient or who.role


class ResourceView:
    """The site's resources, their live stock and occupancy, and the actions on them."""

    def __init__(self, settings: Settings, site: Site, clock: Clock, book: ResourceBook,
                 runner: ResourcesRunner | None, select: Select) -> None:
        self.settings = settings
        self.site = site
        self.clock = clock
        self.book = book
        self.catalog: Catalog = book.catalog
        self.runner = runner
        self._select = select
        self._roles = {r.id: r.role for r in settings.recipients}

    def _runner(self) -> ResourcesRunner:
        if self.runner is None:
            raise Refused(Reason.UNAVAILABLE, "shelters, supplies and door knocks are not served by a cluster yet")
        return self.runner

    async def recover(self, script: Callable[..., Any], open_alerts: Any) -> None:
        """Restore stock, occupancy, conditions and door knocks (runner: ResourcesRunner.recover); the audit
        log's table, which every change writes to."""
        await script(AUDIT_SCHEMA)
        await self._runner().recover(script, self._select, open_alerts)

    async def run(self) -> None:
        """The resources' deadlines."""
        await self._runner().run()

    def enabled(self) -> bool:
        """Whether the site lists any shelter, supply or vulnerable resident."""
        return bool(self.catalog.shelters or self.catalog.supplies or self.catalog.vulnerable)

    # ---- supplies --------------------------------------------------------------------------------

    def supply_object(self, community: str, s: Supply) -> dict[str, Any]:
        """The API's supply: the site file's fields with the stock as `quantity`, and what it says now."""
        today = datetime.fromtimestamp(self.clock.now_ns() / NS, self.book.zone).date()
        days = (s.expires - today).days if s.expires is not None else None
        q = self.book.stock[s.id]
        return {"id": s.id, "community": community, "code": s.code, "name": s.name, "unit": s.unit, "quantity": q,
                "min_quantity": s.min_quantity, "kind": list(s.kind), "place": s.place, "building": s.building,
                "location": s.location.model_dump(exclude_none=True) if s.location else None, "keeper": s.keeper,
                "tier": s.tier, "expires": s.expires.isoformat() if s.expires else None, "days_left": days,
                "grid": self.catalog.supply_grid(community, s),
                "expired": days is not None and days < 0, "short": q < s.min_quantity,
                "expiring": days is not None and 0 <= days <= self.settings.resources.expiring_within_days}

    def supplies(self, scope: Scope | None, *, community: str | None = None, kind: str | None = None,
                 expiring_within_days: int | None = None) -> list[dict[str, Any]]:
        """The supplies in scope (every grid of a community sees its community's), filtered."""
        out = []
        for c, s in self.catalog.supplies.values():
            if not self._community_in(scope, c) or community not in (None, c) or kind not in (None, *s.kind):
                continue
            item = self.supply_object(c, s)
            if expiring_within_days is not None and (item["days_left"] is None
                                                     or item["days_left"] > expiring_within_days):
                continue
            out.append(item)
        return sorted(out, key=lambda x: (x["community"], x["place"], x["name"]))

    def _community_in(self, scope: Scope | None, community: str) -> bool:
        return scope is None or scope.community in (None, community)

    def may_move(self, who: Principal, supply_id: str) -> bool:
        """The keeper, the keeper's community, the street office and admins."""
        c, s = self.catalog.supplies[supply_id]
        return (who.role in ("admin", "street_office") or who.recipient == s.keeper
                or (who.role == "community" and self._community_in(who.scope, c)))

    async def move(self, who: Principal, supply_id: str, delta: int, reason: str, note: str | None,
                   client: str | None) -> dict[str, Any]:
        """A stock movement by the caller, with its row in the audit log; the supply as it is now."""
        found = self.catalog.supplies.get(supply_id)
        if found is None or not self._community_in(who.scope, found[0]):
            raise Refused(Reason.NOT_FOUND, "no such supply")
        if not self.may_move(who, supply_id):
            raise Refused(Reason.FORBIDDEN, "only the keeper, their community, the street office and admins "
                          "move a supply's stock")
        community, s = found

        def audit(quantity: int, now: int) -> list[Write]:
            return [(AUDIT_INSERT, [audit_row(now, _by(who), who.role, client, "supply_movement", supply_id, community,
                                              self.catalog.supply_grid(community, s), note,
                                              {"delta": delta, "reason": reason, "quantity": quantity})])]

        await self._runner().move(supply_id, delta, reason, note, _by(who), who.role, audit)
        return self.supply_object(community, s)

    async def movements(self, scope: Scope | None, *, community: str | None = None, supply_id: str | None = None,
                        since_ns: int | None = None, limit: int = 10_000) -> list[dict[str, Any]]:
        """The ledger, oldest first, of the supplies in scope."""
        if community is None and scope is not None and scope.community is not None:
            community = scope.community  # in the query: the limit counts the caller's rows, not the street's
        where, args = [], []
        for clause, value in (("community = ?", community), ("supply_id = ?", supply_id), ("at_ns >= ?", since_ns)):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = f"{SELECT_MOVEMENTS}{' WHERE ' + ' AND '.join(where) if where else ''} ORDER BY seq LIMIT ?"
        rows = await self._select(sql, (*args, limit))
        out = []
        for row in rows:
            m = dict(zip(MOVEMENT_COLUMNS, row, strict=True))
            if not self._community_in(scope, m["community"]):
                continue
            found = self.catalog.supplies.get(m["supply_id"])
            m["name"] = found[1].name if found else m["supply_id"]
            m["unit"] = found[1].unit if found else ""
            m["at"] = rfc3339(m.pop("at_ns"))
            out.append(m)
        return out

    # ---- shelters --------------------------------------------------------------------------------

    def shelter_object(self, community: str, sh: Shelter) -> dict[str, Any]:
        """The API's shelter: the site file's fields with `occupancy` and when it was last counted."""
        occ = self.book.occupancy[sh.id]
        return {"id": sh.id, "community": community, "name": sh.name, "capacity": sh.capacity,
                "location": sh.location.model_dump(exclude_none=True) if sh.location else None,
                "manager": sh.manager, "occupancy": occ, "occupancy_at": rfc3339(self.book.occupancy_at.get(sh.id)),
                "share": round(occ / sh.capacity, 3)}

    def shelters(self, scope: Scope | None, *, community: str | None = None) -> list[dict[str, Any]]:
        """The shelters of the communities in scope."""
        return [self.shelter_object(c, sh) for c, sh in self.catalog.shelters.values()
                if self._community_in(scope, c) and community in (None, c)]

    def capacity(self, community: str) -> dict[str, Any]:
        """A community's shelter capacity against its residents and the 15 % norm."""
        cap = sum(sh.capacity for c, sh in self.catalog.shelters.values() if c == community)
        residents = self.catalog.residents.get(community, 0)
        share = round(cap / residents, 3) if residents else None
        return {"community": community, "shelter_capacity": cap, "residents": residents or None,
                "capacity_per_resident": share, "norm": SHELTER_NORM,
                "meets_norm": None if share is None else share >= SHELTER_NORM}

    def may_occupy(self, who: Principal, shelter_id: str) -> bool:
        """Whether the caller reports a shelter's occupancy (as occupy allows): its manager, its community, the
        street office and admins."""
        community, sh = self.catalog.shelters[shelter_id]
        return (who.role in ("admin", "street_office") or who.recipient == sh.manager
                or (who.role == "community" and self._community_in(who.scope, community)))

    async def occupy(self, who: Principal, shelter_id: str, count: int, client: str | None) -> dict[str, Any]:
        """A shelter's occupancy counted by its manager, its community or the street office (or an admin)."""
        found = self.catalog.shelters.get(shelter_id)
        if found is None or not self._community_in(who.scope, found[0]):
            raise Refused(Reason.NOT_FOUND, "no such shelter")
        community, sh = found
        if not (who.role in ("admin", "street_office") or who.recipient == sh.manager
                or (who.role == "community" and self._community_in(who.scope, community))):
            raise Refused(Reason.FORBIDDEN, "only the shelter's manager, its community, the street office and "
                          "admins report its occupancy")

        def audit(now: int) -> list[Write]:
            return [(AUDIT_INSERT, [audit_row(now, _by(who), who.role, client, "shelter_occupancy", shelter_id,
                                              community, None, None, {"count": count})])]

        await self._runner().occupy(shelter_id, count, _by(who), audit)
        return self.shelter_object(community, sh)

    # ---- with an alert ---------------------------------------------------------------------------

    def on_hand(self, alert: dict[str, Any]) -> dict[str, Any]:
        """For an orange or red alert of a building: its nearest shelters and the supplies that fit (empty
        for any other alert)."""
        community, building = alert["community"], alert["building"]
        incident = incident_of(alert["rule"])
        if Level(alert["level"]) not in ON_HAND_LEVELS or building == UNKNOWN or incident is None:
            return {}
        shelters = [{"id": sh.id, "name": sh.name, "community": c, "distance_m": d, "capacity": sh.capacity,
                     "occupancy": self.book.occupancy[sh.id]}
                    for d, c, sh in self.catalog.shelters_near(community, building)[:ON_HAND_SHELTERS]]
        supplies = [{"id": s.id, "name": s.name, "quantity": self.book.stock[s.id], "unit": s.unit, "place": s.place,
                     "keeper": s.keeper, "distance_m": d, "kind": list(s.kind)}
                    for d, s in self.catalog.supplies_for(community, building, incident)[:ON_HAND_SUPPLIES]]
        return {"incident": incident, "shelters": shelters, "supplies": supplies}

    def on_hand_text(self, alert: dict[str, Any], *, zh: bool) -> str | None:
        """The nearest shelter and the first supplies, in one short line for the people on site."""
        found = self.on_hand(alert)
        if not found or not (found["shelters"] or found["supplies"]):
            return None
        parts = []
        if found["shelters"]:
            sh = found["shelters"][0]
            far = f" {sh['distance_m']:g} m" if sh["distance_m"] is not None else ""
            parts.append(f"避难场所 {sh['name']}{far}（容量 {sh['capacity']}，已有 {sh['occupancy']}）" if zh else
                         f"shelter {sh['name']}{far} (capacity {sh['capacity']}, {sh['occupancy']} there)")
        for s in found["supplies"][:2]:
            parts.append(f"{s['name']} {s['quantity']}{s['unit']}（{s['place']}）" if zh else
                         f"{s['name']} ×{s['quantity']} ({s['place']})")
        return ("；".join(parts)) if zh else "; ".join(parts)

    def door_knocks(self, who: Principal, alert: dict[str, Any]) -> dict[str, Any]:
        """An alert's door knocks: each one for those who may see the residents, the counts for everyone."""
        kl = self.book.lists.get(alert["id"])
        if kl is None:
            return {}
        out: dict[str, Any] = {"door_knocks_summary": kl.counts() | {"due_at": rfc3339(kl.due_ns),
                                                                      "escalated": kl.escalated}}
        if may_see_people(who, kl.community, kl.grid):
            out["door_knocks"] = [self._knock_object(kl, k.vulnerable_id) for k in kl.knocks.values()]
        return out

    def _knock_object(self, kl: KnockList, vid: str) -> dict[str, Any]:
        k = kl.knocks[vid]
        found = self.catalog.vulnerable.get(vid)
        v = found[1] if found else None
        return {"vulnerable_id": vid, "status": k.status.value, "by": k.actor, "at": rfc3339(k.at_ns), "note": k.note,
                "unit": v.unit if v else None, "room": v.room if v else None,
                "category": v.category if v else None, "name": v.name if v else None,
                "contact": v.contact if v else None, "needs": v.needs if v else None}

    async def knock(self, who: Principal, alert: dict[str, Any], vulnerable_id: str, status: str,
                    note: str | None, client: str | None) -> dict[str, Any]:
        """A door knock recorded by the grid worker of the building's grid, its community or an admin."""
        kl = self.book.lists.get(alert["id"])
        if kl is None:
            raise Refused(Reason.NOT_FOUND, "this alert has no door knocks")
        if not may_see_people(who, kl.community, kl.grid):
            raise Refused(Reason.FORBIDDEN, "door knocks are recorded by the grid worker of the building's grid, "
                          "its community and admins")

        def audit(kl: KnockList, now: int) -> list[Write]:
            return [(AUDIT_INSERT, [audit_row(now, _by(who), who.role, client, "door_knock", kl.alert_id,
                                              kl.community, kl.grid, None,
                                              {"vulnerable_id": vulnerable_id, "status": status})])]

        await self._runner().knock(alert["id"], vulnerable_id, status, note, _by(who), audit)
        return self.door_knocks(who, alert)

    def extra_for(self, alert: dict[str, Any], recipient: str) -> dict[str, Any]:
        """A notification's `on_hand` (the nearest shelter and the first supplies that fit) for the people on
        site: the grid worker and the community."""
        if self._roles.get(recipient) not in ("grid_worker", "community") or alert.get("status") == "resolved":
            return {}
        text = self.on_hand_text(alert, zh=self.settings.locale != "en")
        return {"on_hand": text} if text else {}


def make_resources(settings: Settings, site: Site, clock: Clock, metrics: Registry, select: Select,
                   alerts: AlertsRunner) -> ResourceView:
    """The resources' book and runner, wired to the alerts: their rules raise alerts through the alerts'
    commit, a red building alert opens its door knocks, a notification to the people on site says what is on hand."""
    book = ResourceBook(Catalog(settings))
    runner = ResourcesRunner(book, clock, metrics, alerts.apply)
    view = ResourceView(settings, site, clock, book, runner, select)
    alerts.event_listeners.append(runner.alert_events)
    alerts.manager.extra_for = view.extra_for
    return view
