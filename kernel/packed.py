"""Journal entries as the state database keeps them: compressed by the thread that writes them.

A batch's journal entry (ingest.device_book, rules.runner) is JSON of about 160 bytes a reading:
~43 KB for a commit of 270 readings, two of them a commit. zlib at level 1 makes that a tenth in
~90 µs, which the database's thread spends (bound as a parameter, the entry is compressed there,
and zlib lets the GIL go meanwhile). Fewer pages go to the WAL with each commit, and a snapshot,
whose transaction empties the journals, frees a tenth of the pages: SQLite reads every page it
frees, and under load that transaction (30-90 ms) held up the next batch's and its alerts.
"""

from __future__ import annotations

import sqlite3
import zlib

LEVEL = 1
_ZLIB = b"x"  # the first byte of a zlib stream (deflate, 32 KB window); JSON starts with [ or {


class Packed:
    """Bytes stored compressed: the sqlite3 module asks for the stored value when it binds it."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def __conform__(self, protocol: type[sqlite3.PrepareProtocol]) -> bytes:
        return zlib.compress(self.raw, LEVEL)


def unpacked(body: bytes) -> bytes:
    """A stored entry as written: compressed, or (entries of earlier versions) as it was."""
    return zlib.decompress(body) if body[:1] == _ZLIB else body
