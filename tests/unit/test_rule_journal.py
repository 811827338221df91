"""Rule state as a snapshot plus a journal (rules.runner): a restart at any commit rebuilds exactly
the state the engine had then, and goes on to make the transitions the engine that was not
restarted makes."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

import rules.runner as runner_mod
from ingest.statedb import StateDB
from kernel.clock import ManualClock
from kernel.ids import DeviceType
from kernel.metrics import Registry
from kernel.reading import FieldValue, Reading, StatusUpdate
from kernel.settings import Settings
from kernel.site import Site
from rules.engine import Engine
from rules.runner import RulesRunner
from rules.spec import default_rules_text, parse_rules

NS = 1_000_000_000
T0 = 1_777_600_000 * NS
RULES = parse_rules(default_rules_text(), source="defaults.yaml")
SITE = Site(Settings.model_validate({
    "communities": [{"id": "yicun", "name": "一村", "grids": [{"id": "g1", "name": "g"}],
                     "buildings": [{"id": "b03", "name": "3", "grid": "g1"}]}],
    "devices": [{"id": "sd-1", "type": "smoke_detector", "community": "yicun", "building": "b03"},
                {"id": "sd-2", "type": "smoke_detector", "community": "yicun", "building": "b03"},
                {"id": "sd-3", "type": "smoke_detector", "community": "yicun", "building": "b03"}]}))
DEVICES = ["smoke_detector/sd-1", "smoke_detector/sd-2", "smoke_detector/sd-3", "ebike_charger/eb-1",
           "ebike_charger/eb-2", "water_level/wl-1", "fire_lane/fl-1", "battery_shed/bs-1", "water_leak/lk-1"]


def fields_for(dtype: str, rng: random.Random) -> dict[str, FieldValue]:
    hot = rng.random() < 0.3
    if dtype == "smoke_detector":
        return {"obscuration_pct_m": 12.0 if hot else 0.2, "alarm": hot and rng.random() < 0.5,
                "battery_pct": rng.choice([80.0, 10.0])}
    if dtype == "ebike_charger":
        return {"current_a": 12.0 if hot else 2.0, "charging": True,
                "temperature_c": rng.uniform(25, 90) if hot else 30.0 + rng.random()}
    if dtype == "water_level":
        return {"level_cm": rng.uniform(0, 60)}
    if dtype == "fire_lane":
        return {"occupied": hot}
    if dtype == "water_leak":
        return {"leak": hot, "temperature_c": 15.0}
    return {"temperature_c": 25.0, "co_ppm": 5.0, "h2_ppm": 300.0 if hot else 2.0}


def full_state(engine: Engine) -> dict[tuple[str, str, str], bytes]:
    """Every device's state, leaving what the engine counts as changed as it was."""
    kept = set(engine.dirty)
    engine.dirty.update(engine.watched)
    rows = {(c, t, d): blob for c, t, d, blob in engine.take_dirty()}
    engine.dirty.update(kept)
    return rows


