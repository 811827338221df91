"""Who is told (CONTRACT.md section 4): the tiers a level reaches, and the recipients of each tier."""

from __future__ import annotations

from kernel.alerting import ROLES, Alert, Level
from kernel.ids import UNKNOWN
from kernel.settings import Recipient, Settings

# The highest tier (index into ROLES) each level reaches by default.
BASE_TIER: dict[Level, int] = {Level.BLUE: 0, Level.YELLOW: 1, Level.ORANGE: 2, Level.RED: 3}


class Router:
    """Recipients by tier for an alert's place, from the site file's recipients and their scopes."""

    def __init__(self, settings: Settings) -> None:
        self.recipients = {r.id: r for r in settings.recipients}
        self.street = settings.street.id if settings.street else None

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
        """Everyone of the tiers up to and including `tier` who covers the place.

        A device with no grid worker (unplaced, or an unstaffed grid) goes to its community's
        recipients from the first tier on.
        """
        out: list[Recipient] = []
        for role in ROLES[: tier + 1]:
            out += [r for r in self.recipients.values() if r.role == role and self.covers(r, alert)]
        if tier == 0 and not out:
            out = [r for r in self.recipients.values() if r.role == "community" and self.covers(r, alert)]
        return out
