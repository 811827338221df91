"""叫应, called until answered (docs/response.md): the policy that, for a serious alert, calls the duties
of the roster until somebody answers; every call and answer goes into the alert's ledger. It is the
last stage of the alert pipeline (alerts/stages.py): a pass that tells people of a fired or raised
alert calls its first duties, a resolution ends the calls still waiting.

    alert fired (level >= min_level) ─► the lowest tier's duties of its place: each A person called
        deadline passed, unanswered ─► that duty's B person ─► deadline ─► the next tier's duties ...
    an acknowledgement by a called person (any channel: API, page, SMS link, voice key) ─► answered

Each call goes through every channel the person has at once: one message per channel (delivered on
that channel alone, notify's `person#index`), each recorded in answer_sends, so the ledger reads
sent and delivered from delivery's record of those messages. Calls and their deadlines are rows of
the state database, written in the same transaction as the alert change that made them; a restart
reloads them (restore) and goes on.

Like the manager, synchronous and clock-free: every call says what time it is and adds its writes.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from alerts.route import Router
from alerts.stages import Pass
from alerts.store import INSERT_EVENT
from kernel.alerting import Alert, AlertStatus, Event, Level, Transition, TransitionKind
from kernel.clock import NS, rfc3339
from kernel.ids import UNKNOWN, stable_id
from kernel.outgoing import Message, Subject
from kernel.settings import Duty, Settings
from kernel.writes import Row

ROSTER_RULE = "service.roster_stale"
# The tiers that have a roster (index into kernel.alerting.ROLES): grid, community, street.
ROSTER_TIERS = (0, 1, 2)

SCHEMA = """
CREATE TABLE IF NOT EXISTS answer_calls (
    id TEXT PRIMARY KEY,
    alert_id TEXT NOT NULL, tier INTEGER NOT NULL, place TEXT NOT NULL, duty TEXT NOT NULL,
    person TEXT NOT NULL, attempt TEXT NOT NULL, called_ns INTEGER NOT NULL, due_ns INTEGER NOT NULL,
    status TEXT NOT NULL, answered_ns INTEGER, answered_via TEXT, answered_by TEXT, note TEXT
);
CREATE INDEX IF NOT EXISTS answer_calls_alert ON answer_calls (alert_id);
CREATE INDEX IF NOT EXISTS answer_calls_status ON answer_calls (status);
CREATE TABLE IF NOT EXISTS answer_sends (
    event_id TEXT PRIMARY KEY,
    call_id TEXT NOT NULL, alert_id TEXT NOT NULL, channel INTEGER NOT NULL, channel_type TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS answer_sends_alert ON answer_sends (alert_id);
"""
CALL_COLUMNS = ("id", "alert_id", "tier", "place", "duty", "person", "attempt", "called_ns", "due_ns", "status",
                "answered_ns", "answered_via", "answered_by", "note")
UPSERT_CALL = f"INSERT OR REPLACE INTO answer_calls ({', '.join(CALL_COLUMNS)}) VALUES ({', '.join('?' * 14)})"
INSERT_SEND = "INSERT OR IGNORE INTO answer_sends VALUES (?, ?, ?, ?, ?)"
# Calls of alerts still open (their tiers and duties, and the deadlines still running).
SELECT_OPEN_CALLS = (f"SELECT {', '.join('c.' + k for k in CALL_COLUMNS)} FROM answer_calls c "
                     "JOIN alerts a ON a.id = c.alert_id WHERE a.status != 'resolved' ORDER BY c.called_ns")
SELECT_ROSTER_ALERTS = f"SELECT id FROM alerts WHERE rule = '{ROSTER_RULE}'"
# The ledger: one row per call and channel (a person without a channel: one row, channel empty); each
# send's delivery is delivery's to say (ledger_rows).
SELECT_LEDGER = (f"SELECT {', '.join('c.' + k for k in CALL_COLUMNS)}, s.channel, s.channel_type, s.event_id "
                 "FROM answer_calls c LEFT JOIN answer_sends s ON s.call_id = c.id "
                 "WHERE c.alert_id = ? ORDER BY c.called_ns, c.tier, c.duty, s.channel")

# What a call's status says.
WAITING, ANSWERED, MISSED, ANSWERED_LATE, ENDED = "waiting", "answered", "missed", "answered_late", "ended"
# How an answer came (the ledger's `answered_via`).
VIAS = ("api", "page", "link", "sms", "voice")


class WritesLike(Protocol):
    """Where one change's statements and messages are gathered (a pass, or the manager's writes)."""

    messages: list[Message]

    def add(self, statement: str, row: Row) -> None: ...


@dataclass(slots=True)
class Call:
    """One person called for one duty of one alert."""

    id: str
    alert_id: str
    tier: int
    place: str
    duty: str
    person: str
    attempt: str  # "a" or "b"
    called_ns: int
    due_ns: int
    status: str = WAITING
    answered_ns: int | None = None
    answered_via: str | None = None
    answered_by: str | None = None
    note: str | None = None

    def row(self) -> tuple[Any, ...]:
        """The row of answer_calls."""
        return (self.id, self.alert_id, self.tier, self.place, self.duty, self.person, self.attempt, self.called_ns,
                self.due_ns, self.status, self.answered_ns, self.answered_via, self.answered_by, self.note)


def call_from_row(row: tuple[Any, ...]) -> Call:
    """A call from the first columns of a row of SELECT_OPEN_CALLS or SELECT_LEDGER."""
    return Call(*row[: len(CALL_COLUMNS)])


class Roster:
    """The site file's duties by tier and place."""

    def __init__(self, settings: Settings) -> None:
        self.street = settings.street
        self.communities = {c.id: c for c in settings.communities}

    def duties(self, tier: int, community: str, grid: str) -> tuple[str, list[Duty]]:
        """The place a tier's duties belong to for an alert at (community, grid), and those duties."""
        c = self.communities.get(community)
        if tier == 0:
            g = next((g for g in c.grids if g.id == grid), None) if c is not None and grid != UNKNOWN else None
            return f"{community}/{grid}", list(g.duties) if g is not None else []
        if tier == 1:
            return community, list(c.duties) if c is not None else []
        if tier == 2 and self.street is not None:
            return self.street.id, list(self.street.duties)
        return "-", []

    def duty(self, tier: int, community: str, grid: str, name: str) -> Duty | None:
        """One duty by name."""
        return next((d for d in self.duties(tier, community, grid)[1] if d.duty == name), None)