class Harness:
    """A runner whose writes go to a real StateDB, as the ingest's commit and the deadline task do."""

    def __init__(self, path: Path, now: int) -> None:
        self.db = StateDB(path)
        self.clock = ManualClock(now)
        self.runner = RulesRunner(Engine(RULES, SITE, now_ns=now), self.clock, Registry(), self._persist)

    async def _persist(self, writes: list[Any]) -> None:
        self.db.write(writes)

    async def _script(self, sql: str) -> None:
        self.db.script(sql)

    async def _select(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.db.select(sql, params)

    def recover(self) -> None:
        asyncio.run(self.runner.recover(self._script, self._select))

    def batch(self, readings: list[Reading], statuses: list[StatusUpdate], now: int,
              between: Callable[[], None] | None = None, pieces: bool = False) -> None:
        """The batch's transaction, its transitions let out, then its snapshot's transaction, as
        Pipeline.commit makes them (`between` runs in between: a kill -9 there); with `pieces`,
        observed a few inputs at a time as the pipeline takes deliveries, then sealed."""
        self.clock._now_ns = now
        after = asyncio.run(self._batch(readings, statuses, now, pieces))
        if between is not None:
            between()
        if after:
            self.db.snapshot([], after)

    async def _batch(self, readings: list[Reading], statuses: list[StatusUpdate], now: int,
                     pieces: bool) -> list[Any]:
        if pieces:
            observe_in_pieces(self.runner, readings, statuses, now, random.Random(now))
            writes = self.runner.seal(now)
        else:
            writes = self.runner.prepare(readings, statuses, now)
        self.db.commit([], [], writes)
        self.runner.committed()
        return await self.runner.after_commit()

    def snapshot(self) -> None:
        after = asyncio.run(self.runner.after_commit())
        if after:
            self.db.snapshot([], after)

    def ticks(self, now: int) -> None:
        self.clock._now_ns = now
        while (due := self.runner.engine.next_deadline()) is not None and due <= now:
            _transitions, writes = self.runner.tick(now)
            self.db.write(writes)


def observe_in_pieces(runner: RulesRunner, readings: list[Reading], statuses: list[StatusUpdate], now: int,
                      rng: random.Random) -> None:
    """The inputs of a batch given to the runner as the pipeline takes them: in order, one to three
    at a time, each piece at a service time of its own (the statuses with the last)."""
    at = now - (len(readings) + 1) * 1_000_000
    rest = readings
    while True:
        n = rng.randint(1, 3)
        piece, rest = rest[:n], rest[n:]
        at += 1_000_000
        runner.observe(piece, [] if rest else statuses, at if rest else now)
        if not rest:
            return


def restart(live: Harness, copy: Path, now: int) -> Harness:
    """kill -9 now: a copy of the live database as it is, and a runner recovered from it."""
    with sqlite3.connect(copy) as dst:
        live.db.conn.backup(dst)
    restarted = Harness(copy, now)
    restarted.recover()
    return restarted


def workload(seed: int, steps: int) -> list[tuple[int, list[Reading], list[StatusUpdate]]]:
    rng = random.Random(seed)
    out = []
    now = T0
    for _ in range(steps):
        now += rng.choice([200_000_000, 1 * NS, 3 * NS, 40 * NS])
        readings, statuses = [], []
        for _ in range(rng.randint(0, 4)):
            dtype, device_id = rng.choice(DEVICES).split("/")
            place = SITE.place("yicun", device_id)
            late = rng.random() < 0.1
            ts = now - (5 * NS if late else 0)
            readings.append(Reading("yicun", DeviceType(dtype), device_id, ts, fields_for(dtype, rng),
                                    building=place.building, grid=place.grid, received_ns=now))
        if rng.random() < 0.1:
            dtype, device_id = rng.choice(DEVICES).split("/")
            statuses.append(StatusUpdate("yicun", DeviceType(dtype), device_id, rng.random() < 0.5, now))
        out.append((now, readings, statuses))
    return out


@pytest.mark.parametrize(("seed", "pieces"), [(1, False), (2, False), (3, False), (4, True), (5, True)])
def test_a_restart_after_any_commit_rebuilds_the_state(
        tmp_path: Path, seed: int, pieces: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_mod, "SNAPSHOT_EVERY_NS", 20 * NS)  # snapshots and journal rows both
    steps = workload(seed, 120)
    live = Harness(tmp_path / "live.db", T0)
    live.recover()
    snapshots = journalled = 0
    def check(k: int, when: str) -> None:
        restarted = restart(live, tmp_path / f"copy-{k}-{when}.db", now)
        assert full_state(restarted.runner.engine) == full_state(live.runner.engine), f"{when} step {k}"
        assert restarted.db.select("SELECT count(*) FROM rule_journal")[0][0] == 0  # a fresh snapshot
        restarted.db.close()

    for k, (now, readings, statuses) in enumerate(steps):
        live.ticks(now)
        # A kill -9 between the batch's transaction and its snapshot's, too.
        live.batch(readings, statuses, now, between=(lambda k=k: check(k, "before the snapshot of"))
                   if k % 7 == 3 else None, pieces=pieces)
        journal = live.db.select("SELECT count(*) FROM rule_journal")[0][0]
        journalled += journal > 0
        snapshots += journal == 0
        if k % 7 == 3:
            check(k, "after")
    assert snapshots and journalled, (snapshots, journalled)


def test_the_restarted_engine_makes_the_same_transitions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_mod, "SNAPSHOT_EVERY_NS", 30 * NS)
    steps = workload(7, 80)
    cut = 51
    live = Harness(tmp_path / "live.db", T0)
    live.recover()
    for now, readings, statuses in steps[:cut]:
        live.ticks(now)
        live.batch(readings, statuses, now)
    assert live.db.select("SELECT count(*) FROM rule_journal")[0][0] > 0, "the cut falls after journal rows"
    restarted = restart(live, tmp_path / "copy.db", steps[cut - 1][0])

    def rest(h: Harness) -> list[tuple[str, str, str, str | None, int]]:
        out = []
        for now, readings, statuses in steps[cut:]:
            h.clock._now_ns = now
            while (due := h.runner.engine.next_deadline()) is not None and due <= now:
                trs, writes = h.runner.tick(now)
                h.db.write(writes)
                out += [(t.kind.value, t.rule, t.device_id, t.episode, t.at_ns) for t in trs]
            trs = h.runner.engine.on_batch(readings, statuses, now)
            out += [(t.kind.value, t.rule, t.device_id, t.episode, t.at_ns) for t in trs]
        return out

    expected = rest(live)
    assert expected, "the rest of the workload makes transitions"
    assert rest(restarted) == expected


