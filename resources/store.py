"""The resources' tables in the state database: stock and its ledger, occupancy and its updates, the rules'
conditions, the door knocks. Functions here only build statements; the caller commits them."""

from __future__ import annotations

SCHEMA = """
CREATE TABLE IF NOT EXISTS supply_stock (
    id TEXT PRIMARY KEY, quantity INTEGER NOT NULL, updated_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS supply_movements (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    supply_id TEXT NOT NULL, community TEXT NOT NULL, at_ns INTEGER NOT NULL,
    delta INTEGER NOT NULL, quantity INTEGER NOT NULL, reason TEXT NOT NULL, note TEXT,
    actor TEXT NOT NULL, role TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS supply_movements_supply ON supply_movements (supply_id, seq);
CREATE TABLE IF NOT EXISTS shelter_occupancy (
    id TEXT PRIMARY KEY, count INTEGER NOT NULL, updated_ns INTEGER NOT NULL, actor TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS resource_conditions (
    rule TEXT NOT NULL, target TEXT NOT NULL, level TEXT NOT NULL, episode TEXT NOT NULL,
    started_ns INTEGER NOT NULL, PRIMARY KEY (rule, target)
);
CREATE TABLE IF NOT EXISTS door_knocks (
    alert_id TEXT NOT NULL, vulnerable_id TEXT NOT NULL,
    community TEXT NOT NULL, building TEXT NOT NULL, grid TEXT NOT NULL,
    created_ns INTEGER NOT NULL, due_ns INTEGER NOT NULL, escalated INTEGER NOT NULL,
    status TEXT NOT NULL, actor TEXT, at_ns INTEGER, note TEXT,
    PRIMARY KEY (alert_id, vulnerable_id)
);
"""

UPSERT_STOCK = "INSERT OR REPLACE INTO supply_stock (id, quantity, updated_ns) VALUES (?, ?, ?)"
INSERT_MOVEMENT = ("INSERT INTO supply_movements (supply_id, community, at_ns, delta, quantity, reason, note, "
                   "actor, role) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
UPSERT_OCCUPANCY = "INSERT OR REPLACE INTO shelter_occupancy (id, count, updated_ns, actor) VALUES (?, ?, ?, ?)"
UPSERT_CONDITION = ("INSERT OR REPLACE INTO resource_conditions (rule, target, level, episode, started_ns) "
                    "VALUES (?, ?, ?, ?, ?)")
DELETE_CONDITION = "DELETE FROM resource_conditions WHERE rule = ? AND target = ?"
KNOCK_COLUMNS = ("alert_id", "vulnerable_id", "community", "building", "grid", "created_ns", "due_ns", "escalated",
                 "status", "actor", "at_ns", "note")
UPSERT_KNOCK = (f"INSERT OR REPLACE INTO door_knocks ({', '.join(KNOCK_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(KNOCK_COLUMNS))})")

SELECT_STOCK = "SELECT id, quantity FROM supply_stock"
SELECT_OCCUPANCY = "SELECT id, count, updated_ns FROM shelter_occupancy"
SELECT_CONDITIONS = "SELECT rule, target, level, episode, started_ns FROM resource_conditions"
# Door-knock lists of the last 30 days: they stay in memory (a handful per red alert).
SELECT_KNOCKS = f"SELECT {', '.join(KNOCK_COLUMNS)} FROM door_knocks WHERE created_ns >= ? ORDER BY alert_id"
MOVEMENT_COLUMNS = ("seq", "supply_id", "community", "at_ns", "delta", "quantity", "reason", "note", "actor", "role")
SELECT_MOVEMENTS = f"SELECT {', '.join(MOVEMENT_COLUMNS)} FROM supply_movements"
