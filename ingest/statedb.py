"""The ingest's durable state in SQLite (WAL): the spool of accepted batches, seq marks, device state.

A batch is committed here, together with the seq marks it advances, before its messages are
acknowledged to the broker; it leaves the spool only once the reading store has taken it. A
`kill -9` at any moment therefore loses nothing and stores nothing twice.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar

import orjson

from ingest.disk_errors import DiskProblem, classify, start_error
from ingest.lineproto import decode_line, decode_lines, encode_lines
from kernel.packed import Packed
from kernel.reading import Point
from kernel.writes import Row, Write

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    points INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    community TEXT NOT NULL,
    device_type TEXT NOT NULL,
    device_id TEXT NOT NULL,
    seq_high INTEGER NOT NULL DEFAULT -1,
    seq_mask BLOB,
    seq_high_ts_ns INTEGER NOT NULL DEFAULT 0,
    last_ts_ns INTEGER,
    last_seen_ns INTEGER,
    last_fields BLOB,
    online INTEGER,
    status_ns INTEGER,
    readings INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,
    lost INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (community, device_type, device_id)
);
CREATE TABLE IF NOT EXISTS device_journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letter (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ns INTEGER NOT NULL,
    reason TEXT NOT NULL,
    point BLOB NOT NULL
);
"""

_UPSERT_DEVICE = """
INSERT INTO devices (community, device_type, device_id, seq_high, seq_mask, seq_high_ts_ns,
                     last_ts_ns, last_seen_ns, last_fields, online, status_ns, readings, duplicates, lost)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (community, device_type, device_id) DO UPDATE SET
    seq_high = excluded.seq_high, seq_mask = excluded.seq_mask, seq_high_ts_ns = excluded.seq_high_ts_ns,
    last_ts_ns = excluded.last_ts_ns, last_seen_ns = excluded.last_seen_ns,
    last_fields = excluded.last_fields, online = excluded.online, status_ns = excluded.status_ns,
    readings = excluded.readings, duplicates = excluded.duplicates, lost = excluded.lost
"""

DeviceRow = tuple[object, ...]
# An INSERT whose VALUES is one group of placeholders can take many rows in one statement.
_VALUES = re.compile(r"\bVALUES\s*(\(\s*\?(?:\s*,\s*\?)*\s*\))", re.IGNORECASE)
# Rows per multi-row statement at most; smaller statements halve down to 1, so each INSERT has
# at most log2(MULTI_ROWS) + 1 texts in the statement cache.
MULTI_ROWS = 256
# With checkpoints of its own (see StateDB), the WAL file is cut back to this size after a checkpoint
# let it start again; between checkpoints it holds about a second of commits.
WAL_SIZE_LIMIT = 64 * 1024 * 1024
CHECKPOINT_PASSES = 4
# A writer waits this long in all for another connection's write (the store writer process releasing
# written batches), as SQLite's busy timeout would, but looks again every BUSY_STEP_S: SQLite's own
# busy handler sleeps 1, 2, 5, 10, 15... ms between tries, so a commit that met a release of a
# millisecond or two waited 8-30 ms, and the alerts of its batch with it.
BUSY_TIMEOUT_S = 30.0
BUSY_STEP_S = 0.0005
# A transaction that failed for a full, read-only or failing disk is tried again after these
# waits (doubling), until it succeeds: nothing acknowledged is lost, nothing is written twice.
DISK_RETRY_MIN_S = 0.05
DISK_RETRY_MAX_S = 1.0

log = logging.getLogger("cbrain.ingest")
F = TypeVar("F", bound=Callable[..., Any])
# Told, on the database's thread, of each failed attempt (the problem) and of the success after them (None).
DiskListener = Callable[[DiskProblem | None], None]