def test_a_reloaded_engine_is_snapshotted_whole(tmp_path: Path) -> None:
    h = Harness(tmp_path / "s.db", T0)
    h.recover()
    now = T0 + runner_mod.SNAPSHOT_EVERY_NS  # a snapshot, then a journal row
    h.batch([Reading("yicun", DeviceType("ebike_charger"), "eb-1", now, {"current_a": 2.0}, received_ns=now)], [],
            now)
    now += NS // 10
    h.batch([Reading("yicun", DeviceType("ebike_charger"), "eb-1", now, {"current_a": 3.0}, received_ns=now)], [],
            now)
    assert h.db.select("SELECT count(*) FROM rule_journal")[0][0] == 1
    h.runner.reload(Engine(RULES, SITE, now_ns=now))
    h.batch([], [StatusUpdate("yicun", DeviceType("ebike_charger"), "eb-1", True, now)], now)
    assert h.db.select("SELECT count(*) FROM rule_journal")[0][0] == 0
    assert h.db.select("SELECT count(*) FROM rule_state")[0][0] == len(h.runner.engine.watched)


def big_batches(seed: int, steps: int) -> list[tuple[int, list[Reading], list[StatusUpdate]]]:
    """The workload's steps joined in fives: batches of up to 20 readings, split into pieces below."""
    small = workload(seed, steps)
    out = []
    for i in range(0, len(small), 5):
        part = small[i:i + 5]
        out.append((part[-1][0], [r for _n, rs, _s in part for r in rs], [s for _n, _rs, ss in part for s in ss]))
    return out


