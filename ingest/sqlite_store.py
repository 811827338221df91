"""The embedded reading store: SQLite, for `cbrain demo` and machines without InfluxDB."""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

from kernel.reading import FieldValue, Point

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    measurement TEXT NOT NULL,
    community TEXT NOT NULL,
    device_id TEXT NOT NULL,
    building TEXT NOT NULL,
    grid TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    fields BLOB NOT NULL,
    PRIMARY KEY (measurement, community, device_id, ts_ns)
) WITHOUT ROWID;
"""


class SqliteStore:
    """Readings keyed like InfluxDB series (measurement, tags, time): a rewrite replaces, never doubles."""

    name = "sqlite"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self.url = f"sqlite://{path}"

    def _write(self, points: list[Point]) -> None:
        rows = [(p.measurement, p.tags.get("community", ""), p.tags.get("device_id", ""),
                 p.tags.get("building", ""), p.tags.get("grid", ""), p.ts_ns, orjson.dumps(p.fields))
                for p in points]
        with self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO readings VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    async def write(self, points: list[Point]) -> None:
        """Store one batch."""
        await asyncio.get_running_loop().run_in_executor(self._pool, self._write, points)

    async def ping(self) -> bool:
        """The file is always there."""
        return True

    async def close(self) -> None:
        """Close the file."""
        self._pool.shutdown(wait=True)
        self._conn.close()

    def _recent(self, measurement: str, community: str, device_id: str, since_ns: int,
                limit: int) -> list[tuple[int, dict[str, FieldValue]]]:
        rows = self._conn.execute(
            "SELECT ts_ns, fields FROM readings WHERE measurement = ? AND community = ? AND device_id = ? "
            "AND ts_ns >= ? ORDER BY ts_ns DESC LIMIT ?", (measurement, community, device_id, since_ns, limit))
        return [(int(ts), orjson.loads(fields)) for ts, fields in rows][::-1]

    async def recent(self, measurement: str, community: str, device_id: str, since_ns: int,
                     limit: int) -> list[tuple[int, dict[str, FieldValue]]]:
        """One device's readings since since_ns (the latest `limit` of them), oldest first."""
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._recent, measurement, community, device_id, since_ns, limit)

    def count(self, measurement: str | None = None) -> int:
        """How many readings are stored (for the demo and tests)."""
        if measurement is None:
            return int(self._conn.execute("SELECT count(*) FROM readings").fetchone()[0])
        return int(self._conn.execute("SELECT count(*) FROM readings WHERE measurement = ?",
                                      (measurement,)).fetchone()[0])
