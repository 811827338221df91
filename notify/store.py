"""The outbox table and its statements (a table of the service's state database; only notify writes it).

Functions here only build statements; the callers commit them.
"""

from __future__ import annotations

# The column `alert_id` holds the subject's id: an alert's, or a work order's.
SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    event_id TEXT PRIMARY KEY,
    alert_id TEXT NOT NULL, recipient TEXT NOT NULL, event TEXT NOT NULL,
    payload BLOB NOT NULL, channel INTEGER NOT NULL, status TEXT NOT NULL,
    attempts INTEGER NOT NULL, created_ns INTEGER NOT NULL, next_ns INTEGER NOT NULL,
    last_error TEXT, delivered_ns INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (status);
"""
INSERT_OUTBOX = ("INSERT OR IGNORE INTO outbox (event_id, alert_id, recipient, event, payload, channel, status, "
                 "attempts, created_ns, next_ns) VALUES (?, ?, ?, ?, ?, 0, 'pending', 0, ?, ?)")
UPDATE_OUTBOX = ("UPDATE outbox SET channel = ?, status = ?, attempts = ?, next_ns = ?, last_error = ?, "
                 "delivered_ns = ? WHERE event_id = ?")
DELIVERED_OUTBOX = ("UPDATE outbox SET channel = ?, status = 'delivered', attempts = ?, next_ns = ?, delivered_ns = ? "
                    "WHERE event_id = ?")
SELECT_PENDING = ("SELECT event_id, alert_id, recipient, event, payload, channel, attempts, created_ns, next_ns "
                  "FROM outbox WHERE status = 'pending'")
# Who was told what about some subjects (the lists as JSON arrays: any number of them in one statement).
SELECT_TOLD = ("SELECT DISTINCT alert_id, recipient FROM outbox WHERE alert_id IN (SELECT value FROM json_each(?)) "
               "AND event IN (SELECT value FROM json_each(?))")
# Every notification about one subject, and its delivery.
SELECT_SENT = ("SELECT event_id, recipient, event, channel, status, attempts, last_error, delivered_ns, created_ns "
               "FROM outbox WHERE alert_id = ? ORDER BY created_ns, recipient")
# Every notification about the subjects whose ids lie in [first, end) (a whistle's work orders: `id.` to `id/`).
SELECT_SENT_BETWEEN = ("SELECT alert_id, recipient, event, status, delivered_ns, created_ns FROM outbox "
                       "WHERE alert_id >= ? AND alert_id < ? ORDER BY created_ns, recipient")
