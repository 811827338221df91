"""The resource book: supplies' stock, shelters' occupancy, the rules about them, and door knocks.

Synchronous and clock-free like alerts/manager.py and orders/book.py: every call says what time it is
and returns the writes to commit and the rule transitions (kernel.alerting) to hand to the alerts in
the same commit. A restart restores everything from the store.

    movement (keeper, community, street) ─► stock ─► supplies.short
    the calendar (the site's time zone) ───────────► supplies.expiring / supplies.expired
    occupancy (manager, community, street) ─► shelter.full (yellow at 90 %, orange at 100 %)
    a red building alert ─► one door knock per vulnerable resident ─► not all reached in time: door_knocks.late
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from kernel.alerting import Level, Transition, TransitionKind
from kernel.clock import NS
from kernel.errors import Reason, Refused
from kernel.ids import UNKNOWN, stable_id
from kernel.resources import (
    DOOR_KNOCKS_LATE,
    KNOCKS,
    LEVEL_OF,
    SHELTER,
    SHELTER_FULL,
    SHELTER_NEARLY_FULL,
    SUPPLIES_EXPIRED,
    SUPPLIES_EXPIRING,
    SUPPLIES_SHORT,
    SUPPLY,
    Knock,
    Movement,
    target,
)
from kernel.writes import Write
from resources.catalog import Catalog
from resources.store import (
    DELETE_CONDITION,
    INSERT_MOVEMENT,
    UPSERT_CONDITION,
    UPSERT_KNOCK,
    UPSERT_OCCUPANCY,
    UPSERT_STOCK,
)

MAX_NOTE = 500
MAX_DELTA = 1_000_000
MAX_OCCUPANCY = 1_000_000


@dataclass(slots=True)
class Changes:
    """What one change writes, and the transitions to hand to the alerts in the same commit."""

    writes: list[Write] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)

    def add(self, statement: str, row: tuple[Any, ...]) -> None:
        """A row for a statement, grouped with the previous one of the same statement."""
        if self.writes and self.writes[-1][0] == statement:
            self.writes[-1][1].append(row)
        else:
            self.writes.append((statement, [row]))


@dataclass(slots=True)
class DoorKnock:
    """One vulnerable resident to reach for one alert."""

    vulnerable_id: str
    status: Knock = Knock.PENDING
    actor: str | None = None
    at_ns: int | None = None
    note: str | None = None


@dataclass(slots=True)
class KnockList:
    """A red building alert's door knocks."""

    alert_id: str
    community: str
    building: str
    grid: str
    created_ns: int
    due_ns: int
    escalated: bool = False
    knocks: dict[str, DoorKnock] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """How many in all, reached, not reached, and still to knock."""
        n = {k.value: 0 for k in Knock}
        for k in self.knocks.values():
            n[k.status.value] += 1
        return {"total": len(self.knocks), **n}

    def pending(self) -> int:
        """Knocks not yet recorded."""
        return sum(1 for k in self.knocks.values() if k.status is Knock.PENDING)

    def unreached(self) -> int:
        """Residents not (yet) reached: not knocked, or knocked without an answer. The list is done once
        every one is reached; until then, past its time, the community is told (door_knocks.late)."""
        return sum(1 for k in self.knocks.values() if k.status is not Knock.REACHED)

    def rows(self) -> list[tuple[Any, ...]]:
        """Every knock's row."""
        return [(self.alert_id, k.vulnerable_id, self.community, self.building, self.grid, self.created_ns,
                 self.due_ns, int(self.escalated), k.status.value, k.actor, k.at_ns, k.note)
                for k in self.knocks.values()]


@dataclass(slots=True)
class Condition:
    """A resource rule's condition holding at one place: its level and its episode."""

    level: Level
    episode: str
    started_ns: int


