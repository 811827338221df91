"""The rule engine beyond what YAML timelines express: durable state, the deadline heap, late ticks, episode ids."""

from __future__ import annotations

import random

from kernel.alerting import Transition, TransitionKind
from kernel.ids import DeviceType
from kernel.reading import FieldValue, Reading, StatusUpdate
from kernel.settings import Settings
from kernel.site import Site
from rules.engine import Engine
from rules.spec import RuleSet, default_rules_text, parse_rules

NS = 1_000_000_000
T0 = 1_777_600_000 * NS
RULES = parse_rules(default_rules_text(), source="defaults.yaml")
SITE = Site(Settings.model_validate({
    "communities": [{"id": "yicun", "name": "一村", "grids": [{"id": "g1", "name": "g"}],
                     "buildings": [{"id": "b03", "name": "3", "grid": "g1"}]}],
    "devices": [{"id": "sd-1", "type": "smoke_detector", "community": "yicun", "building": "b03"},
                {"id": "sd-2", "type": "smoke_detector", "community": "yicun", "building": "b03"}]}))


def reading(device: str, at_s: float, fields: dict[str, FieldValue], ts_s: float | None = None) -> Reading:
    community, dtype, device_id = device.split("/")
    place = SITE.place(community, device_id)
    now = T0 + round(at_s * NS)
    ts = now if ts_s is None else T0 + round(ts_s * NS)
    return Reading(community, DeviceType(dtype), device_id, ts, fields, building=place.building, grid=place.grid,
                   received_ns=now)


def feed(engine: Engine, device: str, at_s: float, fields: dict[str, FieldValue],
         ts_s: float | None = None) -> list[Transition]:
    """Run the deadlines due until at_s, then the reading (measured at ts_s, by default at_s)."""
    now = T0 + round(at_s * NS)
    out: list[Transition] = []
    while (due := engine.next_deadline()) is not None and due <= now:
        out += engine.on_tick(due)
    return out + engine.on_batch([reading(device, at_s, fields, ts_s)], [], now)


def status(engine: Engine, device: str, at_s: float, online: bool) -> list[Transition]:
    """Run the deadlines due until at_s, then the device's status."""
    community, dtype, device_id = device.split("/")
    now = T0 + round(at_s * NS)
    return run_clock(engine, at_s) + engine.on_batch([], [StatusUpdate(community, DeviceType(dtype), device_id,
                                                                         online, now)], now)


def run_clock(engine: Engine, until_s: float) -> list[Transition]:
    now = T0 + round(until_s * NS)
    out: list[Transition] = []
    while (due := engine.next_deadline()) is not None and due <= now:
        out += engine.on_tick(due)
    return out


def brief(trs: list[Transition]) -> list[tuple[str, str, str | None, str, float]]:
    return [(t.kind.value, t.rule, t.level.value if t.level else None, t.device_id, (t.at_ns - T0) / NS)
            for t in trs]


def snapshot(engine: Engine) -> dict[tuple[str, str, str], bytes]:
    engine.dirty.update(engine.watched)
    return {(c, d, i): blob for c, d, i, blob in engine.take_dirty()}


def busy_engine() -> Engine:
    """An engine in the middle of everything: a pending `for`, episodes firing, rate samples, a building."""
    e = Engine(RULES, SITE, now_ns=T0)
    feed(e, "yicun/fire_lane/fl-1", 0, {"occupied": True})
    feed(e, "yicun/water_level/wl-1", 0, {"level_cm": 12.0})
    feed(e, "yicun/smoke_detector/sd-1", 10, {"alarm": True})
    feed(e, "yicun/smoke_detector/sd-2", 20, {"alarm": True})
    feed(e, "yicun/water_level/wl-1", 60, {"level_cm": 23.0})
    feed(e, "yicun/ebike_charger/eb-1", 60, {"current_a": 2.0, "charging": True, "temperature_c": 30.0})
    feed(e, "yicun/fire_lane/fl-1", 60, {"occupied": True})
    return e