def durable(method: F) -> F:
    """A StateDB write that a disk problem (ingest/disk_errors.py) does not fail: the same transaction
    is tried again, with backoff, until it is committed, and `on_disk` hears of each failure and of
    the success after them. Other errors are raised as before."""
    @functools.wraps(method)
    def retrying(self: StateDB, *args: Any, **kwargs: Any) -> Any:
        delay, failed = DISK_RETRY_MIN_S, None
        while True:
            try:
                result = method(self, *args, **kwargs)
            except sqlite3.Error as exc:
                problem = classify(exc)
                if problem is None or not problem.lived_through or self.closing:
                    raise
                with contextlib.suppress(sqlite3.Error):
                    if self.conn.in_transaction:
                        self.conn.rollback()
                if failed is None:
                    log.error("writing %s failed (%s): kept, trying again until it can be written", self.path, exc)
                failed = problem
                self.on_disk(problem)
                time.sleep(delay)
                delay = min(delay * 2, DISK_RETRY_MAX_S)
                continue
            if failed is not None:
                log.warning("%s can be written again", self.path)
                self.on_disk(None)
            return result
    return retrying  # type: ignore[return-value]


@dataclass(slots=True)
class SpoolEntry:
    """A committed batch waiting for the reading store; points are None until loaded from disk."""

    id: int
    count: int
    size: int
    points: list[Point] | None
    queued_at: float = 0.0  # the event loop's time it was handed to the writer
    own: bool = False  # the service's own points (alert events), not readings


def encode_points(points: list[Point]) -> bytes:
    """Compact, order-preserving serialisation of points (the dead-letter table's)."""
    return orjson.dumps([(p.measurement, p.tags, p.fields, p.ts_ns) for p in points])


def decode_points(body: bytes) -> list[Point]:
    """The points of a spool body or a dead letter: line protocol, or (spools of earlier versions,
    dead letters) the JSON of encode_points."""
    if body[:1] == b"[":
        return [Point(m, tags, fields, ts) for m, tags, fields, ts in orjson.loads(body)]
    return decode_lines(body)