class CallStage:
    """The calls of open alerts, their deadlines, and what each answer or missed deadline writes.

    With `calling` False (an alert manager without 叫应) it calls nobody, and so has nothing to answer."""

    name = "call"

    def __init__(self, settings: Settings, router: Router, *, calling: bool = True) -> None:
        self.calling = calling
        a = settings.alerts.answer
        self.min_level = Level(a.min_level)
        self.deadline_s = {Level(k): v for k, v in a.deadline_s.items()}
        self.voice_key = a.voice_answer_key
        self.router = router
        self.roster = Roster(settings)
        # The types of each person's channels, in order (the index is the outbox's `person#index`).
        self.channel_types = {r.id: [c.type for c in r.channels] for r in settings.recipients}
        self.calls: dict[str, list[Call]] = {}  # alert id -> every call of the open alert, oldest first
        self._heap: list[tuple[int, str, str]] = []  # (due, alert id, call id) of waiting calls
        # The answer link put in a call to a person (the SMS's link); set by the pages when public_url is.
        self.link_for: Callable[[str, str], str | None] | None = None

    # ---- the stage ---------------------------------------------------------------------------

    def exec(self, p: Pass) -> Pass:
        """Call the first duties of an alert that fired or rose and told somebody; end the calls of a resolved one."""
        if p.event in (Event.FIRED, Event.LEVEL_RAISED) and p.told and self.calling:
            self.on_raised(p.alert, p.body, p.now, p)
        elif p.event is Event.RESOLVED:
            self.on_resolved(p.alert, p.now, p)
        return p

    def on_raised(self, alert: Alert, body: dict[str, Any], now: int, writes: WritesLike) -> None:
        """An alert fired or rose: at or above min_level and not yet called, call its first duties."""
        if alert.level.rank < self.min_level.rank or self.calls.get(alert.id):
            return
        first = self._next_tier(alert, -1)
        if first is None:
            return  # nobody on the roster for this place
        self._call_tier(alert, body, first, now, writes)

    def answer(self, alert: Alert, person: str, via: str, note: str | None, now: int,
                  writes: WritesLike) -> bool:
        """An acknowledgement by person answers their duty's calls; True if it answered one."""
        answered = False
        for c in self.calls.get(alert.id, []):
            duty = self.roster.duty(c.tier, alert.community, alert.grid, c.duty)
            persons = {c.person} | ({duty.a, duty.b} if duty is not None else set())
            if person not in persons:
                continue
            if c.status == WAITING:
                c.status = ANSWERED
            elif c.status == MISSED and c.person == person and c.answered_ns is None:
                c.status = ANSWERED_LATE
            else:
                continue
            c.answered_ns, c.answered_via, c.answered_by, c.note = now, via, person, note
            writes.add(UPSERT_CALL, c.row())
            answered = True
        if answered:
            writes.add(INSERT_EVENT, (alert.id, now, "answered", alert.level.value, person,
                                      f"{via}: {note}" if note else via))
        return answered

    def on_resolved(self, alert: Alert, now: int, writes: WritesLike) -> None:
        """The alert is closed: calls still waiting end."""
        for c in self.calls.pop(alert.id, []):
            if c.status == WAITING:
                c.status = ENDED
                writes.add(UPSERT_CALL, c.row())

    def on_tick(self, open_alerts: Mapping[str, Alert], body_of: Callable[[Alert], dict[str, Any]], now: int,
                writes: WritesLike) -> None:
        """Deadlines passed: the B person, or the next tier's duties, are called."""
        while self._heap and self._heap[0][0] <= now:
            _due, alert_id, call_id = heapq.heappop(self._heap)
            alert = open_alerts.get(alert_id)
            call = next((c for c in self.calls.get(alert_id, []) if c.id == call_id), None)
            if alert is None or call is None or call.status != WAITING:
                continue
            call.status = MISSED
            writes.add(UPSERT_CALL, call.row())
            writes.add(INSERT_EVENT, (alert.id, now, "answer_missed", alert.level.value, call.person,
                                      f"{call.duty} {call.attempt.upper()}"))
            body = body_of(alert)
            duty = self.roster.duty(call.tier, alert.community, alert.grid, call.duty)
            if call.attempt == "a" and duty is not None and duty.b is not None:
                self._call(alert, body, call.tier, call.place, duty.duty, duty.b, "b", now, writes)
                continue
            called = {c.tier for c in self.calls.get(alert.id, [])}
            nxt = self._next_tier(alert, call.tier)
            if nxt is not None and nxt not in called:
                self._call_tier(alert, body, nxt, now, writes)
            elif nxt is None and not any(c.status == WAITING for c in self.calls.get(alert.id, [])):
                writes.add(INSERT_EVENT, (alert.id, now, "unanswered", alert.level.value, None,
                                          "nobody on the roster answered"))

    def next_deadline(self) -> int | None:
        """Service time of the next call's deadline."""
        while self._heap and not self._waiting(self._heap[0][1], self._heap[0][2]):
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def restore(self, calls: Iterable[Call]) -> None:
        """Calls of open alerts as the store kept them."""
        for c in calls:
            self.calls.setdefault(c.alert_id, []).append(c)
            if c.status == WAITING:
                heapq.heappush(self._heap, (c.due_ns, c.alert_id, c.id))

    # ---- inside --------------------------------------------------------------------------------

    def _waiting(self, alert_id: str, call_id: str) -> bool:
        return any(c.id == call_id and c.status == WAITING for c in self.calls.get(alert_id, []))

    def _next_tier(self, alert: Alert, after: int) -> int | None:
        """The lowest tier above `after` with duties for the alert's place, within the route's cap."""
        cap = self.router.route(alert).max_tier
        for tier in ROSTER_TIERS:
            if after < tier <= cap and self.roster.duties(tier, alert.community, alert.grid)[1]:
                return tier
        return None

    def _call_tier(self, alert: Alert, body: dict[str, Any], tier: int, now: int, writes: WritesLike) -> None:
        place, duties = self.roster.duties(tier, alert.community, alert.grid)
        for d in duties:
            self._call(alert, body, tier, place, d.duty, d.a, "a", now, writes)

    def _call(self, alert: Alert, body: dict[str, Any], tier: int, place: str, duty: str, person: str,
              attempt: str, now: int, writes: WritesLike) -> None:
        """Call one person on every channel they have at once, with the level's deadline."""
        seconds = self.deadline_s.get(alert.level) or self.deadline_s.get(self.min_level) or 300.0
        # One call of one person per (tier, duty, attempt) of an alert (on_raised calls an alert once), so
        # ids made from them are the same when the change is made again (kernel.ids.stable_id).
        call_id = stable_id("call", alert.id, tier, place, duty, person, attempt)
        call = Call(call_id, alert.id, tier, place, duty, person, attempt, now, now + int(seconds * NS))
        self.calls.setdefault(alert.id, []).append(call)
        heapq.heappush(self._heap, (call.due_ns, alert.id, call.id))
        writes.add(UPSERT_CALL, call.row())
        writes.add(INSERT_EVENT, (alert.id, now, "called", alert.level.value, person, f"{duty} {attempt.upper()}"))
        link = self.link_for(alert.id, person) if self.link_for is not None else None
        told = {"id": call.id, "duty": duty, "attempt": attempt, "tier": tier, "due_at": rfc3339(call.due_ns),
                "voice_key": self.voice_key}
        extra = {"link": link, "call": told} if link is not None else {"call": told}
        for index, channel_type in enumerate(self.channel_types.get(person, [])):
            event_id = stable_id("send", call_id, index)
            # The message names the person, and the one channel of theirs it goes on.
            writes.messages.append(Message(event_id, Subject.CALL, alert.id, person, Event.CALL, body, now,
                                           extra, channel=index))
            writes.add(INSERT_SEND, (event_id, call.id, alert.id, index, channel_type))