def test_dump_and_restore_round_trip() -> None:
    a = busy_engine()
    rows = a.take_dirty()
    assert {r[1] for r in rows} >= {"fire_lane", "water_level", "smoke_detector", "ebike_charger", "group:smoke.multi"}
    b = Engine(RULES, SITE, now_ns=T0 + 70 * NS)
    b.restore(rows, T0 + 70 * NS)
    assert snapshot(b) == snapshot(a)
    assert sorted(b.firing_now()) == sorted(a.firing_now())
    # Both go on identically, episode ids included.
    trails: list[list[Transition]] = []
    for e in (a, b):
        trail: list[Transition] = []
        for at in range(90, 400, 30):
            trail += feed(e, "yicun/fire_lane/fl-1", at, {"occupied": True})
            trail += feed(e, "yicun/smoke_detector/sd-1", at, {"alarm": at < 200})
            trail += feed(e, "yicun/smoke_detector/sd-2", at, {"alarm": at < 200})
            trail += feed(e, "yicun/water_level/wl-1", at, {"level_cm": 23.0})
            trail += feed(e, "yicun/ebike_charger/eb-1", at, {"current_a": 2.0})
        trails.append(trail)
    assert trails[0] == trails[1]
    assert ("clear", "smoke.multi", None, "building:b03", 330.0) in brief(trails[0])
    multi = [t for t in trails[0] if t.rule == "smoke.multi"]
    assert multi and multi[0].device_type == "smoke_detector"


def test_a_changed_rule_keeps_its_episode_but_restarts_its_timers() -> None:
    a = Engine(RULES, SITE, now_ns=T0)
    for at in (0, 30, 60):
        feed(a, "yicun/fire_lane/fl-1", at, {"occupied": True})
        feed(a, "yicun/water_level/wl-1", at, {"level_cm": 30.0})
    rows = a.take_dirty()
    text = default_rules_text().replace("\noverrides: []\n", "\n") + """
overrides:
  - {rule: fire_lane.blocked, set: {clear_for: 60s}}
  - {rule: water.level, set: {clear_for: 20m}}
"""
    changed: RuleSet = parse_rules(text, source="rules.yaml")
    b = Engine(changed, SITE, now_ns=T0 + 60 * NS)
    b.restore(rows, T0 + 60 * NS)
    assert ("water.level", "yicun", "wl-1") in {(r, c, d) for r, c, d, _ in b.firing_now()}
    # fire_lane's pending 5 min started afresh at the restart: nothing at 5 min, yellow after the next 5 min.
    out: list[Transition] = []
    for at in range(90, 700, 30):
        out += feed(b, "yicun/fire_lane/fl-1", at, {"occupied": True})
        out += feed(b, "yicun/water_level/wl-1", at, {"level_cm": 30.0})
    assert [t for t in brief(out) if t[3] == "fl-1"] == [("fire", "fire_lane.blocked", "yellow", "fl-1", 390.0)]


def test_the_deadline_heap_stays_small() -> None:
    e = Engine(RULES, SITE, now_ns=T0)
    rng = random.Random(7)
    devices = [f"yicun/fire_lane/fl-{i}" for i in range(20)] + [f"yicun/water_level/wl-{i}" for i in range(20)]
    for step in range(300):
        at = step * 10.0
        for d in devices:
            if rng.random() < 0.4:
                fields: dict[str, FieldValue] = (
                    {"occupied": rng.random() < 0.5} if "fire_lane" in d else {"level_cm": rng.uniform(0, 30)})
                feed(e, d, at, fields)
        assert len(e.deadlines.heap) <= 3 * (len(devices) + 2), (step, len(e.deadlines.heap))
    assert len(e.deadlines.due) <= len(devices) + 2


