"""state_dir's disk: its free space, writes that fail for it, and what the service does about them.

    every WATCH_EVERY_S: statvfs(state_dir) + ingest.db's free pages ─┐
    StateDB (database thread): a write failed for the disk, or ───────┼─► DiskCondition ─► transitions ─► apply
        works again (ingest/statedb.py `durable`)                     │   ok · low · paused · failing     (alerts)
                                                                      └─► Spool.hold (intake), /health "disk", /metrics
    Reserve: a file of ingest.disk_reserve_mb in state_dir, made at start, given up at the first write the
    full disk refuses, so that the transaction kept and the alert about it can still be committed

Below `low` the service raises service.disk_low (yellow); below `pause` (the watermark) or while a
write fails it stops taking readings (the broker keeps them, nothing is acknowledged that is not
committed) and raises service.disk_full (orange): both to the admins and the street office. It
resumes by itself once the writes work and the free space is back above the watermark (with the
reserve made again). Nothing here runs per reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import sqlite3
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.disk_errors import WHAT, DiskProblem
from ingest.losses import SERVICE_TYPE
from ingest.spool import Spool
from ingest.state_thread import StateThread
from kernel.alerting import SERVICE_WIDE, Alert, Level, Transition, TransitionKind
from kernel.clock import Clock
from kernel.ids import UNKNOWN
from kernel.metrics import Registry
from kernel.settings import IngestSettings

log = logging.getLogger("cbrain")

DISK_LOW = "service.disk_low"
DISK_FULL = "service.disk_full"
DISK_RULES = frozenset({DISK_LOW, DISK_FULL})
LEVELS = {DISK_LOW: Level.YELLOW, DISK_FULL: Level.ORANGE}
WATCH_EVERY_S = 1.0
# An alert of this watch the outbox cannot take within this long is sent directly (alerts.runner).
UNSAVED_AFTER_S = 2.0
RESERVE_FILE = "disk-reserve"
MB = 1024 * 1024

Apply = Callable[[list[Transition]], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class Marks:
    """Free bytes below which the disk is low, and intake pauses; the reserve; how far above a mark is out."""

    pause: int
    low: int
    reserve: int
    hysteresis: int


def marks(settings: IngestSettings, total: int) -> Marks:
    """The marks for a filesystem of `total` bytes (defaults in kernel/settings/service.py)."""
    pause = (min(max(256 * MB, total // 20), total // 10) if settings.disk_pause_free_mb is None
             else int(settings.disk_pause_free_mb * MB))
    low = 2 * pause if settings.disk_low_free_mb is None else int(settings.disk_low_free_mb * MB)
    return Marks(pause, max(low, pause), int(settings.disk_reserve_mb * MB), max(MB, total // 100))


# The bytes of ingest.db's free pages: space SQLite reuses before it grows the file.
FREE_PAGES_BYTES = "SELECT f.freelist_count * p.page_size FROM pragma_freelist_count() f, pragma_page_size() p"


class DiskCondition:
    """Pure: free space and write outcomes in, the state and the alerts' transitions out."""

    def __init__(self, m: Marks, instance: str) -> None:
        self.marks = m
        self.instance = instance  # the alerts' device_id: which service (its MQTT client id)
        self.free: int | None = None
        self.problem: DiskProblem | None = None  # why writes fail now, or None
        self.low = False
        self.paused = False
        self.open: dict[str, tuple[str, int]] = {}  # rule -> (episode, started_ns)

    @property
    def state(self) -> str:
        """ok, low, paused (at the watermark) or failing (writes fail)."""
        return "failing" if self.problem else "paused" if self.paused else "low" if self.low else "ok"

    def observe(self, free: int, reserve_missing: int, now: int) -> list[Transition]:
        """Free bytes now; `reserve_missing`: the reserve to make again before intake goes on."""
        m = self.marks
        self.free = free
        self.low = free < m.low + (m.hysteresis if self.low else 0)
        enough = free >= m.pause + reserve_missing + (m.hysteresis if self.paused else 0)
        self.paused = self.problem is not None or not enough
        return self._episodes(now)

    def failed(self, problem: DiskProblem, now: int) -> list[Transition]:
        """A write failed for the disk (it is being retried)."""
        self.problem = problem
        self.paused = True
        return self._episodes(now)

    def written(self) -> None:
        """A write failed before works again (the next observe decides whether intake goes on)."""
        self.problem = None

    def adopt(self, alerts: Iterable[Alert]) -> None:
        """Open alerts of this watch a previous run left: cleared here once their condition is gone."""
        for a in alerts:
            if a.rule in DISK_RULES:
                self.open.setdefault(a.rule, (a.id, a.started_ns))

    def _episodes(self, now: int) -> list[Transition]:
        out: list[Transition] = []
        for rule, on in ((DISK_LOW, self.low), (DISK_FULL, self.paused)):
            if on and rule not in self.open:
                episode = hashlib.sha1(f"{rule}|{self.instance}|{now}".encode()).hexdigest()[:20]
                self.open[rule] = (episode, now)
                out.append(self._transition(TransitionKind.FIRE, rule, now))
            elif not on and rule in self.open:
                out.append(self._transition(TransitionKind.CLEAR, rule, now))
                del self.open[rule]
        return out

    def _transition(self, kind: TransitionKind, rule: str, now: int) -> Transition:
        episode, started = self.open[rule]
        level = LEVELS[rule]
        free_mb = round((self.free or 0) / MB, 1)
        return Transition(kind, rule, episode, None if kind is TransitionKind.CLEAR else level,
                          level if kind is TransitionKind.CLEAR else None, SERVICE_WIDE, UNKNOWN, UNKNOWN,
                          self.instance, SERVICE_TYPE, free_mb, now, started)


