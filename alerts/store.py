"""The alert store: alerts, their audit trail and silences, as SQLite tables.

The tables live in the service's state database, so an alert, its events and the notifications
to send (delivery's outbox, notify/) are committed in the same transaction as the readings and rule
state that raised them.
Functions here only build statements and rows; the caller commits them.
"""

from __future__ import annotations

import hashlib
from typing import Any

from kernel.alerting import Alert, AlertStatus, Level

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    rule TEXT NOT NULL, level TEXT NOT NULL, status TEXT NOT NULL,
    community TEXT NOT NULL, building TEXT NOT NULL, grid TEXT NOT NULL,
    device_id TEXT NOT NULL, device_type TEXT NOT NULL, value REAL,
    started_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL, summary TEXT NOT NULL, tier INTEGER NOT NULL,
    acked_by TEXT, acked_ns INTEGER, ack_note TEXT, resolved_by TEXT, resolved_ns INTEGER, resolve_note TEXT,
    next_escalation_ns INTEGER, next_reminder_ns INTEGER
);
CREATE INDEX IF NOT EXISTS alerts_status ON alerts (status);
CREATE TABLE IF NOT EXISTS alert_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL, at_ns INTEGER NOT NULL, event TEXT NOT NULL, level TEXT NOT NULL,
    actor TEXT, note TEXT
);
CREATE INDEX IF NOT EXISTS alert_events_alert ON alert_events (alert_id);
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY,
    community TEXT, building TEXT, device_id TEXT, rule TEXT,
    starts_ns INTEGER NOT NULL, ends_ns INTEGER NOT NULL, reason TEXT NOT NULL,
    created_by TEXT NOT NULL, created_ns INTEGER NOT NULL
);
"""

ALERT_COLUMNS = ("id", "rule", "level", "status", "community", "building", "grid", "device_id", "device_type",
                  "value", "started_ns", "updated_ns", "summary", "tier", "acked_by", "acked_ns", "ack_note",
                  "resolved_by", "resolved_ns", "resolve_note")
UPSERT_ALERT = (f"INSERT OR REPLACE INTO alerts ({', '.join(ALERT_COLUMNS)}, next_escalation_ns, next_reminder_ns) "
                f"VALUES ({', '.join('?' * (len(ALERT_COLUMNS) + 2))})")
INSERT_EVENT = "INSERT INTO alert_events (alert_id, at_ns, event, level, actor, note) VALUES (?, ?, ?, ?, ?, ?)"
UPSERT_SILENCE = "INSERT OR REPLACE INTO silences VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
SELECT_SILENCES = ("SELECT id, community, building, device_id, rule, starts_ns, ends_ns, reason, created_by, "
                   "created_ns FROM silences ORDER BY created_ns DESC")
SELECT_ACTIVE = f"SELECT {', '.join(ALERT_COLUMNS)}, next_escalation_ns, next_reminder_ns FROM alerts " \
                "WHERE status != 'resolved'"
SELECT_ONE = f"SELECT {', '.join(ALERT_COLUMNS)}, next_escalation_ns, next_reminder_ns FROM alerts WHERE id = ?"


def alert_row(a: Alert, next_escalation_ns: int | None, next_reminder_ns: int | None) -> tuple[Any, ...]:
    """The row of an alert."""
    return (a.id, a.rule, a.level.value, a.status.value, a.community, a.building, a.grid, a.device_id,
            a.device_type, a.value, a.started_ns, a.updated_ns, a.summary, a.tier, a.acked_by, a.acked_ns,
            a.ack_note, a.resolved_by, a.resolved_ns, a.resolve_note, next_escalation_ns, next_reminder_ns)


def alert_from_row(row: tuple[Any, ...]) -> tuple[Alert, int | None, int | None]:
    """An alert and its two deadlines from a row of SELECT_ACTIVE."""
    v = dict(zip((*ALERT_COLUMNS, "next_escalation_ns", "next_reminder_ns"), row, strict=True))
    esc, rem = v.pop("next_escalation_ns"), v.pop("next_reminder_ns")
    v["level"], v["status"] = Level(v["level"]), AlertStatus(v["status"])
    return Alert(**v), esc, rem


def query_alerts(status: str | None, level: str | None, community: str | None, rule: str | None,
                 limit: int) -> tuple[str, tuple[Any, ...]]:
    """SELECT of alerts with optional filters, newest first."""
    where, args = [], []
    for column, value in (("status", status), ("level", level), ("community", community), ("rule", rule)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    sql = (f"SELECT {', '.join(ALERT_COLUMNS)}, next_escalation_ns, next_reminder_ns FROM alerts{clause} "
           f"ORDER BY updated_ns DESC LIMIT ?")
    return sql, (*args, limit)


def fingerprint(rule: str, community: str, building: str, device_id: str) -> str:
    """What stays the same across episodes of one rule at one place (the alert id changes each episode)."""
    return hashlib.sha1(f"{rule}|{community}|{building}|{device_id}".encode()).hexdigest()[:16]
