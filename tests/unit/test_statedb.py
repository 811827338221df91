"""StateDB's writes: many rows in few statements must leave exactly what executemany() would."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import statedb
from ingest.lineproto import encode_lines
from ingest.statedb import MULTI_ROWS, StateDB
from ingest.store_process import OWN, own_lines
from kernel.reading import Point

UPSERT = ("INSERT INTO kv VALUES (?, ?, ?) ON CONFLICT (k) DO UPDATE SET a = excluded.a, b = excluded.b")
APPEND = "INSERT INTO log (k, v) VALUES (?, ?)"
WITH_LITERAL = "INSERT OR IGNORE INTO log (k, v) VALUES (?, 'fixed')"
UPDATE = "UPDATE kv SET b = ? WHERE k = ?"
SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (k INTEGER PRIMARY KEY, a TEXT, b BLOB);
CREATE TABLE IF NOT EXISTS log (id INTEGER PRIMARY KEY AUTOINCREMENT, k INTEGER, v TEXT);
"""


def contents(conn: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
    return (conn.execute("SELECT * FROM kv ORDER BY k").fetchall(),
            conn.execute("SELECT * FROM log ORDER BY id").fetchall())


rows = st.lists(st.tuples(st.integers(0, 40), st.text(max_size=4), st.binary(max_size=4)), max_size=MULTI_ROWS * 3)


@settings(max_examples=60, deadline=None)
@given(rows, rows)
def test_multi_row_writes_equal_executemany(tmp_path_factory: Any, first: list[Any], second: list[Any]) -> None:
    db = StateDB(Path(tmp_path_factory.mktemp("db")) / "state.db")
    plain = sqlite3.connect(":memory:", isolation_level=None)
    db.script(SCHEMA)
    plain.executescript(SCHEMA)
    for batch in (first, second):
        writes: list[tuple[str, list[tuple[Any, ...]]]] = [
            (UPSERT, batch), (APPEND, [(k, a) for k, a, _b in batch]), (WITH_LITERAL, [(k,) for k, *_ in batch]),
            (UPDATE, [(b + b"!", k) for k, _a, b in batch[:5]])]
        db.write(writes)
        with plain:
            plain.execute("BEGIN")
            for statement, params in writes:
                plain.executemany(statement, params)
    assert contents(db.conn) == contents(plain)
    db.close()


def test_commit_keeps_the_device_rows(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    rows = [("c", "water_level", f"d{i}", i, b"\x01", i, i, i, b"{}", 1, i, i, 0, 0) for i in range(600)]
    entry = db.commit([Point("water_level", {"community": "c"}, {"level_cm": 1.0}, 1)], rows)
    assert entry is not None and entry.count == 1
    assert sorted(db.devices()) == sorted(rows)
    db.commit([], [(*r[:3], r[3] + 1, *r[4:]) for r in rows[:300]])
    assert [r[3] for r in sorted(db.devices(), key=lambda r: int(r[2][1:]))] == [i + 1 for i in range(300)] + list(
        range(300, 600))
    db.close()


def test_large_batches_with_repeated_keys(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    plain = sqlite3.connect(":memory:", isolation_level=None)
    db.script(SCHEMA)
    plain.executescript(SCHEMA)
    for n in (MULTI_ROWS - 1, MULTI_ROWS, MULTI_ROWS + 1, 1000, 2 * MULTI_ROWS + 7):
        batch = [(i % 97, f"{n}-{i}", bytes([i % 256])) for i in range(n)]
        writes: list[tuple[str, list[tuple[Any, ...]]]] = [(UPSERT, batch), (APPEND, [(k, a) for k, a, _b in batch])]
        db.write(writes)
        for statement, params in writes:
            plain.executemany(statement, params)
    assert contents(db.conn) == contents(plain)
    db.close()


def spool_batches(db: StateDB, n: int, size: int = 20_000) -> None:
    for i in range(n):
        db.commit([], [], lines=[b"m,c=x v=%d %d" % (i, i) + b" " * size])


def test_with_checkpoints_of_its_own_a_commit_never_checkpoints(tmp_path: Path) -> None:
    own = StateDB(tmp_path / "own.db", own_checkpoints=True)
    auto = StateDB(tmp_path / "auto.db")
    for db in (own, auto):
        spool_batches(db, 400)  # ~8 MB of WAL: past SQLite's automatic checkpoint at 1,000 pages (4 MB)
    wal_own = (tmp_path / "own.db-wal").stat().st_size
    assert wal_own > 8_000_000  # nothing copied back by the commits...
    assert (tmp_path / "auto.db-wal").stat().st_size < wal_own / 1.5  # ...as SQLite's own checkpoints would
    frames, copied = own.checkpoint()
    assert frames > 0 and copied == frames
    spool_batches(own, 1)  # the first commit after a whole copy starts the WAL again from its beginning
    frames_after, _ = own.checkpoint()
    assert 0 < frames_after < frames / 10
    spool_batches(own, 400)
    assert (tmp_path / "own.db-wal").stat().st_size <= wal_own + 200_000  # written over, not grown
    own.close()
    auto.close()


def test_a_checkpoint_from_another_thread_keeps_every_commit(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "s.db", own_checkpoints=True)
    stop = threading.Event()
    passes: list[tuple[int, int]] = []

    def checkpoints() -> None:
        while not stop.is_set():
            passes.append(db.checkpoint())

    t = threading.Thread(target=checkpoints)
    t.start()
    spool_batches(db, 300, size=2_000)
    stop.set()
    t.join()
    assert passes
    assert [e.count for e in db.pending()] == [1] * 300
    db.close()
    again = StateDB(tmp_path / "s.db", own_checkpoints=True)
    assert len(again.pending()) == 300
    again.close()


names = st.sampled_from(["alert", "alerts", "alert_x", "ebike_charger", "Alert"])
texts = st.text(st.sampled_from("alert, =\"\\x"), max_size=12)
points = st.builds(Point, names, st.dictionaries(st.sampled_from(["community", "alert", "device_id"]), texts),
                   st.dictionaries(st.sampled_from(["message", "level_cm"]), st.one_of(texts, st.floats(-5, 5)),
                                   min_size=1),
                   st.integers(0, 2**60))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(points, max_size=6), min_size=1, max_size=5), st.booleans())
def test_the_writer_reads_the_spool_as_its_lines_and_counts_the_alert_lines(
        tmp_path_factory: Any, batches: list[list[Point]], legacy_first: bool) -> None:
    """The writer process joins the spooled bodies without splitting them into lines: what it
    sends must be the batches' lines in spool order, and its count of the service's own points
    (measurement "alert") the count a line-by-line look gives."""
    db = StateDB(Path(tmp_path_factory.mktemp("db")) / "state.db")
    if legacy_first:  # a batch an earlier version spooled as JSON
        legacy = [p for p in batches[0] if not encode_lines([p])[1]]
        db.conn.execute("INSERT INTO spool (points, body) VALUES (?, ?)", (len(legacy), orjson.dumps(
            [[p.measurement, p.tags, p.fields, p.ts_ns] for p in legacy])))
        batches = batches[1:]
    for batch in batches:
        db.commit(batch, [])
    entries = db.pending()
    expected = [line for batch in (([legacy] if legacy_first else []) + batches) for line in encode_lines(batch)[0]]
    bodies = db.load_bodies(entries[0].id, entries[-1].id) if entries else []
    assert (b"\n".join(bodies).split(b"\n") if bodies else []) == expected
    assert sum(map(own_lines, bodies)) == sum(line.startswith(OWN) for line in expected)
    db.close()


def test_a_commit_waits_for_another_connections_write_in_short_steps(tmp_path: Path, monkeypatch: Any) -> None:
    """While the store writer process holds the write lock, a commit looks again every BUSY_STEP_S
    (SQLite's own handler would sleep 1, 2, 5, 10 ms...) and goes through once the lock is let go;
    a lock held past BUSY_TIMEOUT_S fails it, and the connection's busy timeout is as it was."""
    db = StateDB(tmp_path / "state.db")
    other = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            other.execute("COMMIT")

    monkeypatch.setattr(statedb.time, "sleep", sleep)
    db.commit([Point("ebike_charger", {"device_id": "eb-1"}, {"current_a": 1.0}, 1)], [])
    assert slept == [statedb.BUSY_STEP_S] * 3
    assert db.pending()[0].count == 1
    assert db.conn.execute("PRAGMA busy_timeout").fetchone()[0] == int(statedb.BUSY_TIMEOUT_S * 1000)

    other.execute("BEGIN IMMEDIATE")
    monkeypatch.setattr(statedb, "BUSY_TIMEOUT_S", 0.01)
    monkeypatch.setattr(statedb.time, "sleep", lambda _s: None)
    try:
        db.commit([Point("ebike_charger", {"device_id": "eb-1"}, {"current_a": 2.0}, 2)], [])
    except sqlite3.OperationalError as exc:
        assert exc.sqlite_errorcode == sqlite3.SQLITE_BUSY
    else:
        raise AssertionError("a commit went through while another connection held the write lock")
    other.execute("ROLLBACK")
    assert [e.count for e in db.pending()] == [1]
