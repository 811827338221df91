"""Who is told (docs/alerts.md): the tiers a level reaches, the recipients of each tier, and
the routing tree of the site file that refines them.

The root route is the default of docs/alerts.md: a level reaches its tier (blue: grid worker ... red: bureau), and an
unacknowledged alert escalates one tier at a time up to the bureau, on the level's deadline.
Routes below it (`alerts.routes`) match alerts by level, rule, device type, community, grid or
building; the first matching route is taken (and the next ones too while a route says
`continue`), descending into its own routes. A route may cap the tier (`max_tier`), change the
deadlines (`ack_timeout_s`) and tell more recipients; what it does not set it inherits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from kernel.alerting import ROLES, SERVICE_WIDE, Alert, Level
from kernel.ids import UNKNOWN
from kernel.settings import Recipient, RouteSettings, Settings

# Rules of the service's findings about itself (readings lost before it): they also reach admin recipients.
SERVICE_RULES = "service."
# The supplies' rules (CONTRACT §13) go to the keeper's grid and the community from the first tier, and
# escalate no higher than the community unless a route of the site file says otherwise.
SUPPLY_RULES = "supplies."

# The highest tier (index into ROLES) each level reaches by default.
BASE_TIER: dict[Level, int] = {Level.BLUE: 0, Level.YELLOW: 1, Level.ORANGE: 2, Level.RED: 3}


DEFAULT_ACK_TIMEOUT_S: dict[Level, float] = {Level.RED: 120, Level.ORANGE: 300, Level.YELLOW: 900,
                                             Level.BLUE: 3600}


@dataclass(frozen=True, slots=True)
class Route:
    """What the routing tree decided for an alert."""

    path: tuple[str, ...]
    max_tier: int
    ack_timeout_s: dict[Level, float]
    extra: tuple[str, ...] = ()


class Router:
    """Recipients by tier for an alert's place, from the site file's recipients, scopes and routes."""

    def __init__(self, settings: Settings, ack_timeout_s: dict[Level, float] | None = None) -> None:
        self.recipients = {r.id: r for r in settings.recipients}
        self.street = settings.street.id if settings.street else None
        self.routes = settings.alerts.routes
        self.root = Route(("default",), len(ROLES) - 1, dict(ack_timeout_s or DEFAULT_ACK_TIMEOUT_S))
        self._cache: dict[tuple[str, ...], Route] = {}
        # Caps of one alert's tiers beyond the tree's (a drill alert stops at the street office: alerts/drills.py).
        self.caps: list[Callable[[Alert], int | None]] = []

    def route(self, alert: Alert) -> Route:
        """The route an alert takes through the tree, capped by `caps`."""
        key = (alert.level.value, alert.rule, alert.device_type, alert.community, alert.grid, alert.building)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._resolve(alert)
        for cap in self.caps:
            tier = cap(alert)
            if tier is not None and tier < found.max_tier:
                # Nobody above the cap, not even a recipient the route names.
                above = set(ROLES[tier + 1:])
                found = replace(found, max_tier=tier, extra=tuple(
                    x for x in found.extra if x not in self.recipients or self.recipients[x].role not in above))
        return found

    def _resolve(self, alert: Alert) -> Route:
        values = {"level": alert.level.value, "rule": alert.rule, "device_type": alert.device_type,
                  "community": alert.community, "grid": alert.grid, "building": alert.building}

        def walk(routes: list[RouteSettings], parent: Route) -> list[Route]:
            taken: list[Route] = []
            for i, r in enumerate(routes):
                if not all(values[k] in allowed for k, allowed in r.match.items()):
                    continue
                ack = parent.ack_timeout_s | {Level(k): v for k, v in (r.ack_timeout_s or {}).items()}
                mine = Route((*parent.path, r.name or f"routes[{i}]"),
                             ROLES.index(r.max_tier) if r.max_tier else parent.max_tier, ack,
                             (*parent.extra, *r.recipients))
                taken += walk(r.routes, mine) or [mine]
                if not r.continue_:
                    break
            return taken

        taken = walk(self.routes, self.root)
        if not taken:
            if alert.rule.startswith(SUPPLY_RULES):
                return Route((*self.root.path, "supplies"), ROLES.index("community"), self.root.ack_timeout_s)
            return self.root
        extra = tuple(dict.fromkeys(x for t in taken for x in t.extra))
        first = taken[0]
        return Route(first.path if len(taken) == 1 else tuple(p for t in taken for p in t.path[1:]),
                     first.max_tier, first.ack_timeout_s, extra)

    def covers(self, r: Recipient, alert: Alert) -> bool:
        """Whether a recipient's scope covers the alert's place."""
        s = r.scope
        if r.role == "grid_worker":
            return s.community == alert.community and s.grid == alert.grid and alert.grid != UNKNOWN
        if r.role == "community":
            return s.community == alert.community
        if r.role == "street_office":
            return s.street in (None, self.street) and s.community in (None, alert.community)
        return s.community in (None, alert.community)  # bureau: everything, unless scoped

    def tier_recipients(self, alert: Alert, tier: int) -> list[Recipient]:
        """Everyone of the tiers up to and including `tier` (capped by the route) who covers the place,
        and the route's own recipients.

        A device with no grid worker (unplaced, or an unstaffed grid) goes to its community's
        recipients from the first tier on.
        """
        route = self.route(alert)
        tier = min(tier, route.max_tier)
        out: list[Recipient] = []
        if alert.community == SERVICE_WIDE:
            # The service itself, not a place: the street office's duty room from the first tier (with
            # the admins, below), the bureau once escalated that far.
            roles = ("street_office", "bureau") if tier >= len(ROLES) - 1 else ("street_office",)
            out = [r for r in self.recipients.values() if r.role in roles and self.covers(r, alert)]
        else:
            for role in ROLES[: tier + 1]:
                out += [r for r in self.recipients.values() if r.role == role and self.covers(r, alert)]
            if tier == 0 and (not out or alert.rule.startswith(SUPPLY_RULES)):
                out += [r for r in self.recipients.values() if r.role == "community" and self.covers(r, alert)]
        if alert.rule.startswith(SERVICE_RULES):
            # The service's own findings reach the people who run it, at every tier.
            out += [r for r in self.recipients.values() if r.role == "admin" and self.covers(r, alert)]
        told = {r.id for r in out}
        out += [self.recipients[rid] for rid in route.extra if rid not in told]
        return out
