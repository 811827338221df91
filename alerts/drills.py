"""Drills (docs/drills.md): while a drill of a community is open, every alert of that community that
fires is a drill alert. Its summary begins with 【演练】 ([DRILL]), every notification of it (the alert's,
its 叫应 calls') carries `"drill": true`, and the router caps it below the bureau unless the drill asked
for the bureau: escalations and 叫应 stop at the street office.

The book is synchronous and clock-free like the manager: it says which rows to write, the caller commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kernel.alerting import ROLES, Alert

SCHEMA = """
CREATE TABLE IF NOT EXISTS drills (
    id TEXT PRIMARY KEY, community TEXT NOT NULL, scenario TEXT NOT NULL,
    started_ns INTEGER NOT NULL, ended_ns INTEGER, score REAL,
    bureau INTEGER NOT NULL DEFAULT 0, started_by TEXT NOT NULL DEFAULT '', ended_by TEXT, report TEXT
);
CREATE INDEX IF NOT EXISTS drills_community ON drills (community);
CREATE TABLE IF NOT EXISTS drill_alerts (
    alert_id TEXT PRIMARY KEY, drill_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS drill_alerts_drill ON drill_alerts (drill_id);
"""
DRILL_COLUMNS = ("id", "community", "scenario", "started_ns", "ended_ns", "score", "bureau", "started_by",
                 "ended_by")
INSERT_DRILL = (f"INSERT INTO drills ({', '.join(DRILL_COLUMNS)}) VALUES ({', '.join('?' * len(DRILL_COLUMNS))})")
END_DRILL = "UPDATE drills SET ended_ns = ?, score = ?, ended_by = ?, report = ? WHERE id = ?"
INSERT_DRILL_ALERT = "INSERT OR IGNORE INTO drill_alerts (alert_id, drill_id) VALUES (?, ?)"
SELECT_DRILLS = f"SELECT {', '.join(DRILL_COLUMNS)} FROM drills"
SELECT_OPEN_DRILLS = f"{SELECT_DRILLS} WHERE ended_ns IS NULL"
# Drill alerts still open (their notifications still carry the flag after a restart).
SELECT_OPEN_DRILL_ALERTS = ("SELECT d.alert_id, d.drill_id FROM drill_alerts d JOIN alerts a ON a.id = d.alert_id "
                            "WHERE a.status != 'resolved'")

# The summary's prefix of a drill alert, by locale.
PREFIX = {"zh-CN": "【演练】", "en": "[DRILL] "}
# The highest tier a drill alert reaches unless its drill asked for the bureau: the street office.
DRILL_MAX_TIER = ROLES.index("street_office")


@dataclass(slots=True)
class Drill:
    """A drill of one community: from its start to its end, every alert of the community is a drill alert."""

    id: str
    community: str
    scenario: str
    started_ns: int
    ended_ns: int | None = None
    score: float | None = None
    bureau: bool = False
    started_by: str = ""
    ended_by: str | None = None

    def row(self) -> tuple[Any, ...]:
        """The row of drills (without its report)."""
        return (self.id, self.community, self.scenario, self.started_ns, self.ended_ns, self.score,
                int(self.bureau), self.started_by, self.ended_by)

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Drill:
        """A drill from a row of SELECT_DRILLS."""
        v = dict(zip(DRILL_COLUMNS, row, strict=True))
        v["bureau"] = bool(v["bureau"])
        return cls(**v)


class DrillBook:
    """The open drills by community, and which open alerts are drill alerts of which drill."""

    def __init__(self) -> None:
        self.open: dict[str, Drill] = {}  # community -> its open drill
        self.alerts: dict[str, Drill] = {}  # alert id -> the drill it belongs to

    def start(self, drill: Drill) -> None:
        """A drill begins: alerts of its community that fire from now on are drill alerts."""
        self.open[drill.community] = drill

    def end(self, drill_id: str) -> None:
        """A drill ends: alerts that fire from now on are real again (its open alerts stay drill alerts)."""
        for community, d in list(self.open.items()):
            if d.id == drill_id:
                del self.open[community]

    def mark(self, alert: Alert) -> tuple[str, tuple[str, str]] | None:
        """A newly fired alert: a drill alert if its community has an open drill; the row that says so."""
        drill = self.open.get(alert.community)
        if drill is None:
            return None
        self.alerts[alert.id] = drill
        return INSERT_DRILL_ALERT, (alert.id, drill.id)

    def drill_of(self, alert_id: str) -> Drill | None:
        """The drill an alert belongs to, if it is a drill alert."""
        return self.alerts.get(alert_id)

    def max_tier(self, alert: Alert) -> int | None:
        """The cap of a drill alert's tiers (the street office), None for a real alert or a drill with the bureau."""
        drill = self.alerts.get(alert.id)
        return DRILL_MAX_TIER if drill is not None and not drill.bureau else None

    def summary(self, alert_id: str, text: str, locale: str) -> str:
        """A drill alert's summary begins with 【演练】 ([DRILL])."""
        if alert_id not in self.alerts:
            return text
        return PREFIX["en" if locale == "en" else "zh-CN"] + text

    def restore(self, drills: list[Drill], alerts: list[tuple[str, str]], known: dict[str, Drill]) -> None:
        """Open drills, and the drill alerts still open, as the store kept them (`known`: drills by id)."""
        for d in drills:
            self.open[d.community] = d
        for alert_id, drill_id in alerts:
            drill = known.get(drill_id)
            if drill is not None:
                self.alerts[alert_id] = drill
