"""The work-order store: whistles, work orders and their trail, as SQLite tables of the state database.

Notifications are delivery's (notify/): its outbox rows are committed with these, so a restart resumes
them. Functions here only build statements and rows; the caller commits them.
"""

from __future__ import annotations

from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS whistles (
    id TEXT PRIMARY KEY,
    grade TEXT NOT NULL, what TEXT NOT NULL, place TEXT NOT NULL,
    community TEXT NOT NULL, grid TEXT NOT NULL, alert_id TEXT,
    blower TEXT NOT NULL, blower_name TEXT NOT NULL, created_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS whistles_status ON whistles (status);
CREATE TABLE IF NOT EXISTS work_orders (
    id TEXT PRIMARY KEY,
    whistle_id TEXT NOT NULL, department TEXT NOT NULL, status TEXT NOT NULL,
    opened_ns INTEGER NOT NULL, due_sign_ns INTEGER NOT NULL, due_arrive_ns INTEGER NOT NULL,
    due_done_ns INTEGER NOT NULL, signed_ns INTEGER, arrived_ns INTEGER, done_ns INTEGER,
    confirmed_ns INTEGER, rating INTEGER, overdue TEXT NOT NULL, updated_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS work_orders_whistle ON work_orders (whistle_id);
CREATE TABLE IF NOT EXISTS work_order_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id TEXT NOT NULL, whistle_id TEXT NOT NULL, at_ns INTEGER NOT NULL, event TEXT NOT NULL,
    actor TEXT, note TEXT
);
CREATE INDEX IF NOT EXISTS work_order_events_whistle ON work_order_events (whistle_id);
"""

WHISTLE_COLUMNS = ("id", "grade", "what", "place", "community", "grid", "alert_id", "blower", "blower_name",
                   "created_ns", "updated_ns", "status")
ORDER_COLUMNS = ("id", "whistle_id", "department", "status", "opened_ns", "due_sign_ns", "due_arrive_ns",
                 "due_done_ns", "signed_ns", "arrived_ns", "done_ns", "confirmed_ns", "rating", "overdue",
                 "updated_ns")
UPSERT_WHISTLE = (f"INSERT OR REPLACE INTO whistles ({', '.join(WHISTLE_COLUMNS)}) "
                  f"VALUES ({', '.join('?' * len(WHISTLE_COLUMNS))})")
UPSERT_ORDER = (f"INSERT OR REPLACE INTO work_orders ({', '.join(ORDER_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(ORDER_COLUMNS))})")
INSERT_ORDER_EVENT = ("INSERT INTO work_order_events (order_id, whistle_id, at_ns, event, actor, note) "
                      "VALUES (?, ?, ?, ?, ?, ?)")

SELECT_WHISTLES = f"SELECT {', '.join(WHISTLE_COLUMNS)} FROM whistles"
SELECT_ORDERS = f"SELECT {', '.join(ORDER_COLUMNS)} FROM work_orders"
SELECT_OPEN_WHISTLES = f"{SELECT_WHISTLES} WHERE status != 'closed'"
SELECT_OPEN_ORDERS = (f"{SELECT_ORDERS} WHERE whistle_id IN (SELECT id FROM whistles WHERE status != 'closed')")
SELECT_WHISTLES_SINCE = f"{SELECT_WHISTLES} WHERE created_ns >= ? ORDER BY created_ns DESC"
SELECT_ORDERS_SINCE = (f"{SELECT_ORDERS} WHERE whistle_id IN (SELECT id FROM whistles WHERE created_ns >= ?)")
SELECT_ONE_WHISTLE = f"{SELECT_WHISTLES} WHERE id = ?"
SELECT_ORDERS_OF = f"{SELECT_ORDERS} WHERE whistle_id = ? ORDER BY id"
SELECT_EVENTS_OF = ("SELECT order_id, at_ns, event, actor, note FROM work_order_events WHERE whistle_id = ? "
                    "ORDER BY seq")


def row_dict(columns: tuple[str, ...], row: tuple[Any, ...]) -> dict[str, Any]:
    """A row as a mapping of its columns."""
    return dict(zip(columns, row, strict=True))
