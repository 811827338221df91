"""The audit log: who acknowledged, resolved, handed over, silenced or ended a silence, when, from where.

Rows live in the service's state database. An alert action's row is committed in the same
transaction as the alert's own change (alert_events keeps the alert's history; this table keeps
the people's side of it across alerts and silences: role, client address, one place to query).
"""

from __future__ import annotations

from typing import Any

import orjson

from kernel.clock import rfc3339

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ns INTEGER NOT NULL,
    actor TEXT NOT NULL, role TEXT NOT NULL, client TEXT,
    action TEXT NOT NULL, target TEXT NOT NULL,
    community TEXT, grid TEXT, note TEXT, detail BLOB
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at_ns);
"""

# What people do, as the log names it.
ACTIONS = ("acknowledge", "resolve", "handover", "silence", "unsilence", "supply_movement", "shelter_occupancy",
           "door_knock")

INSERT = ("INSERT INTO audit (at_ns, actor, role, client, action, target, community, grid, note, detail) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
COLUMNS = "seq, at_ns, actor, role, client, action, target, community, grid, note, detail"


def audit_row(at_ns: int, actor: str, role: str, client: str | None, action: str, target: str,
              community: str | None, grid: str | None, note: str | None,
              detail: dict[str, Any] | None = None) -> tuple[Any, ...]:
    """The row of one action, for INSERT."""
    assert action in ACTIONS, action
    return (at_ns, actor, role, client, action, target, community, grid, note,
            orjson.dumps(detail) if detail else None)


def query(*, since_ns: int | None, actor: str | None, action: str | None, after: int | None,
          limit: int) -> tuple[str, tuple[Any, ...]]:
    """SELECT of entries matching every filter given, oldest first, after the seq `after`."""
    where, args = [], []
    for clause, value in (("at_ns >= ?", since_ns), ("actor = ?", actor), ("action = ?", action),
                          ("seq > ?", after)):
        if value is not None:
            where.append(clause)
            args.append(value)
    sql = f"SELECT {COLUMNS} FROM audit{' WHERE ' + ' AND '.join(where) if where else ''} ORDER BY seq LIMIT ?"
    return sql, (*args, limit)


def entry(row: tuple[Any, ...]) -> dict[str, Any]:
    """An entry as the API answers it."""
    seq, at_ns, actor, role, client, action, target, community, grid, note, detail = row
    alert = action in ("acknowledge", "resolve", "handover", "door_knock")
    silence = action in ("silence", "unsilence")
    return {"seq": seq, "at": rfc3339(at_ns), "actor": actor, "role": role, "client": client, "action": action,
            "alert_id": target if alert else None, "silence_id": target if silence else None,
            "supply_id": target if action == "supply_movement" else None,
            "shelter_id": target if action == "shelter_occupancy" else None,
            "community": community, "grid": grid, "note": note,
            "detail": orjson.loads(detail) if detail else {}}