class StateDB:
    """One SQLite connection, used from one thread at a time (the ingest's database thread).

    With `own_checkpoints`, commits never copy the WAL back into the database file: `checkpoint()`
    does, on a connection of its own, from a thread of the caller's (StateThread.checkpoints). SQLite's
    automatic checkpoint runs inside the commit that crosses 1,000 WAL pages, and there it held a
    batch (and the alerts it carried) for 30-60 ms every few seconds under load.
    """

    def __init__(self, path: Path, *, fsync: str = "normal", own_checkpoints: bool = False) -> None:
        self.path = path
        self.fsync = fsync
        self.own_checkpoints = own_checkpoints
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = self._connect()
            self.conn.execute("PRAGMA journal_mode=WAL")
            if own_checkpoints:
                self.conn.execute("PRAGMA wal_autocheckpoint=0")
                self.conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            self.conn.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            # One line naming the file and what to do (a corrupt file, a read-only filesystem...).
            raise start_error(exc, path) or exc from None
        self._checkpointer: sqlite3.Connection | None = None
        self._max_vars = self.conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self._multi: dict[tuple[str, int], str] = {}
        self._reader: sqlite3.Connection | None = None
        # Told of write failures for a disk problem (the disk watch's); called on the database's thread.
        self.on_disk: DiskListener = lambda _problem: None
        self.closing = False  # set at shutdown: a write the disk refuses is no longer retried

    def _connect(self) -> sqlite3.Connection:
        # The store writer process shares the file: a writer waits for the other's short transaction.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S)
        conn.execute(f"PRAGMA synchronous={'FULL' if self.fsync == 'full' else 'NORMAL'}")
        return conn

    def close(self) -> None:
        """Checkpoint and close."""
        for other in (self._checkpointer, self._reader):
            if other is not None:
                other.close()
        self.conn.close()

    def serialized(self) -> bytes:
        """The database as committed now, WAL included, as one file's bytes (a copy through SQLite's backup)."""
        copy = sqlite3.connect(":memory:")
        try:
            self.conn.backup(copy)
            return copy.serialize()
        finally:
            copy.close()

    def checkpoint(self) -> tuple[int, int]:
        """Copy what the WAL holds into the database file without holding up commits (a PASSIVE
        checkpoint, on a connection of its own: call it from a thread other than the commits').
        Returns (frames in the WAL, frames copied).

        The next commit after a whole copy starts the WAL again from its beginning; commits that
        came while a pass copied leave frames behind it, so it copies again (each pass has less to
        copy) up to CHECKPOINT_PASSES times. Without that the WAL grew by ~12 MB/s at 10,000
        readings/s and was seldom started again."""
        if self._checkpointer is None:
            self._checkpointer = self._connect()
        frames = copied = 0
        for _ in range(CHECKPOINT_PASSES):
            _busy, frames, copied = self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if copied >= frames:
                break  # all of it: the next commit starts the WAL again
        return int(frames), int(copied)

    @durable
    def commit(self, points: list[Point], devices: Iterable[DeviceRow], writes: Iterable[Write] = (), *,
               at_ns: int = 0, lines: list[bytes] | None = None,
               refused: list[tuple[Point, str]] | None = None, device_log: bytes | None = None) -> SpoolEntry | None:
        """Durably spool a batch, the device state it changed and the stages' writes, in one transaction.

        The device state comes one of two ways (ingest.device_book): `device_log`, the batch's journal
        entry, appended to the journal; or `devices`, the rows of every device changed since the
        last snapshot, which replace the rows stored and empty the journal.

        The spool keeps a batch as the line protocol the reading store is sent (the writer process
        posts the bytes as they are): `lines` when the caller encoded them (with the points it could
        not encode in `refused`; `points` are then the lines' points, or none), else the points
        encoded here. A point line protocol cannot carry is dead-lettered in the same transaction,
        with the reason.
        """
        if lines is None:
            lines, refused = encode_lines(points)
            if refused:
                points = [p for p in points if all(p is not r for r, _ in refused)]
        elif len(points) != len(lines):
            points = []  # the writer reads the lines back from the spool
        refused = refused or []
        body = b"\n".join(lines)
        entry = None
        with self.conn:
            self._begin()
            if lines:
                cur = self.conn.execute("INSERT INTO spool (points, body) VALUES (?, ?)", (len(lines), body))
                assert cur.lastrowid is not None
                entry = SpoolEntry(cur.lastrowid, len(lines), len(body), points if points else None)
            for point, reason in refused:
                self.conn.execute("INSERT INTO dead_letter (at_ns, reason, point) VALUES (?, ?, ?)",
                                  (at_ns, reason, encode_points([point])))
            if device_log is not None:
                self.conn.execute("INSERT INTO device_journal (body) VALUES (?)", (Packed(device_log),))
            self._snapshot(list(devices), writes)
        return entry

    @durable
    def snapshot(self, devices: Sequence[DeviceRow], writes: Iterable[Write] = ()) -> None:
        """Snapshots that follow a batch's transaction in one of their own (Pipeline.commit): the
        rows of the devices changed since the last snapshot, which replace the device journal, and
        the stages' writes (their own snapshots)."""
        with self.conn:
            self._begin()
            self._snapshot(devices, writes)

    def _snapshot(self, devices: Sequence[DeviceRow], writes: Iterable[Write]) -> None:
        if devices:
            self._execute_rows(_UPSERT_DEVICE, devices)
            self.conn.execute("DELETE FROM device_journal")
        for statement, rows in writes:
            self._execute_rows(statement, rows)

    @durable
    def write(self, writes: Iterable[Write]) -> None:
        """Writes outside a batch (e.g. rule state after a deadline), in one transaction."""
        with self.conn:
            self._begin()
            for statement, rows in writes:
                self._execute_rows(statement, rows)

    def _begin(self) -> None:
        """BEGIN IMMEDIATE: the write lock, waited for in steps of BUSY_STEP_S (see there)."""
        conn = self.conn
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            give_up = time.monotonic() + BUSY_TIMEOUT_S
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() >= give_up:
                        raise
                time.sleep(BUSY_STEP_S)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")

    def _execute_rows(self, statement: str, rows: Sequence[Row]) -> None:
        """Run statement for every row, as executemany() would, in as few statements as it can.

        executemany() lets go of the GIL for every row; under load the event loop thread holds it,
        and each row then waited up to the interpreter's switch interval (5 ms by default) to get it
        back: a commit of 2,000 rows took up to seconds instead of milliseconds. One multi-row
        INSERT is one step.
        """
        found = _VALUES.search(statement) if len(rows) > 1 else None
        if found is None or statement.count("?") != found.group(1).count("?"):
            self.conn.executemany(statement, rows)
            return
        width = found.group(1).count("?")
        most = min(MULTI_ROWS, 1 << ((self._max_vars // width).bit_length() - 1))
        i, n = 0, len(rows)
        while i < n:
            size = most if n - i >= most else 1 << ((n - i).bit_length() - 1)
            text = self._multi.get((statement, size))
            if text is None:
                start, end = found.span(1)
                text = self._multi[(statement, size)] = (
                    statement[:start] + ", ".join([found.group(1)] * size) + statement[end:])
            self.conn.execute(text, list(chain.from_iterable(rows[i:i + size])))
            i += size

    def script(self, sql: str) -> None:
        """Create another part's tables."""
        self.conn.executescript(sql)

    def select(self, sql: str, params: Row = ()) -> list[Row]:
        """Read another part's rows."""
        return self.conn.execute(sql, params).fetchall()

    def read(self, sql: str, params: Row = ()) -> list[Row]:
        """Read rows on a connection of its own (from one thread other than the writes'): what is
        committed, even while a write waits for the disk (StateThread.select)."""
        if self._reader is None:
            self._reader = self._connect()
        return self._reader.execute(sql, params).fetchall()

    def pending(self) -> list[SpoolEntry]:
        """Every spooled batch, oldest first, without its points."""
        rows = self.conn.execute("SELECT id, points, length(body) FROM spool ORDER BY id").fetchall()
        return [SpoolEntry(i, n, size, None) for i, n, size in rows]

    def spooled_after(self, entry_id: int) -> list[tuple[int, int]]:
        """The spooled batches after entry_id, oldest first: (id, points)."""
        return self.conn.execute("SELECT id, points FROM spool WHERE id > ? ORDER BY id", (entry_id,)).fetchall()

    def load(self, entry_id: int) -> list[Point]:
        """The points of one spooled batch."""
        row = self.conn.execute("SELECT body FROM spool WHERE id = ?", (entry_id,)).fetchone()
        return decode_points(row[0]) if row else []

    def load_bodies(self, first: int, last: int) -> list[bytes]:
        """The line protocol of the spooled batches first..last, in spool order: one body of lines
        a batch, as stored (a batch an earlier version spooled as JSON is encoded here). A body is
        not split into its lines: a write joins the bodies, and only a refused one needs its lines."""
        rows = self.conn.execute("SELECT body FROM spool WHERE id >= ? AND id <= ? ORDER BY id", (first, last))
        out: list[bytes] = []
        for (body,) in rows:
            if body[:1] == b"[":
                body = b"\n".join(encode_lines(decode_points(body))[0])
            if body:
                out.append(body)
        return out

    def dead_letter_line(self, at_ns: int, reason: str, line: bytes) -> None:
        """Keep a line the store refused, with the store's reason."""
        self.dead_letter(at_ns, reason, decode_line(line.decode()))

    @durable
    def release_range(self, first: int, last: int) -> None:
        """Remove the batches first..last, which the reading store has taken."""
        with self.conn:
            self.conn.execute("DELETE FROM spool WHERE id >= ? AND id <= ?", (first, last))

    def next_spool_id(self) -> int:
        """The id the next spooled batch will get (AUTOINCREMENT never reuses one)."""
        row = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'spool'").fetchone()
        return int(row[0]) + 1 if row else 1

    @durable
    def release(self, ids: list[int]) -> None:
        """Remove batches the reading store has taken."""
        with self.conn:
            self.conn.executemany("DELETE FROM spool WHERE id = ?", [(i,) for i in ids])

    @durable
    def dead_letter(self, at_ns: int, reason: str, point: Point) -> None:
        """Keep a point the store refused, with the store's reason."""
        with self.conn:
            self.conn.execute("INSERT INTO dead_letter (at_ns, reason, point) VALUES (?, ?, ?)",
                              (at_ns, reason, encode_points([point])))

    def dead_letters(self, limit: int = 100) -> list[tuple[int, str, list[Point]]]:
        """The latest refused points."""
        rows = self.conn.execute(
            "SELECT at_ns, reason, point FROM dead_letter ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [(at, reason, decode_points(body)) for at, reason, body in rows]

    def devices(self) -> list[Row]:
        """Every stored device row, columns as in the schema (the journal since holds what is newer)."""
        return self.conn.execute("SELECT * FROM devices").fetchall()

    def device_journal(self) -> list[bytes]:
        """The device journal's entries since the last snapshot, oldest first."""
        return [bytes(b) for (b,) in self.conn.execute("SELECT body FROM device_journal ORDER BY id")]