def test_overdue_deadlines_run_before_the_devices_next_reading() -> None:
    # A caller whose tick lags: the 5 min completed at 300 s, the next reading (at 310 s) says the
    # lane is free. The yellow still fires, dated 300 s, before the reading starts the clear.
    e = Engine(RULES, SITE, now_ns=T0)
    out: list[Transition] = []
    for at in range(0, 300, 30):
        out += e.on_batch([reading("yicun/fire_lane/fl-1", at, {"occupied": True})], [], T0 + at * NS)
    out += e.on_batch([reading("yicun/fire_lane/fl-1", 310, {"occupied": False})], [], T0 + 310 * NS)
    assert brief(out) == [("fire", "fire_lane.blocked", "yellow", "fl-1", 300.0)]
    assert [t for t in brief(run_clock(e, 390)) if t[3] == "fl-1"] == [
        ("clear", "fire_lane.blocked", None, "fl-1", 340.0)]


def test_status_before_an_overdue_silence_keeps_the_order() -> None:
    e = Engine(RULES, SITE, now_ns=T0)
    e.on_batch([reading("yicun/water_level/wl-1", 0, {"level_cm": 1.0})], [], T0)
    now = T0 + 400 * NS
    out = e.on_batch([], [StatusUpdate("yicun", DeviceType.WATER_LEVEL, "wl-1", True, now)], now)
    assert brief(out) == [("fire", "device.offline", "blue", "wl-1", 180.0)]  # online is no reading


def test_one_episode_keeps_its_id_and_a_new_episode_gets_a_new_one() -> None:
    e = Engine(RULES, SITE, now_ns=T0)
    out: list[Transition] = []
    for at, temp in [(0, 65.0), (30, 85.0), (60, 85.0), (90, 20.0), (120, 20.0), (150, 20.0), (180, 20.0),
                     (210, 20.0), (240, 70.0)]:
        out += feed(e, "yicun/ebike_charger/eb-1", at, {"current_a": 1.0, "temperature_c": temp})
    heat = [t for t in out if t.rule == "ebike.overheat"]
    assert [t.kind for t in heat] == [TransitionKind.FIRE, TransitionKind.RAISE, TransitionKind.CLEAR,
                                      TransitionKind.FIRE]
    assert heat[0].episode == heat[1].episode == heat[2].episode != heat[3].episode
    assert heat[1].started_ns == heat[0].at_ns and heat[3].started_ns == heat[3].at_ns


def test_a_reading_from_an_unknown_community_or_device_is_watched() -> None:
    e = Engine(RULES, SITE, now_ns=T0)
    out = feed(e, "elsewhere/smoke_detector/sd-9", 0, {"alarm": True})
    assert brief(out) == [("fire", "smoke.alarm", "orange", "sd-9", 0.0)]
    assert out[0].building == "unknown"


def test_nothing_to_do_is_no_deadline() -> None:
    e = Engine(RuleSet(), Site(Settings.model_validate({"communities": []})), now_ns=T0)
    assert e.next_deadline() is None
    assert e.on_tick(T0 + NS) == []


def test_a_duplicate_arriving_later_does_not_move_the_clock() -> None:
    # The reading of 270 s arrives again at 300 s: the 5 min still complete at 315 s on the service
    # clock (not 30 s later), and the value still stands only until 270 s + 90 s.
    e = Engine(RULES, SITE, now_ns=T0)
    for at in range(15, 300, 30):
        feed(e, "yicun/fire_lane/fl-1", at, {"occupied": True})
    e.on_batch([reading("yicun/fire_lane/fl-1", 300, {"occupied": True}, ts_s=285)], [], T0 + 300 * NS)
    assert e.next_deadline() == T0 + 315 * NS
    assert [t[:4] for t in brief(e.on_tick(T0 + 315 * NS))] == [("fire", "fire_lane.blocked", "yellow", "fl-1")]


