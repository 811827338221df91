"""What a failing state database or its filesystem means, decided in one place.

    sqlite3.Error (its error code) ─┐
    OSError (its errno) ────────────┴─► classify ─► FULL | READ_ONLY | IO    lived through: writes are retried
                                                    CANTOPEN | CORRUPT       at start: one line, non-zero exit

A full disk (SQLITE_FULL, ENOSPC, EDQUOT), a filesystem turned read-only (SQLITE_READONLY, EROFS)
or failing (SQLITE_IOERR*, EIO) is a condition the running service waits out: StateDB keeps the
transaction that failed and retries it (ingest/statedb.py), the disk watch pauses intake and tells
the operators (ingest/disk_watch.py). A database that cannot be opened or is corrupt is a start-up
error: `cbrain run` says which file and what to do, in one line.
"""

from __future__ import annotations

import errno
import sqlite3
from enum import StrEnum
from pathlib import Path

from kernel.errors import CBError

# SQLite's primary result codes (the low byte of an extended code).
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_NOTADB = 26


class DiskProblem(StrEnum):
    """Why the state database cannot be written (or opened)."""

    FULL = "full"
    READ_ONLY = "read_only"
    IO = "io_error"
    CANTOPEN = "cannot_open"
    CORRUPT = "corrupt"

    @property
    def lived_through(self) -> bool:
        """Whether the running service waits it out (retrying) rather than stopping."""
        return self in (DiskProblem.FULL, DiskProblem.READ_ONLY, DiskProblem.IO)


_BY_CODE = {SQLITE_FULL: DiskProblem.FULL, SQLITE_READONLY: DiskProblem.READ_ONLY, SQLITE_IOERR: DiskProblem.IO,
            SQLITE_CANTOPEN: DiskProblem.CANTOPEN, SQLITE_CORRUPT: DiskProblem.CORRUPT,
            SQLITE_NOTADB: DiskProblem.CORRUPT}
_BY_ERRNO = {errno.ENOSPC: DiskProblem.FULL, errno.EDQUOT: DiskProblem.FULL, errno.EROFS: DiskProblem.READ_ONLY,
             errno.EIO: DiskProblem.IO, errno.EACCES: DiskProblem.CANTOPEN}
# Where a driver gives no error code: SQLite's own messages.
_BY_MESSAGE = (("disk is full", DiskProblem.FULL), ("readonly database", DiskProblem.READ_ONLY),
               ("disk i/o error", DiskProblem.IO), ("unable to open", DiskProblem.CANTOPEN),
               ("malformed", DiskProblem.CORRUPT), ("not a database", DiskProblem.CORRUPT))

# What each problem means to the operator, and what to do.
WHAT = {DiskProblem.FULL: "its disk is full", DiskProblem.READ_ONLY: "its filesystem is read-only",
        DiskProblem.IO: "its disk fails (I/O error)", DiskProblem.CANTOPEN: "it cannot be opened",
        DiskProblem.CORRUPT: "it is corrupt"}
TODO = {DiskProblem.FULL: "free space on that filesystem (docs/operations.md, 'Disk')",
        DiskProblem.READ_ONLY: "remount it read-write, or point state_dir at a writable directory",
        DiskProblem.IO: "check the disk (dmesg); restore state_dir from a backup if it is damaged "
                        "(docs/operations.md, 'Backups of state_dir')",
        DiskProblem.CANTOPEN: "check that state_dir exists and the service's user may write it",
        DiskProblem.CORRUPT: "stop the service and restore state_dir from a backup "
                             "(docs/operations.md, 'Backups of state_dir')"}


def classify(exc: BaseException) -> DiskProblem | None:
    """The disk problem an error of SQLite or of the OS stands for; None for any other error."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(code, int) and (found := _BY_CODE.get(code & 0xFF)) is not None:
            return found
        text = str(exc).lower()
        return next((p for words, p in _BY_MESSAGE if words in text), None)
    if isinstance(exc, OSError):
        return _BY_ERRNO.get(exc.errno or 0)
    return None


class StateDBError(CBError):
    """The state database cannot be used at start: the message (one line) names the file and what to do."""


def start_error(exc: BaseException, path: Path) -> StateDBError | None:
    """The one-line error of a state database that fails at start, or None if `exc` is no disk problem."""
    problem = classify(exc)
    if problem is None:
        return None
    detail = str(exc).replace("\n", " ")
    return StateDBError(f"state database {path}: {WHAT[problem]} ({detail}): {TODO[problem]}")