# ---- the ledger ---------------------------------------------------------------------------------

LEDGER_FIELDS = ("call_id", "tier", "place", "duty", "person", "attempt", "called_at", "due_at", "status",
                 "channel", "sent_at", "delivery", "delivered_at", "delivery_error", "answered_at", "answered_via",
                 "answered_by", "note")


def ledger_rows(rows: Iterable[Row], sent: Mapping[str, Row]) -> list[dict[str, Any]]:
    """The ledger's entries from rows of SELECT_LEDGER and, by event id, each send's (created_ns, status,
    delivered_ns, last_error) as delivery keeps it: who, which channel, sent, delivered, answered, by what."""
    out = []
    n = len(CALL_COLUMNS)
    for row in rows:
        c = call_from_row(row)
        _index, channel_type, event_id = row[n:]
        sent_ns, delivery, delivered_ns, error = sent.get(event_id) or (None, None, None, None)
        out.append({"call_id": c.id, "tier": c.tier, "place": c.place, "duty": c.duty, "person": c.person,
                    "attempt": c.attempt.upper(), "called_at": rfc3339(c.called_ns), "due_at": rfc3339(c.due_ns),
                    "status": c.status, "channel": channel_type, "sent_at": rfc3339(sent_ns),
                    "delivery": delivery, "delivered_at": rfc3339(delivered_ns), "delivery_error": error,
                    "answered_at": rfc3339(c.answered_ns), "answered_via": c.answered_via,
                    "answered_by": c.answered_by, "note": c.note})
    return out