def test_a_device_reporting_every_millisecond_keeps_a_bounded_window_and_still_fires_on_a_real_rise() -> None:
    from rules.kinds.rate import MAX_SAMPLES, RateMachine

    engine = Engine(RULES, SITE, now_ns=T0)
    fired = []
    for i in range(20_000):  # 20 s of readings, 1 ms apart, warming 1 °C over the last 5 s... then 6 °C
        temp = 30.0 + (6.0 if i >= 19_990 else 0.0) + (i % 7) * 0.01
        fields: dict[str, FieldValue] = {"current_a": 2.0, "charging": True, "temperature_c": temp}
        fired += engine.on_batch([reading("yicun/ebike_charger/ev-dense", i / 1000, fields)], [], T0 + i * NS // 1000)
        machine = engine.watched[("yicun", "ebike_charger", "ev-dense")].machines["ebike.heating"]
        assert isinstance(machine, RateMachine)
        assert len(machine.samples) <= MAX_SAMPLES
    assert [(t.kind, t.rule) for t in fired] == [(TransitionKind.FIRE, "ebike.heating")]


def test_a_deadline_that_never_moves_cannot_hang_a_tick() -> None:
    engine = Engine(RULES, SITE, now_ns=T0)
    w = engine.watched[("yicun", "smoke_detector", "sd-1")]
    offline = w.machines["device.offline"]

    from rules.machine import Hooks

    class Stuck(Hooks):
        """A machine whose deadline is always already due (a fault in a rule must not stop the service)."""

        rule = "stuck"
        episode = offline.episode

        def on_deadline(self, dev: object, now: int, ctx: object) -> None:
            return None

        def next_deadline(self, dev: object) -> int:
            return T0

    w.machines["stuck"] = Stuck()
    engine._schedule(("yicun", "smoke_detector", "sd-1"), w)
    assert engine.on_tick(T0 + NS) == []
    assert engine.next_deadline() == T0 + NS + 1, "put off to the next tick, not run again in this one"


def test_a_listed_device_that_never_reports_keeps_its_silence_across_restarts() -> None:
    first = Engine(RULES, SITE, now_ns=T0)
    saved = {row[:3]: row[3] for row in first.take_dirty()}
    assert ("yicun", "smoke_detector", "sd-2") in saved, "listed devices are saved before they ever report"
    # The service restarts two minutes later: the silence still counts from the first start.
    later = Engine(RULES, SITE, now_ns=T0 + 120 * NS)
    later.restore([(*k, v) for k, v in saved.items()], T0 + 120 * NS)
    fired = later.on_tick(T0 + 180 * NS)
    assert {(t.rule, t.device_id, t.kind) for t in fired} >= {("device.offline", "sd-2", TransitionKind.FIRE)}
    assert all(t.at_ns == T0 + 180 * NS for t in fired if t.rule == "device.offline")


def test_a_buildings_pending_clear_follows_its_devices_reading_time() -> None:
    """smoke.multi clears 60 s of the detectors' own time after their alarms end: in a replay ten
    times faster than the service clock, that is about 6 s of service time, not 60."""
    engine = Engine(RULES, SITE, now_ns=T0)
    cleared_at: dict[str, float] = {}
    for i in range(40):  # a reading every 10 s of reading time, every 1 s of service time
        for device, offset in (("sd-1", 0.0), ("sd-2", 0.5)):
            service_s = i + offset
            trs = run_clock(engine, service_s) + engine.on_batch(
                [reading(f"yicun/smoke_detector/{device}", service_s, {"alarm": i < 12}, ts_s=i * 10.0 + offset * 10)],
                [], T0 + round(service_s * NS))
            for t in trs:
                if t.kind is TransitionKind.CLEAR:
                    cleared_at.setdefault(f"{t.rule}/{t.device_id}", service_s)
    # The alarms end at reading time 120 s and clear 60 s later (clear_for); the building follows
    # 60 s after that, at reading time about 245 s, which is service time about 24.5 s.
    assert 17 <= cleared_at["smoke.alarm/sd-1"] <= 19
    assert 23 <= cleared_at["smoke.multi/building:b03"] <= 26


def _walking_every_level(engine: Engine) -> Engine:
    """The engine with each state machine's quick look switched off, and no machine asleep until the
    next reading: every machine sees it, and every state machine walks its levels."""
    from rules.kinds.state import StateMachine
    for w in engine.watched.values():
        for m in w.machines.values():
            if isinstance(m, StateMachine):
                m.quiet = lambda values: True
            if m.asleep:
                m.asleep = False
    return engine


def test_the_quick_look_of_a_quiet_state_rule_changes_no_transition() -> None:
    """A quiet state machine skips its levels when no level's condition holds, and the engine skips a
    machine asleep when a reading changes no field it reads; the transitions, and the state they
    leave, are those of every machine seeing every reading and walking every level, over random
    readings around the default rules' thresholds (with gaps that expire durations and clears)."""
    values: dict[str, list[FieldValue]] = {
        "current_a": [2.0, 9.5, 10.5, 11.5], "temperature_c": [30.0, 58.0, 61.0, 79.0, 82.0],
        "charging": [True, False], "battery_pct": [5.0, 50.0], "fault": [False, True],
        "obscuration_pct_m": [0.0, 5.0, 12.0], "alarm": [False, True], "level_cm": [2.0, 11.0, 16.0, 31.0],
        "occupied": [False, True]}
    devices = {"yicun/ebike_charger/eb-1": ["current_a", "temperature_c", "charging", "battery_pct"],
               "yicun/ebike_charger/eb-2": ["current_a", "temperature_c", "charging", "fault"],
               "yicun/smoke_detector/sd-1": ["obscuration_pct_m", "alarm", "battery_pct"],
               "yicun/water_level/wl-1": ["level_cm"], "yicun/fire_lane/fl-1": ["occupied"]}
    for seed in range(20):
        rng = random.Random(seed)
        quick, walking = Engine(RULES, SITE, now_ns=T0), _walking_every_level(Engine(RULES, SITE, now_ns=T0))
        at = 0.0
        for _ in range(300):
            at += rng.choice([0.5, 1.0, 5.0, 30.0, 400.0])
            device = rng.choice(sorted(devices))
            if rng.random() < 0.05:  # the clock's deadlines (durations, clears, silences) for every device
                got = run_clock(quick, at)
                assert brief(got) == brief(run_clock(_walking_every_level(walking), at)), (seed, at)
            if rng.random() < 0.1:  # the device's will, or its `online`
                online = rng.random() < 0.5
                got = status(quick, device, at, online)
                _walking_every_level(walking)
                assert brief(got) == brief(status(walking, device, at, online)), (seed, at, device, online)
                continue
            fields = {f: rng.choice(values[f]) for f in devices[device] if rng.random() < 0.8}
            if not fields:
                continue
            # Measured a little before it arrived, by a lag that varies: the device's clock offset
            # moves (and a reading may come after a later one).
            ts = at - rng.choice([0.0, 0.0, 0.05, 0.4, 3.0])
            got = feed(quick, device, at, fields, ts)
            _walking_every_level(walking)  # (machines made for a device seen first just now)
            assert brief(got) == brief(feed(walking, device, at, fields, ts)), (seed, at, device, fields)
        assert brief(run_clock(quick, at + 10_000)) == brief(run_clock(_walking_every_level(walking), at + 10_000))
        assert snapshot(quick) == snapshot(walking), seed


def test_a_rate_window_keeping_the_ends_of_a_run_of_one_value_fires_and_clears_as_the_whole_window() -> None:
    """A rate machine drops the middle of a run of one value from its window; its transitions and rises
    are those of a window that keeps every sample, over random sparse sequences (fewer samples in a
    window than it ever thins) with long runs of repeated values, gaps and late readings."""
    from bisect import insort
    from operator import itemgetter

    from rules.kinds.rate import MAX_SAMPLES, RateMachine, RateRule
    from rules.machine import Device

    class EverySample(RateMachine):
        """The window as it was before runs were shortened, without thinning: every sample in it."""

        __slots__ = ()

        def _add(self, t: int, fields: dict[str, FieldValue]) -> None:
            v = fields.get(self.field)
            if type(v) is float:
                insort(self.samples, (t, v))
                self.samples = [s for s in self.samples if s[0] >= self.samples[-1][0] - self.within]
                self.low = min(map(itemgetter(1), self.samples))

    spec = RateRule.model_validate({"id": "heat", "kind": "rate", "field": "temperature_c", "rise": 5, "within": "60s",
                                    "level": "orange", "hysteresis": 2, "clear_for": "20s"})
    for seed in range(40):
        rng = random.Random(seed)
        machines = [RateMachine(spec), EverySample(spec)]
        devices = [Device("c", "ebike_charger", "eb-1", "b", "g", {}, stale_ns=10**15) for _ in machines]
        t, value, longest = 0, 30.0, 0
        for _ in range(400):
            t += rng.choice([4, 5, 6, 10, 30]) * NS
            if rng.random() < 0.15:
                value = rng.choice([28.0, 30.0, 33.0, 35.0, 36.0, 40.0])
            late = rng.random() < 0.05
            at = t - rng.choice([3, 20, 70]) * NS if late else t
            got = []
            for m, dev in zip(machines, devices, strict=True):
                dev.values["temperature_c"] = value
                dev.last_heard = dev.last_received = t
                got.append(m.on_late(dev, {"temperature_c": value}, at) if late
                           else m.on_reading(dev, {"temperature_c": value}, at, None))  # type: ignore[arg-type]
                dev.values_ts = max(dev.values_ts, at)
            assert [(g.kind, g.level, g.value, g.at_ns) if g else None for g in got[:1]] == \
                [(g.kind, g.level, g.value, g.at_ns) if g else None for g in got[1:]], (seed, t)
            assert machines[0]._target(devices[0], None) == machines[1]._target(devices[1], None)  # type: ignore[arg-type]
            longest = max(longest, len(machines[1].samples))
            assert len(machines[0].samples) <= len(machines[1].samples)
        assert longest <= MAX_SAMPLES  # (sparse: the machine under test never thinned)


def test_a_running_for_asleep_wakes_at_its_end_in_reading_time_and_follows_the_devices_clock() -> None:
    """ebike.overcharge (charging for 8 hours): while the `for` runs, its machine sleeps through
    readings that repeat `charging: true` (every 30 s). A reading whose time is past the end wakes
    it even when the end's service time, by the clock offset known before, has not come; and a
    smaller clock offset brings that deadline earlier. Both as the engine with every machine awake."""
    charger, end = "yicun/ebike_charger/eb-1", 8 * 3600.0
    for offset_drops in (False, True):
        quick, walking = Engine(RULES, SITE, now_ns=T0), _walking_every_level(Engine(RULES, SITE, now_ns=T0))
        # Measured every 30 s and arriving 3 s later: the 8 hours end at reading time 28,800 s, which
        # is service time 28,803 s; then one reading measured and arriving at once, either at
        # 28,801 s, or at 28,790 s (the end's service time is now 28,800 s).
        steps = [(ts + 3.0, ts) for ts in range(0, 28_771, 30)]
        steps += [(28_790.0, 28_790.0)] if offset_drops else [(28_801.0, 28_801.0)]
        seen: list[list[tuple[str, str, str | None, str, float]]] = []
        for at, ts in steps:
            if at == steps[-1][0]:  # the case this is about: asleep through the last reading's arrival
                assert quick.watched[("yicun", "ebike_charger", "eb-1")].machines["ebike.overcharge"].asleep
                assert (quick.next_deadline() or 0) > T0 + round(at * NS)
            got = brief(feed(quick, charger, at, {"charging": True}, ts))
            _walking_every_level(walking)
            assert got == brief(feed(walking, charger, at, {"charging": True}, ts)), (offset_drops, at)
            seen.append(got)
        if offset_drops:
            got = brief(run_clock(quick, end + 1.5))
            assert got == brief(run_clock(_walking_every_level(walking), end + 1.5))
            seen.append(got)
        fired = [(i, kind, at) for i, trs in enumerate(seen) for kind, rule, _l, _d, at in trs
                 if rule == "ebike.overcharge"]
        assert fired == [(len(seen) - 1, "fire", end)], offset_drops
        assert snapshot(quick) == snapshot(walking)


def test_a_machine_woken_while_its_device_sleeps_sees_the_readings_that_follow() -> None:
    """Machines asleep are skipped for readings that change none of their fields. One woken since,
    by a field it reads (the `for` of ebike.overcharge starting, its end then passed in reading
    time before the clock's deadline) or by a deadline run in the reading's own turn (the silence
    of device.offline, the clock not ticked yet), sees the readings that follow: the transitions
    are those of the engine with every machine awake."""
    charger, end = "yicun/ebike_charger/eb-1", 330.0 + 8 * 3600
    quick, walking = Engine(RULES, SITE, now_ns=T0), Engine(RULES, SITE, now_ns=T0)

    def both(at: float, fields: dict[str, FieldValue], ts: float, tick: bool = True) -> set[tuple[str, str]]:
        got = []
        for engine in (quick, _walking_every_level(walking)):
            out = run_clock(engine, at) if tick else []
            got.append(brief(out + engine.on_batch([reading(charger, at, fields, ts)], [], T0 + round(at * NS))))
        assert got[0] == got[1], (at, fields)
        return {(kind, rule) for kind, rule, _l, device, _at in got[0] if device == "eb-1"}

    for ts in range(0, 301, 30):  # not charging: ebike.overcharge quiet, asleep
        assert both(ts + 3.0, {"charging": False, "current_a": 0.0}, ts) == set()
    for ts in range(330, int(end) - 29, 30):  # charging: its `for` runs, 8 hours to `end` in reading time
        assert ("fire", "ebike.overcharge") not in both(ts + 3.0, {"charging": True}, ts)
    # Measured and arriving at once, 1 s past the end: 2 s before the end's service time by the offset known.
    assert ("fire", "ebike.overcharge") in both(end + 1.0, {"charging": True}, end + 1.0)
    # Two hours of silence, and the clock has not ticked when the next reading comes: its turn runs the
    # deadline (offline) and then the reading (back).
    assert {("fire", "device.offline"), ("clear", "device.offline")} <= both(
        end + 7201.0, {"charging": True}, end + 7201.0, tick=False)
    assert snapshot(quick) == snapshot(walking)


def test_the_jitter_of_a_devices_clock_offset_does_not_move_its_deadline_entry_at_every_reading() -> None:
    """A charger reporting every second, its readings arriving 3 s after their time give or take a
    few milliseconds: the first smaller offset moves the device's entry EARLY_NS further than it
    needs, and the jitter of the next ones stays within that (a push on the deadline heap for about
    every other reading, before). Its silence still makes it offline when the engine with every
    machine awake says."""
    from rules.deadline_heap import DeadlineHeap
    from rules.engine import EARLY_NS

    class Counted(DeadlineHeap[tuple[str, str, str]]):
        __slots__ = ("moved",)
        moved: int

        def earlier(self, key: tuple[str, str, str], due: int) -> None:
            self.moved += self.due.get(key, due + 1) > due
            super().earlier(key, due)

    charger = "yicun/ebike_charger/eb-1"
    quick, walking = Engine(RULES, SITE, now_ns=T0), _walking_every_level(Engine(RULES, SITE, now_ns=T0))
    heap = Counted()
    heap.moved, heap.due, heap.heap = 0, quick.deadlines.due, quick.deadlines.heap  # (the engine's dict, shared)
    quick.deadlines = heap
    rng = random.Random(5)
    for ts in range(100):
        at = ts + 3.0 + rng.choice([0.0, 0.002, 0.005, 0.009])
        got = brief(feed(quick, charger, at, {"charging": True}, float(ts)))
        _walking_every_level(walking)
        assert got == brief(feed(walking, charger, at, {"charging": True}, float(ts))), at
    assert heap.moved <= 4, heap.moved  # (its first reading, the first smaller offset, and a pop or two)
    assert 0 < quick.watched[("yicun", "ebike_charger", "eb-1")].dev.early <= EARLY_NS
    silence = brief(run_clock(quick, 1000))
    assert silence == brief(run_clock(_walking_every_level(walking), 1000))
    assert "device.offline" in [rule for kind, rule, _l, _d, _at in silence if kind == "fire"]
