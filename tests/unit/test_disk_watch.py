"""state_dir's disk: errors classified, the condition's marks and alerts, a refused write kept and retried."""

from __future__ import annotations

import errno
import sqlite3
import threading
from pathlib import Path

import pytest

from ingest import statedb
from ingest.disk_errors import DiskProblem, StateDBError, classify
from ingest.disk_watch import DISK_FULL, DISK_LOW, MB, DiskCondition, Marks, Reserve, marks
from ingest.statedb import StateDB
from kernel.alerting import SERVICE_WIDE, Level, TransitionKind
from kernel.reading import Point
from kernel.settings import IngestSettings

GB = 1024 * MB


def full_error(tmp_path: Path) -> sqlite3.Error:
    """A real SQLITE_FULL: a database that may not grow."""
    conn = sqlite3.connect(tmp_path / "small.db", isolation_level=None)
    conn.execute("CREATE TABLE t (b BLOB)")
    conn.execute(f"PRAGMA max_page_count={conn.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.raises(sqlite3.Error) as caught:
        conn.execute("INSERT INTO t VALUES (zeroblob(100000))")
    conn.close()
    return caught.value


def test_errors_are_classified_by_sqlite_code_and_errno(tmp_path: Path) -> None:
    assert classify(full_error(tmp_path)) is DiskProblem.FULL
    (tmp_path / "junk.db").write_bytes(b"not a database at all, just some text" * 100)
    with pytest.raises(sqlite3.Error) as corrupt:
        sqlite3.connect(tmp_path / "junk.db").execute("SELECT * FROM sqlite_master")
    assert classify(corrupt.value) is DiskProblem.CORRUPT
    assert classify(OSError(errno.ENOSPC, "No space left on device")) is DiskProblem.FULL
    assert classify(OSError(errno.EROFS, "Read-only file system")) is DiskProblem.READ_ONLY
    assert classify(OSError(errno.EIO, "Input/output error")) is DiskProblem.IO
    assert classify(sqlite3.OperationalError("database is locked")) is None
    assert classify(ValueError("no")) is None
    assert [p.lived_through for p in DiskProblem] == [True, True, True, False, False]


def test_a_corrupt_state_database_is_one_line_naming_it_and_the_backup(tmp_path: Path) -> None:
    path = tmp_path / "state" / "ingest.db"
    path.parent.mkdir()
    path.write_bytes(b"\x00garbage" * 4096)
    with pytest.raises(StateDBError) as caught:
        StateDB(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "corrupt" in message
    assert "restore state_dir from a backup" in message


def test_default_marks_fit_small_and_large_disks() -> None:
    default = IngestSettings()
    assert marks(default, 32 * MB).pause == 32 * MB // 10  # a small edge disk keeps 90 % for the spool
    assert marks(default, 2 * GB).pause == 2 * GB // 10
    assert marks(default, 4 * GB).pause == 256 * MB
    assert marks(default, 100 * GB).pause == 5 * GB
    m = marks(default, 100 * GB)
    assert (m.low, m.reserve, m.hysteresis) == (10 * GB, 4 * MB, GB)
    set_ = marks(IngestSettings(disk_pause_free_mb=0, disk_low_free_mb=3), 16 * MB)
    assert (set_.pause, set_.low) == (0, 3 * MB)
    with pytest.raises(ValueError, match="at least disk_pause_free_mb"):
        IngestSettings(disk_pause_free_mb=10, disk_low_free_mb=5)


def test_low_then_paused_then_back_with_hysteresis_and_the_reserve() -> None:
    c = DiskCondition(Marks(pause=10 * MB, low=20 * MB, reserve=2 * MB, hysteresis=MB), "cbrain-ingest")
    assert c.observe(50 * MB, 0, 1) == [] and c.state == "ok"
    fired = c.observe(19 * MB, 0, 2)
    assert [(t.kind, t.rule, t.level) for t in fired] == [(TransitionKind.FIRE, DISK_LOW, Level.YELLOW)]
    assert (fired[0].community, fired[0].device_id, fired[0].value) == (SERVICE_WIDE, "cbrain-ingest", 19.0)
    assert c.observe(20 * MB, 0, 3) == [] and c.low  # not out until the hysteresis is passed
    paused = c.observe(9 * MB, 0, 4)
    assert [(t.kind, t.rule, t.level) for t in paused] == [(TransitionKind.FIRE, DISK_FULL, Level.ORANGE)]
    assert c.state == "paused"
    assert c.observe(10 * MB, 0, 5) == [] and c.paused
    assert c.observe(11 * MB, 2 * MB, 6) == [] and c.paused  # the reserve must be made again first
    cleared = c.observe(13 * MB, 2 * MB, 7)
    assert [(t.kind, t.rule, t.previous) for t in cleared] == [(TransitionKind.CLEAR, DISK_FULL, Level.ORANGE)]
    assert cleared[0].episode == paused[0].episode
    assert [t.rule for t in c.observe(22 * MB, 0, 8)] == [DISK_LOW] and c.state == "ok"


def test_a_failed_write_pauses_until_it_works_and_space_is_back() -> None:
    c = DiskCondition(Marks(pause=0, low=0, reserve=2 * MB, hysteresis=MB), "i")
    assert c.observe(0, 0, 1) == []  # no watermark: nothing until a write fails
    fired = c.failed(DiskProblem.FULL, 2)
    assert [t.rule for t in fired] == [DISK_FULL] and c.state == "failing"
    assert c.failed(DiskProblem.FULL, 3) == []  # one episode, however many retries
    c.written()
    assert c.observe(2 * MB, 2 * MB, 4) == [] and c.state == "paused"
    assert [t.kind for t in c.observe(3 * MB, 2 * MB, 5)] == [TransitionKind.CLEAR] and c.state == "ok"


def test_the_reserve_is_made_and_given_up(tmp_path: Path) -> None:
    r = Reserve(tmp_path / "disk-reserve", MB)
    assert r.missing == MB and r.make() and r.present and r.missing == 0
    assert (tmp_path / "disk-reserve").stat().st_size == MB
    assert Reserve(tmp_path / "disk-reserve", MB).present  # found again at the next start
    r.release()
    assert not r.present and not (tmp_path / "disk-reserve").exists()


def test_a_write_the_disk_refuses_is_kept_and_retried_until_it_is_committed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statedb, "DISK_RETRY_MAX_S", 0.05)
    db = StateDB(tmp_path / "ingest.db")
    told: list[DiskProblem | None] = []
    pages = db.conn.execute("PRAGMA page_count").fetchone()[0]
    db.conn.execute(f"PRAGMA max_page_count={pages}")

    def listener(problem: DiskProblem | None) -> None:
        told.append(problem)
        if len(told) == 3:  # space comes back after a few failed attempts (on the database's thread)
            db.conn.execute("PRAGMA max_page_count=1000000")

    db.on_disk = listener
    points = [Point("water_level", {"community": "c", "device_id": f"d{i}"}, {"level_cm": float(i)}, i)
              for i in range(2000)]
    done: list[object] = []
    thread = threading.Thread(target=lambda: done.append(db.commit(points, [], device_log=b"x" * 50_000)))
    thread.start()
    thread.join(20)
    assert done and done[0] is not None, "the commit must end, committed"
    assert told == [DiskProblem.FULL] * 3 + [None]
    assert db.conn.execute("SELECT count(*), sum(points) FROM spool").fetchone() == (1, 2000)
    assert db.conn.execute("SELECT count(*) FROM device_journal").fetchone() == (1,)
    db.close()


def test_writes_over_http_answer_503_while_the_state_database_cannot_be_written() -> None:
    from typing import Any, cast

    from fastapi import Depends, FastAPI
    from fastapi.testclient import TestClient

    from app.api import refuse_writes_while_unwritable
    from app.http.errors import refused_answer
    from app.view import ServiceView
    from kernel.errors import Refused

    class View:
        def __init__(self) -> None:
            self.disk: dict[str, Any] = {"writable": True, "error": None}

        def state_unwritable(self) -> str | None:
            return None if self.disk["writable"] else str(self.disk["error"])

    view = View()
    app = FastAPI(dependencies=[Depends(refuse_writes_while_unwritable(cast(ServiceView, view)))])
    app.add_exception_handler(Refused, refused_answer)
    app.get("/api/v1/alerts")(lambda: [])
    app.post("/api/v1/alerts/{alert_id}/ack")(lambda alert_id: {"id": alert_id})
    app.post("/login")(lambda: {})
    client = TestClient(app)
    assert client.post("/api/v1/alerts/a1/ack").status_code == 200
    view.disk = {"writable": False, "error": "the state database cannot be written: its disk is full"}
    refused = client.post("/api/v1/alerts/a1/ack")
    assert refused.status_code == 503 and "disk is full" in refused.json()["detail"]
    assert client.get("/api/v1/alerts").status_code == 200  # reads go on
    assert client.post("/login").status_code == 200  # signing in writes nothing