# ---- the roster's age ---------------------------------------------------------------------------

def roster_transitions(settings: Settings, today: date, open_alerts: Iterable[Alert], known_ids: set[str],
                       now: int) -> list[Transition]:
    """service.roster_stale for each community whose roster (its own duties, its grids', and the street's)
    was verified longer ago than roster_max_age_days, or never; a clear where it no longer is.

    The episode id names the community, the verified date and the month, so a stale roster a person
    resolved is reported again the next month, and never twice in one."""
    max_days = settings.alerts.answer.roster_max_age_days
    street = settings.street
    open_roster = {a.community: a for a in open_alerts
                   if a.rule == ROSTER_RULE and a.status is not AlertStatus.RESOLVED}
    out: list[Transition] = []
    stale: set[str] = set()
    for c in settings.communities:
        rosters = [(c.roster_verified, bool(c.duties or any(g.duties for g in c.grids)))]
        if street is not None:
            rosters.append((street.roster_verified, bool(street.duties)))
        ages = [(today - v).days if v is not None else None for v, has in rosters if has]
        if not ages:
            continue  # no roster: nothing to verify
        worst = None if None in ages else max(a for a in ages if a is not None)
        if worst is not None and worst <= max_days:
            continue
        stale.add(c.id)
        episode = (f"roster-{c.id}-{c.roster_verified or 'never'}-{street.roster_verified if street else ''}-"
                   f"{today.isoformat()[:7]}")
        if c.id in open_roster or episode in known_ids:
            continue
        out.append(Transition(TransitionKind.FIRE, ROSTER_RULE, episode, Level.BLUE, None, c.id, UNKNOWN, UNKNOWN,
                              f"roster:{c.id}", "service", None if worst is None else float(worst), now, now))
    for community, a in open_roster.items():
        if community not in stale:
            out.append(Transition(TransitionKind.CLEAR, ROSTER_RULE, a.id, None, a.level, a.community, a.building,
                                  a.grid, a.device_id, a.device_type, a.value, now, a.started_ns))
    return out