def test_a_batch_observed_in_pieces_with_deadlines_among_them_is_replayed_as_it_ran(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Under load a batch is nearly always open: deadlines then run in its seal, not on their own.
    monkeypatch.setattr(runner_mod, "SNAPSHOT_EVERY_NS", 60 * NS)
    monkeypatch.setattr(runner_mod, "CHUNK", 3)
    steps = big_batches(11, 300)
    assert max(len(rs) for _n, rs, _s in steps) > 3 * runner_mod.CHUNK
    live = Harness(tmp_path / "live.db", T0)
    live.recover()
    rng = random.Random(11)
    made: list[Any] = []
    ticked_in_seal = 0

    for k, (now, readings, statuses) in enumerate(steps):
        live.clock._now_ns = now
        observe_in_pieces(live.runner, readings, statuses, now, rng)
        due = live.runner.engine.next_deadline()
        ticked_in_seal += due is not None and due <= now
        live.db.commit([], [], live.runner.seal(now))
        made += [(t.kind.value, t.rule, t.device_id, t.at_ns) for t in live.runner._held]
        live.runner.committed()
        live.snapshot()
        assert live.runner.engine.next_deadline() is None or live.runner.engine.next_deadline() > now
        if k % 9 == 4:
            restarted = restart(live, tmp_path / f"copy-{k}.db", now)
            assert full_state(restarted.runner.engine) == full_state(live.runner.engine), f"after batch {k}"
            restarted.db.close()
    assert made and ticked_in_seal, (len(made), ticked_in_seal)


def in_pieces_of_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Harness:
    """A recovered harness whose runner evaluates batches, and makes snapshots' rows, a device at a
    time (the event loop runs between each)."""
    monkeypatch.setattr(runner_mod, "CHUNK", 1)
    h = Harness(tmp_path / "s.db", T0)
    h.recover()
    return h


def one_each(now: int, devices: list[str]) -> list[Reading]:
    """A reading of each of these devices ("type/id") at now."""
    return [Reading("yicun", DeviceType(t), d, now, fields_for(t, random.Random(i)), received_ns=now)
            for i, (t, d) in enumerate(x.split("/") for x in devices)]


def test_deadlines_and_a_reload_wait_for_the_open_batch_and_join_its_seal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h = in_pieces_of_one(tmp_path, monkeypatch)
    runner = h.runner
    seen: list[int] = []  # the deadline loop's own ticks
    tick = runner.tick

    def watched_tick(now: int) -> Any:
        seen.append(now)
        return tick(now)

    runner.tick = watched_tick  # type: ignore[method-assign]
    # eb-1 overheats with a `for`: a deadline falls due while the next batch is open
    hot = [Reading("yicun", DeviceType("ebike_charger"), "eb-1", T0 + NS, {"temperature_c": 95.0, "current_a": 2.0,
                                                                           "charging": True}, received_ns=T0 + NS)]
    h.batch(hot, [], T0 + NS)
    assert runner.engine.next_deadline() is not None
    later = T0 + 600 * NS
    h.clock._now_ns = later
    many = [Reading("yicun", DeviceType("water_level"), "wl-1", later, {"level_cm": float(i)}, received_ns=later)
            for i in range(40)]
    old_engine = runner.engine

    async def scenario() -> list[Any]:
        runner.observe(many[:20], [], later)
        deadlines = asyncio.create_task(runner.run())  # its deadline is due: the open batch takes it
        for _ in range(5):
            await asyncio.sleep(0)
        runner.reload(Engine(RULES, SITE, now_ns=later))
        assert runner.engine is old_engine  # not swapped in an open batch
        runner.observe(many[20:], [], later)
        writes = runner.seal(later)
        assert runner.engine is not old_engine  # swapped once the batch is sealed
        h.db.commit([], [], writes)
        runner.committed()
        h.db.snapshot([], await runner.after_commit())  # a reloaded engine is snapshotted whole
        for _ in range(20):
            await asyncio.sleep(0)
        deadlines.cancel()
        return writes

    writes = asyncio.run(scenario())
    assert not seen, seen
    (entry,), = [rows for sql, rows in writes if sql == runner_mod.JOURNAL_APPEND]
    pieces = orjson.loads(entry[0].raw)
    assert [len(r) if r is not None else None for _now, r, _s in pieces] == [20, 20, None]
    assert pieces[-1][0] == later
    restarted = restart(h, tmp_path / "copy.db", later)
    assert full_state(restarted.runner.engine) == full_state(runner.engine)


def test_deadlines_wait_for_the_rows_of_a_snapshot_made_after_the_commit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h = in_pieces_of_one(tmp_path, monkeypatch)
    runner = h.runner
    ticked: list[tuple[bool, bool]] = []  # at each tick: a snapshot owed, the snapshot's rows made
    tick = runner.tick
    snapshot: list[asyncio.Task[list[Any]]] = []

    def watched_tick(now: int) -> Any:
        ticked.append((runner._snapshot_owed, bool(snapshot) and snapshot[0].done()))
        return tick(now)

    runner.tick = watched_tick  # type: ignore[method-assign]
    hot = [Reading("yicun", DeviceType("ebike_charger"), "eb-1", T0 + NS, {"temperature_c": 95.0, "current_a": 2.0,
                                                                           "charging": True}, received_ns=T0 + NS)]
    h.batch(hot, [], T0 + NS, pieces=True)
    due = runner.engine.next_deadline()
    # The batch is sealed just before eb-1's deadline, with a snapshot due; the deadline falls due
    # while the snapshot's rows are made.
    assert due is not None and due - 1 >= T0 + runner_mod.SNAPSHOT_EVERY_NS
    sealed_at = due - 1
    h.clock._now_ns = sealed_at
    many = one_each(sealed_at, [x for x in DEVICES if x != "ebike_charger/eb-1"])

    async def scenario() -> tuple[list[Any], list[Any]]:
        writes = runner.prepare(many, [], sealed_at)
        assert runner._snapshot_owed and runner.engine.dirty  # the rows are not made in the batch's turn
        h.db.commit([], [], writes)
        runner.committed()
        h.clock._now_ns = due
        snapshot.append(asyncio.create_task(runner.after_commit()))
        await asyncio.sleep(0)
        assert not snapshot[0].done() and runner._snapshot_owed  # the rows are being made, a device at a time
        deadlines = asyncio.create_task(runner.run())
        after = await snapshot[0]
        for _ in range(20):
            await asyncio.sleep(0)
        deadlines.cancel()
        return writes, after

    writes, after = asyncio.run(scenario())
    assert any(sql == runner_mod.JOURNAL_APPEND for sql, _rows in writes)
    assert [sql for sql, _rows in after] == [runner_mod.UPSERT, runner_mod.JOURNAL_CLEAR]
    assert {row[:3] for row in after[0][1]} == set(runner.engine.watched) and len(after[0][1]) > len(many)
    assert ticked == [(False, True)]  # the due deadline waited for the rows, then ran


def test_a_snapshot_cancelled_while_its_rows_are_made_leaves_them_to_the_next(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Its devices are changed still: the next snapshot, which empties the journal, must write them.
    h = in_pieces_of_one(tmp_path, monkeypatch)
    runner = h.runner
    now = T0 + 600 * NS
    h.clock._now_ns = now
    readings = one_each(now, DEVICES)

    async def cancelled() -> None:
        h.db.commit([], [], runner.prepare(readings, [], now))
        runner.committed()
        snapshot = asyncio.create_task(runner.after_commit())
        await asyncio.sleep(0)
        snapshot.cancel()
        with pytest.raises(asyncio.CancelledError):
            await snapshot

    asyncio.run(cancelled())
    assert runner._snapshot_owed
    assert {("yicun", *x.split("/")) for x in DEVICES} <= runner.engine.dirty
    after = asyncio.run(runner.after_commit())  # owed still
    h.db.snapshot([], after)
    assert h.db.select("SELECT count(*) FROM rule_journal")[0][0] == 0
    restarted = restart(h, tmp_path / "copy.db", now)
    assert full_state(restarted.runner.engine) == full_state(runner.engine)