class Reserve:
    """A file of `size` bytes in state_dir, given up when the disk is full (thread-safe)."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self.present = path.exists() and path.stat().st_size >= size

    @property
    def missing(self) -> int:
        """Bytes to set aside again before intake goes on."""
        return 0 if self.present or not self.size else self.size

    def make(self) -> bool:
        """Set the reserve aside (blocks: call it off the event loop); whether it is there."""
        if self.present or not self.size:
            return True
        partial = self.path.with_suffix(".part")
        try:
            with partial.open("wb") as f:
                os.posix_fallocate(f.fileno(), 0, self.size)
                os.fsync(f.fileno())
            partial.replace(self.path)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            log.warning("cannot set %d MB aside in %s: %s", self.size // MB, self.path, exc)
            return False
        self.present = True
        return True

    def release(self) -> None:
        """Give the space back to the filesystem (for the writes that failed)."""
        if self.present:
            self.path.unlink(missing_ok=True)
            self.present = False
            log.warning("released the %d MB reserve %s for the writes the full disk refused", self.size // MB,
                        self.path)


class DiskWatch:
    """The disk condition of one service: its timer, StateDB's listener, intake's hold, alerts, health, metrics."""

    def __init__(self, *, state_dir: Path, ingest: IngestSettings, instance: str, clock: Clock, metrics: Registry,
                 state: StateThread, spool: Spool, apply: Apply) -> None:
        self.path = state_dir
        self.clock = clock
        self.state = state
        self.spool = spool
        self.apply = apply
        vfs = os.statvfs(state_dir)
        self.marks = marks(ingest, vfs.f_blocks * vfs.f_frsize)
        self.condition = DiskCondition(self.marks, instance)
        self.reserve = Reserve(state_dir / RESERVE_FILE, self.marks.reserve)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._logged = "ok"
        state.db.on_disk = self._on_disk
        c = self.condition
        self.m_failures = metrics.counter("cb_state_write_failures_total",
                                          "Writes of the state database the disk refused (retried), by problem",
                                          ["problem"])
        metrics.gauge("cb_state_disk_free_bytes", "Free bytes on state_dir's filesystem (and ingest.db's free pages)",
                      source=lambda: float(c.free or 0))
        metrics.gauge("cb_state_disk_low", "1 while state_dir's free space is below the low mark",
                      source=lambda: float(c.low))
        metrics.gauge("cb_state_disk_paused", "1 while intake waits for state_dir's disk (watermark or failing writes)",
                      source=lambda: float(c.paused))
        metrics.gauge("cb_state_writable", "0 while the state database cannot be written",
                      source=lambda: float(c.problem is None))

    async def recover(self, open_alerts: Iterable[Alert]) -> None:
        """Adopt open alerts of a previous run, set the reserve aside, look at the disk once."""
        self._loop = asyncio.get_running_loop()
        self.condition.adopt(list(open_alerts))
        await asyncio.to_thread(self.reserve.make)
        await self.check()

    async def run(self) -> None:
        """Look at the disk every WATCH_EVERY_S."""
        while True:
            await asyncio.sleep(WATCH_EVERY_S)
            await self.check()

    async def check(self) -> None:
        """Free space now: the condition, the reserve, intake, alerts."""
        free = await self._free()
        c, m = self.condition, self.marks
        room = not self.reserve.present and c.problem is None and free >= m.pause + m.reserve + m.hysteresis
        if room and await asyncio.to_thread(self.reserve.make):
            free -= m.reserve
        self._changed(c.observe(free, self.reserve.missing, self.clock.now_ns()))

    async def _free(self) -> int:
        vfs = os.statvfs(self.path)
        free = vfs.f_bavail * vfs.f_frsize
        with contextlib.suppress(sqlite3.Error):  # a failing disk: its free space is what statvfs says
            rows = await self.state.select(FREE_PAGES_BYTES)
            free += int(rows[0][0])
        return free

    def _on_disk(self, problem: DiskProblem | None) -> None:
        """StateDB's listener, on the database's thread: a write failed for the disk, or works again."""
        if problem is DiskProblem.FULL:
            self.reserve.release()  # before the retry: the kept transaction and the alert need the room
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._seen, problem)

    def _seen(self, problem: DiskProblem | None) -> None:
        """In the event loop: a write failed for `problem`, or (None) works again."""
        if problem is None:
            self.condition.written()
            self._spawn(self.check())
            return
        if self.condition.problem is not problem:
            self.m_failures.inc(1, problem.value)
        self._changed(self.condition.failed(problem, self.clock.now_ns()))

    def _changed(self, transitions: list[Transition]) -> None:
        c = self.condition
        if c.paused != (self.spool.held is not None):
            self.spool.hold(self.reason() if c.paused else None)
        if c.state != self._logged:
            self._logged = c.state
            say = log.error if c.paused else log.warning
            say("state_dir %s: %s", self.path, self.reason() or "enough free space again, taking readings")
        if transitions:
            self._spawn(self.apply(transitions))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work, name="disk-watch")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def reason(self) -> str | None:
        """Why intake pauses or the disk is low, in words, or None when all is well."""
        c, m = self.condition, self.marks
        free = f"{(c.free or 0) / MB:.1f} MB free"
        if c.problem is not None:
            return (f"the state database cannot be written: {WHAT[c.problem]} ({free}); not taking readings "
                    "(the broker keeps them) until it can")
        if c.paused:
            need = m.pause + self.reserve.missing + m.hysteresis
            reserve = f" and the {m.reserve / MB:g} MB reserve given up when it filled" if self.reserve.missing else ""
            return (f"only {free}: not taking readings (the broker keeps them) until {need / MB:.1f} MB are free "
                    f"(the watermark, ingest.disk_pause_free_mb: {m.pause / MB:.1f} MB{reserve}, and "
                    f"{m.hysteresis / MB:g} MB more)")
        if c.low:
            return f"disk low: {free}, below {m.low / MB:.1f} MB (ingest.disk_low_free_mb)"
        return None

    def unwritable(self) -> str | None:
        """Why the state database cannot be written now, or None (cheap: asked per HTTP write)."""
        return (self.reason() or "the state database cannot be written") if self.condition.problem is not None \
            else None

    def health(self) -> dict[str, Any]:
        """/health's "disk" part: 503 while intake waits for the disk."""
        c, m = self.condition, self.marks
        why = self.reason()
        return {"ok": not c.paused, "state": c.state, "path": str(self.path), "free_bytes": c.free,
                "low_below_bytes": m.low, "pause_below_bytes": m.pause, "reserve_bytes": m.reserve,
                "reserve_kept": self.reserve.present, "writable": c.problem is None,
                "error": why if c.paused else None, "warning": why if not c.paused else None}
