"""The state database's thread: every statement the service runs on StateDB goes through it, in order.

    Pipeline (batch commits, spool releases) ─┐
    Spool (the service's own points) ─────────┼─► StateThread ─► StateDB (one SQLite connection, one thread)
    rules, alerts, orders, losses, pages ─────┘         └─► checkpoints (a thread of their own, when StateDB
                                                            has checkpoints of its own)

It is made before the pipeline and the parts that commit with its batches, and handed to each of
them: the rules runner writes through it and is one of the pipeline's commit participants, so
neither has to be made first. Work goes to one executor of one thread (`executor`), so a batch's
transaction and the writes submitted after it run in the order they were submitted. A write the disk
refuses (full, read-only, failing) is retried there until it is committed (StateDB, `durable`), and
what was submitted after it waits; `select` reads on a connection and thread of their own, so the
pages and the API's reads go on meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor

from ingest.statedb import StateDB
from kernel.reading import Point
from kernel.writes import Row, Write

log = logging.getLogger("cbrain.ingest")

# A state database with checkpoints of its own (StateDB) has its WAL copied back this often.
CHECKPOINT_EVERY_S = 1.0


class StateThread:
    """StateDB's thread, and the awaitable reads and writes the rest of the service makes on it."""

    def __init__(self, db: StateDB) -> None:
        self.db = db
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="statedb")
        self._checkpoint_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="statedb-checkpoint")
        self._read_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="statedb-read")

    async def write(self, writes: list[Write]) -> None:
        """Commit writes outside a batch (rules, alerts, orders, losses)."""
        await asyncio.get_running_loop().run_in_executor(self.executor, self.db.write, writes)

    async def script(self, sql: str) -> None:
        """Create a part's tables."""
        await asyncio.get_running_loop().run_in_executor(self.executor, self.db.script, sql)

    async def select(self, sql: str, params: Row = ()) -> list[Row]:
        """Read a part's rows (what is committed)."""
        return await asyncio.get_running_loop().run_in_executor(self._read_thread, self.db.read, sql, params)

    async def dead_letters(self, limit: int) -> list[tuple[int, str, list[Point]]]:
        """The latest points the store refused, with its reasons."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.db.dead_letters, limit)

    async def checkpoints(self) -> None:
        """Checkpoint the state database every CHECKPOINT_EVERY_S, on a thread of its own while
        commits go on, when it has checkpoints of its own (StateDB)."""
        if not self.db.own_checkpoints:
            return
        loop = asyncio.get_running_loop()
        failing = False
        while True:
            await asyncio.sleep(CHECKPOINT_EVERY_S)
            try:
                await loop.run_in_executor(self._checkpoint_thread, self.db.checkpoint)
            except sqlite3.Error as exc:  # e.g. a full disk: the WAL keeps everything meanwhile
                if not failing:
                    log.warning("checkpoint of %s failed, retrying every %g s: %s", self.db.path,
                                CHECKPOINT_EVERY_S, exc)
                failing = True
                continue
            if failing:
                log.warning("checkpoint of %s works again", self.db.path)
            failing = False

    async def snapshot(self) -> bytes:
        """The whole database as committed now, as one file's bytes (the cluster's checkpoint of a partition)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.db.serialized)

    async def close(self) -> None:
        """Release the database threads (what was submitted runs first, once: a write the disk
        refuses is not retried any longer)."""
        self.db.closing = True
        self._checkpoint_thread.shutdown(wait=True)
        self._read_thread.shutdown(wait=True)
        self.executor.shutdown(wait=True)