class ResourceBook:
    """Stock, occupancy, conditions and door knocks in memory; what each change writes and raises."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.settings = catalog.settings.resources
        self.zone = ZoneInfo(catalog.settings.timezone)
        self.stock = {sid: s.quantity for sid, (_c, s) in catalog.supplies.items()}
        self.occupancy = dict.fromkeys(catalog.shelters, 0)
        self.occupancy_at: dict[str, int] = {}
        self.conditions: dict[tuple[str, str], Condition] = {}
        self.lists: dict[str, KnockList] = {}
        self._heap: list[tuple[int, str]] = []
        self._midnight: int | None = None  # the next local midnight, when the calendar is looked at again

    # ---- restore ---------------------------------------------------------------------------------

    def restore(self, stock: Iterable[tuple[Any, ...]], occupancy: Iterable[tuple[Any, ...]],
                conditions: Iterable[tuple[Any, ...]], knocks: Iterable[tuple[Any, ...]]) -> None:
        """What the store kept: stock, occupancy, conditions holding, door-knock lists."""
        for sid, quantity in stock:
            if sid in self.stock:
                self.stock[sid] = int(quantity)
        for shid, count, at in occupancy:
            if shid in self.occupancy:
                self.occupancy[shid], self.occupancy_at[shid] = int(count), int(at)
        for rule, where, level, episode, started in conditions:
            self.conditions[(rule, where)] = Condition(Level(level), episode, int(started))
        for (alert_id, vid, community, building, grid, created, due, escalated, status, actor, at, note) in knocks:
            kl = self.lists.get(alert_id)
            if kl is None:
                kl = self.lists[alert_id] = KnockList(alert_id, community, building, grid, created, due,
                                                      bool(escalated))
            kl.knocks[vid] = DoorKnock(vid, Knock(status), actor, at, note)
        for kl in self.lists.values():
            self._schedule(kl)

    # ---- supplies --------------------------------------------------------------------------------

    def move(self, supply_id: str, delta: int, reason: str, note: str | None, actor: str, role: str,
             now: int) -> tuple[int, Changes]:
        """A movement of a supply's stock (the new quantity), and the rule it may change."""
        found = self.catalog.supplies.get(supply_id)
        if found is None:
            raise Refused(Reason.NOT_FOUND, "no such supply")
        community, _s = found
        try:
            why = Movement(reason)
        except ValueError:
            raise Refused(Reason.INVALID, "reason is one of " + ", ".join(m.value for m in Movement)) from None
        if isinstance(delta, bool) or not isinstance(delta, int) or abs(delta) > MAX_DELTA:
            raise Refused(Reason.INVALID, f"delta is a whole number from -{MAX_DELTA} to {MAX_DELTA}")
        if delta == 0:
            raise Refused(Reason.INVALID, "a movement of 0 changes nothing")
        if why in (Movement.USED, Movement.EXPIRED) and delta > 0:
            raise Refused(Reason.INVALID, f"a movement for {why.value} takes stock out: its delta is negative")
        if why is Movement.RESTOCKED and delta < 0:
            raise Refused(Reason.INVALID, "a restock puts stock in: its delta is positive")
        quantity = self.stock[supply_id] + delta
        if quantity < 0:
            raise Refused(Reason.CONFLICT, f"only {self.stock[supply_id]} in stock: cannot take {-delta}")
        note = _note(note)
        self.stock[supply_id] = quantity
        changes = Changes()
        changes.add(UPSERT_STOCK, (supply_id, quantity, now))
        changes.add(INSERT_MOVEMENT, (supply_id, community, now, delta, quantity, why.value, note, actor, role))
        self._evaluate(now, changes)
        return quantity, changes

    # ---- shelters --------------------------------------------------------------------------------

    def occupy(self, shelter_id: str, count: int, actor: str, now: int) -> Changes:
        """A shelter's occupancy as its manager counts it."""
        if shelter_id not in self.catalog.shelters:
            raise Refused(Reason.NOT_FOUND, "no such shelter")
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_OCCUPANCY:
            raise Refused(Reason.INVALID, f"count is a whole number of people from 0 to {MAX_OCCUPANCY}")
        self.occupancy[shelter_id], self.occupancy_at[shelter_id] = count, now
        changes = Changes()
        changes.add(UPSERT_OCCUPANCY, (shelter_id, count, now, actor))
        self._evaluate(now, changes)
        return changes

    # ---- the rules -------------------------------------------------------------------------------

    def evaluate(self, now: int) -> Changes:
        """Every resource rule against the stock, the occupancy and the calendar."""
        changes = Changes()
        self._evaluate(now, changes)
        return changes

    def _evaluate(self, now: int, changes: Changes) -> None:
        today = datetime.fromtimestamp(now / NS, self.zone).date()
        soon = timedelta(days=self.settings.expiring_within_days)
        for sid, (community, s) in self.catalog.supplies.items():
            grid = self.catalog.supply_grid(community, s)
            building = s.building or UNKNOWN
            where = target(SUPPLY, sid)
            expired = s.expires is not None and today > s.expires
            expiring = s.expires is not None and not expired and today >= s.expires - soon
            days = (s.expires - today).days if s.expires is not None else None
            self._hold(SUPPLIES_EXPIRED, where, Level.YELLOW if expired else None, community, building, grid,
                       SUPPLY, float(-days) if expired and days is not None else None, now, changes)
            self._hold(SUPPLIES_EXPIRING, where, Level.BLUE if expiring else None, community, building, grid,
                       SUPPLY, float(days) if expiring and days is not None else None, now, changes)
            short = self.stock[sid] < s.min_quantity
            self._hold(SUPPLIES_SHORT, where, LEVEL_OF[SUPPLIES_SHORT] if short else None, community, building,
                       grid, SUPPLY, float(self.stock[sid]), now, changes)
        for shid, (community, sh) in self.catalog.shelters.items():
            occ = self.occupancy[shid]
            level = (Level.ORANGE if occ >= sh.capacity else
                     Level.YELLOW if occ >= SHELTER_NEARLY_FULL * sh.capacity else None)
            self._hold(SHELTER_FULL, target(SHELTER, shid), level, community, UNKNOWN, UNKNOWN, SHELTER,
                       float(occ), now, changes)

    def _hold(self, rule: str, where: str, level: Level | None, community: str, building: str, grid: str,
              device_type: str, value: float | None, now: int, changes: Changes) -> None:
        """The transition of one rule at one place from what held to what holds now, if any."""
        was = self.conditions.get((rule, where))
        if was is None and level is None:
            return
        if was is not None and level is not None and was.level is level:
            return
        if was is None:
            assert level is not None
            was = self.conditions[(rule, where)] = Condition(level, stable_id(rule, community, where, now)[:20], now)
            kind, previous = TransitionKind.FIRE, None
        elif level is None:
            del self.conditions[(rule, where)]
            changes.add(DELETE_CONDITION, (rule, where))
            changes.transitions.append(Transition(TransitionKind.CLEAR, rule, was.episode, None, was.level, community,
                                                  building, grid, where, device_type, value, now, was.started_ns))
            return
        else:
            kind = TransitionKind.RAISE if level.rank > was.level.rank else TransitionKind.LOWER
            previous, was.level = was.level, level
        changes.add(UPSERT_CONDITION, (rule, where, level.value, was.episode, was.started_ns))
        changes.transitions.append(Transition(kind, rule, was.episode, level, previous, community, building, grid,
                                              where, device_type, value, now, was.started_ns))

    def next_boundary(self, now: int) -> int:
        """The next local midnight: when a supply may start to expire, or expire."""
        local = datetime.fromtimestamp(now / NS, self.zone)
        midnight = datetime.combine(local.date() + timedelta(days=1), time(0), self.zone)
        return int(midnight.timestamp()) * NS

    # ---- door knocks -----------------------------------------------------------------------------

    def open_knocks(self, alert_id: str, level: Level, community: str, building: str, grid: str,
                    now: int) -> Changes:
        """A red alert of a building with vulnerable residents: one door knock each (once per alert)."""
        changes = Changes()
        residents = self.catalog.by_building.get((community, building), [])
        if level is not Level.RED or building == UNKNOWN or not residents or alert_id in self.lists:
            return changes
        due = now + int(self.settings.door_knock_within_s * NS)
        kl = self.lists[alert_id] = KnockList(alert_id, community, building, grid, now, due)
        for v in residents:
            kl.knocks[v.id] = DoorKnock(v.id)
        for row in kl.rows():
            changes.add(UPSERT_KNOCK, row)
        self._schedule(kl)
        return changes

    def knock(self, alert_id: str, vulnerable_id: str, status: str, note: str | None, actor: str,
              now: int) -> tuple[KnockList, Changes]:
        """One door knock recorded (again, if the first answer changes); the late alert ends once none wait."""
        kl = self.lists.get(alert_id)
        if kl is None:
            raise Refused(Reason.NOT_FOUND, "this alert has no door knocks")
        k = kl.knocks.get(vulnerable_id)
        if k is None:
            raise Refused(Reason.NOT_FOUND, "no such door knock on this alert")
        if status not in (Knock.REACHED.value, Knock.NOT_REACHED.value):
            raise Refused(Reason.INVALID, "status is reached or not_reached")
        k.status, k.actor, k.at_ns, k.note = Knock(status), actor, now, _note(note)
        changes = Changes()
        for row in kl.rows():
            if row[1] == vulnerable_id:
                changes.add(UPSERT_KNOCK, row)
        if kl.unreached() == 0:
            self._late(kl, None, now, changes)
        return kl, changes

    def on_tick(self, now: int) -> Changes:
        """Door-knock lists past their time with knocks still to do: the community is told."""
        changes = Changes()
        while self._heap and self._heap[0][0] <= now:
            _due, alert_id = heapq.heappop(self._heap)
            kl = self.lists.get(alert_id)
            if kl is None or kl.escalated or kl.unreached() == 0:
                continue
            kl.escalated = True
            for row in kl.rows():
                changes.add(UPSERT_KNOCK, row)
            self._late(kl, LEVEL_OF[DOOR_KNOCKS_LATE], now, changes)
        if self._midnight is not None and now >= self._midnight:
            self._midnight = self.next_boundary(now)
        self._evaluate(now, changes)
        return changes

    def _late(self, kl: KnockList, level: Level | None, now: int, changes: Changes) -> None:
        where = target(KNOCKS, kl.alert_id)
        if level is not None and (DOOR_KNOCKS_LATE, where) in self.conditions:
            return  # still late: the alert stays until every knock is recorded
        self._hold(DOOR_KNOCKS_LATE, where, level, kl.community, kl.building, kl.grid, "building",
                   float(kl.unreached()), now, changes)

    def next_deadline(self, now: int) -> int:
        """The earliest of the next door-knock deadline and the next local midnight."""
        if self._midnight is None:
            self._midnight = self.next_boundary(now)
        while self._heap:
            due, alert_id = self._heap[0]
            kl = self.lists.get(alert_id)
            if kl is not None and not kl.escalated and kl.unreached():
                return min(due, self._midnight)
            heapq.heappop(self._heap)
        return self._midnight

    def _schedule(self, kl: KnockList) -> None:
        if not kl.escalated and kl.unreached():
            heapq.heappush(self._heap, (kl.due_ns, kl.alert_id))


def _note(note: str | None) -> str | None:
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise Refused(Reason.INVALID, f"a note has at most {MAX_NOTE} characters")
    return note or None


def expiry_of(d: date | None) -> str | None:
    """A supply's last day as the API writes it."""
    return d.isoformat() if d is not None else None
