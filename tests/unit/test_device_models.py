"""Device physics: each behaviour's timeline in numbers, and the real decoder and rule engine agreeing with it."""

from __future__ import annotations

import itertools
import random
import time
from typing import Any

import orjson
import pytest

from device_sim.model import EXPECTED_INTERVAL_S, Model
from device_sim.types import BEHAVIOURS, make_model
from ingest.decode import Decoder
from kernel.alerting import Transition
from kernel.clock import ManualClock
from kernel.ids import DeviceType
from kernel.reading import Reading
from kernel.settings import Settings
from kernel.site import Site
from kernel.topics import telemetry_topic
from rules.engine import Engine
from rules.spec import default_rules_text, parse_rules

EPOCH = 1_777_600_000.0  # simulated time 0 of every test
START_NS = int(EPOCH) * 1_000_000_000
RULES = parse_rules(default_rules_text(), source="defaults.yaml")
SD, EB, WL, FL = DeviceType.SMOKE_DETECTOR, DeviceType.EBIKE_CHARGER, DeviceType.WATER_LEVEL, DeviceType.FIRE_LANE
BS, LK = DeviceType.BATTERY_SHED, DeviceType.WATER_LEAK
Brief = tuple[str, str, str | None, str, float]
Samples = list[tuple[float, dict[str, Any]]]


def model(device_type: DeviceType, seed: int) -> Model:
    return make_model(device_type, random.Random(seed))


class Rig:
    """The real decoder and rule engine on a manual clock: every reading goes through both as JSON."""

    def __init__(self) -> None:
        site = Site(Settings.model_validate({"communities": []}))
        self.clock = ManualClock(START_NS)
        self.decoder = Decoder("cb", site, self.clock, max_past_s=7 * 86400, max_future_s=300)
        self.engine = Engine(RULES, site, now_ns=START_NS)
        self.got: list[Brief] = []
        self.seq: dict[str, int] = {}

    def _note(self, trs: list[Transition]) -> None:
        self.got += [(t.kind.value, t.rule, t.level.value if t.level else None, t.device_id,
                      (t.at_ns - START_NS) / 1e9) for t in trs]

    def run_clock(self, at_s: float) -> None:
        now = START_NS + round(at_s * 1e9)
        while (due := self.engine.next_deadline()) is not None and due <= now:
            self._note(self.engine.on_tick(due))

    def send(self, device_id: str, m: Model, at_s: float) -> dict[str, Any]:
        fields = m.fields(EPOCH + at_s)
        self.run_clock(at_s)
        now = START_NS + round(at_s * 1e9)
        self.clock.set_ns(now)
        seq = self.seq[device_id] = self.seq.get(device_id, -1) + 1
        topic = telemetry_topic("cb", "c1", m.device_type.value, device_id)
        decoded = self.decoder.decode(topic, orjson.dumps({"ts": now // 1_000_000, "seq": seq, **fields}))
        assert isinstance(decoded, Reading), decoded  # the contract holds: not a Rejection
        self._note(self.engine.on_batch([decoded], [], now))
        return fields

    def of(self, device_id: str) -> list[Brief]:
        return [b for b in self.got if b[3] == device_id]


Actions = dict[float, tuple[str, dict[str, Any]]]


def play_many(devices: dict[str, tuple[Model, Actions]], until_s: float, *, every_s: float | None = None,
              rig: Rig | None = None) -> dict[str, Samples]:
    """Readings of several devices from 0 to until_s, in time order, every every_s (else each type's interval);
    `actions` begin behaviours at their times (before that time's reading)."""
    steps: list[tuple[float, int, str]] = []
    for i, (device_id, (m, _)) in enumerate(devices.items()):
        every = every_s or m.interval_s
        steps += [(k * every, i, device_id) for k in range(int(until_s / every + 1e-9) + 1)]
    pending = {device_id: sorted(acts.items()) for device_id, (_, acts) in devices.items()}
    out: dict[str, Samples] = {device_id: [] for device_id in devices}
    for at, _, device_id in sorted(steps):
        m = devices[device_id][0]
        todo = pending[device_id]
        while todo and todo[0][0] <= at:
            when, (behaviour, params) = todo.pop(0)
            m.begin(behaviour, EPOCH + when, params)
        out[device_id].append((at, rig.send(device_id, m, at) if rig else m.fields(EPOCH + at)))
    if rig:
        rig.run_clock(until_s)
    return out


def play(m: Model, until_s: float, *, every_s: float | None = None, rig: Rig | None = None, device_id: str = "d1",
         actions: Actions | None = None) -> Samples:
    """One device's readings (see play_many)."""
    return play_many({device_id: (m, actions or {})}, until_s, every_s=every_s, rig=rig)[device_id]


def first(samples: Samples, field: str, pred: Any, after: float = -1.0) -> float | None:
    """When field first satisfies pred (after a time), or None."""
    return next((at for at, f in samples if at > after and pred(f[field])), None)


def values(samples: Samples, field: str, start: float = -1.0, end: float = float("inf")) -> list[Any]:
    return [f[field] for at, f in samples if start <= at <= end]


# ---- the interface ----------------------------------------------------------------------------------


def test_every_type_has_its_interval_and_describes_its_behaviours() -> None:
    assert {t: EXPECTED_INTERVAL_S[t] for t in DeviceType} == {SD: 60.0, EB: 30.0, WL: 60.0, FL: 30.0,
                                                               BS: 60.0, LK: 3600.0}
    assert set(BEHAVIOURS[SD]) == {"cooking", "fire", "extinguish", "self_test", "fault", "tamper", "battery",
                                   "incident"}
    assert set(BEHAVIOURS[EB]) == {"charge", "runaway", "overcurrent", "endless", "unplug", "fault", "tamper",
                                   "battery", "incident"}
    assert set(BEHAVIOURS[WL]) == {"rain", "blocked_drain", "clear_drain", "dry", "fault", "tamper", "battery",
                                   "incident"}
    assert set(BEHAVIOURS[FL]) == {"park", "leave", "fault", "tamper", "battery", "incident"}
    assert set(BEHAVIOURS[LK]) == {"leak", "dry", "fault", "tamper", "battery", "incident"}
    assert "peak=3 (a number above 0 and below 5)" in BEHAVIOURS[SD]["cooking"]
    assert "object=car (one of car, ebike, debris, other, unknown)" in BEHAVIOURS[FL]["park"]
    assert "minutes=none (until leave" in BEHAVIOURS[FL]["park"]
    for dtype in DeviceType:
        m = model(dtype, 1)
        assert (m.device_type, m.interval_s) == (dtype, EXPECTED_INTERVAL_S[dtype])
        assert all("\n" not in text for text in BEHAVIOURS[dtype].values())
        for behaviour in BEHAVIOURS[dtype]:  # every behaviour starts with its defaults (battery needs pct)
            m.begin(behaviour, EPOCH, {"pct": 50} if behaviour == "battery" else {})
            assert "ts" not in m.fields(EPOCH + 1) and "seq" not in m.fields(EPOCH + 2)


@pytest.mark.parametrize(("dtype", "behaviour", "params", "message"), [
    (SD, "boil", {}, "unknown behaviour 'boil' for smoke_detector; allowed: cooking, fire, extinguish, self_test"),
    (SD, "cooking", {"peak": 5}, "parameter 'peak' must be a number above 0 and below 5, got 5"),
    (SD, "cooking", {"peak": True}, "parameter 'peak' must be a number above 0 and below 5, got True"),
    (SD, "fire", {"growth": 60}, "behaviour 'fire' of smoke_detector has no parameter 'growth'; allowed: growth_s"),
    (SD, "extinguish", {"now": True}, "behaviour 'extinguish' of smoke_detector has no parameter 'now'; it takes no"),
    (SD, "battery", {}, "behaviour 'battery' of smoke_detector needs parameter 'pct' (a number from 0 to 100)"),
    (SD, "battery", {"pct": 101}, "parameter 'pct' must be a number from 0 to 100, got 101"),
    (EB, "charge", {"current": 3.5}, "parameter 'current' must be a number from 1.5 to 3, got 3.5"),
    (EB, "overcurrent", {"current": 10}, "parameter 'current' must be a number above 10 and at most 100, got 10"),
    (WL, "rain", {"peak_mm_h": "heavy"}, "parameter 'peak_mm_h' must be a number above 0 and at most 300"),
    (WL, "blocked_drain", {"on": 1}, "parameter 'on' must be true or false, got 1"),
    (FL, "park", {"object": "bus"}, "parameter 'object' must be one of car, ebike, debris, other, unknown, got 'bus'"),
    (FL, "incident", {"readings": 2.5}, "parameter 'readings' must be a whole number from 1 to 10000, got 2.5"),
    (FL, "fire", {}, "unknown behaviour 'fire' for fire_lane; allowed: park, leave, fault, tamper, battery, incident"),
])
def test_a_bad_behaviour_or_parameter_is_a_one_line_value_error(dtype: DeviceType, behaviour: str,
                                                                params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=r"^[^\n]+$") as info:
        model(dtype, 1).begin(behaviour, EPOCH, params)
    assert message in str(info.value)


def test_the_same_seed_and_calls_give_the_same_readings_and_other_seeds_differ() -> None:
    def run(seed: int) -> list[dict[str, Any]]:
        rng = random.Random(seed)
        models = [make_model(t, random.Random(rng.random())) for t in DeviceType]
        acts = {SD: ("fire", {}), EB: ("charge", {}), WL: ("rain", {"peak_mm_h": 60}), FL: ("park", {"minutes": 3}),
                BS: ("runaway", {}), LK: ("leak", {"minutes": 30})}
        out = []
        for k in range(200):
            t = EPOCH + 30.0 * k
            for m in models:
                if k == 20:
                    behaviour, params = acts[m.device_type]
                    m.begin(behaviour, t, params)
                out.append(m.fields(t))
        return out

    a = run(3)
    assert a == run(3)
    b = run(4)
    assert a != b and all(x != y for x, y in zip(a[:8], b[:8], strict=True))


def test_fields_are_cheap() -> None:
    models = [model(t, i) for i in range(25) for t in DeviceType]
    for i, m in enumerate(models):
        act = {SD: "fire", EB: "charge", WL: "rain", FL: "park", BS: "runaway", LK: "leak"}[m.device_type]
        m.begin(act if i % 3 == 0 else "battery", EPOCH, {"pct": 80} if i % 3 else {})
    start = time.perf_counter()
    for k in range(200):
        for m in models:
            m.fields(EPOCH + 30.0 * k)
    per_call_us = (time.perf_counter() - start) / (200 * len(models)) * 1e6
    assert per_call_us < 25.0  # about 1-2 µs here; a wide margin for a loaded test machine


def test_extreme_parameters_keep_every_reading_within_the_contract() -> None:
    rig = Rig()  # the rig decodes every reading as the service would: a Rejection fails the test
    day = 26 * 3600.0
    got = play_many({
        "sd-1": (model(SD, 1), {0: ("fire", {"growth_s": 10}), 3600: ("battery", {"pct": 0}), 7200: ("fault", {})}),
        "eb-1": (model(EB, 1), {0: ("overcurrent", {"current": 100}), 3600: ("battery", {"pct": 100})}),
        "eb-2": (model(EB, 2), {0: ("runaway", {})}),
        "wl-1": (model(WL, 1), {0: ("blocked_drain", {}), 60: ("rain", {"peak_mm_h": 300, "minutes": 1440})}),
        "fl-1": (model(FL, 1), {0: ("park", {"object": "unknown", "minutes": 1440}), 60: ("tamper", {})}),
    }, day, every_s=600, rig=rig)
    assert max(values(got["sd-1"], "obscuration_pct_m")) <= 35.0 and max(values(got["sd-1"], "temperature_c")) < 90
    assert max(values(got["eb-1"], "current_a")) == 100.0
    assert 149.5 <= max(values(got["eb-1"], "temperature_c")) <= 150.5
    assert 150.0 <= max(values(got["eb-2"], "temperature_c")) < 195.0
    assert max(values(got["wl-1"], "level_cm")) <= 151.0
    assert values(got["eb-1"], "battery_pct", 3600, 3600) == [100.0]


# ---- a quiet day -------------------------------------------------------------------------------------


def test_a_day_of_baseline_with_normal_charging_causes_no_transition() -> None:
    rig = Rig()
    day = 86_400.0
    sessions: Actions = {3600.0: ("charge", {}), 8 * 3600.0: ("charge", {"hours": 6, "current": 3}),
                         18 * 3600.0: ("charge", {"hours": 2, "current": 1.5})}
    devices: dict[str, tuple[Model, Actions]] = {}
    for seed in range(3):
        devices |= {f"sd-{seed}": (model(SD, seed), {}), f"wl-{seed}": (model(WL, seed), {}),
                    f"fl-{seed}": (model(FL, seed), {}), f"eb-{seed}": (model(EB, seed), sessions)}
    got = play_many(devices, day, rig=rig)
    smoke, water, lanes, chargers = ([got[f"{p}-{seed}"] for seed in range(3)] for p in ("sd", "wl", "fl", "eb"))
    assert rig.got == []

    for s in smoke:
        assert min(values(s, "obscuration_pct_m")) >= 0.1 and max(values(s, "obscuration_pct_m")) <= 0.6
        assert min(values(s, "temperature_c")) >= 20.0 and max(values(s, "temperature_c")) <= 26.0
        assert not any(values(s, "alarm")) and not {"fault", "tamper", "self_test"} & set(s[-1][1])
        temps = values(s, "temperature_c")
        assert max(abs(a - b) for a, b in itertools.pairwise(temps)) < 0.5  # drift, not jumps
        battery = values(s, "battery_pct")
        assert battery == sorted(battery, reverse=True) and 0.02 < battery[0] - battery[-1] < 0.2
    for s in water:
        levels = values(s, "level_cm")
        assert min(levels) > -36.0 and max(levels) < -24.0 and max(levels) - min(levels) <= 1.0
        assert set(values(s, "rain_mm_h")) == {0.0}
    for s in chargers:
        assert values(s, "charging", 0, 3570) == [False] * 120 and set(values(s, "current_a", 0, 3570)) == {0.0}
        volts = values(s, "voltage_v")
        assert min(volts) >= 216.0 and max(volts) <= 224.0
        energy = values(s, "energy_wh")
        assert energy == sorted(energy) and 1500.0 < energy[-1] - energy[0] < 6000.0
        # Constant current, then tapering towards 0.2 A, then the session ends on its own.
        assert 2.4 <= min(values(s, "current_a", 3600, 3600 + 0.69 * 4 * 3600)) <= 2.6
        assert 0.18 <= values(s, "current_a", 3600 + 4 * 3600 - 30, 3600 + 4 * 3600 - 30)[0] <= 0.22
        assert first(s, "charging", lambda c: not c, after=3600) == 3600 + 4 * 3600
        assert 30.0 <= min(values(s, "temperature_c", 3600 + 1800, 3600 + 0.7 * 4 * 3600)) <= 36.0
        assert 33.0 <= max(values(s, "temperature_c", 8 * 3600, 14 * 3600)) <= 42.0  # the 3 A session
        temps = [f["temperature_c"] for _, f in s]
        assert max(b - a for a, b in zip(temps, temps[2:], strict=False)) < 2.0  # per minute, plug-in included
    for s in lanes:
        occupied = [f["occupied"] for _, f in s]
        stops = [len(run) for run in "".join("x" if o else "." for o in occupied).split(".") if run]
        assert 5 <= len(stops) <= 25 and max(stops) <= 7  # brief stops: 1-3 minutes at 30 s
        assert all(f["object"] in ("car", "ebike") and 0.5 <= f["confidence"] <= 0.99 for _, f in s if f["occupied"])
        assert all("object" not in f and 0.85 <= f["confidence"] <= 0.99 for _, f in s if not f["occupied"])


def test_a_lanes_brief_stops_come_every_two_hours_or_so_never_last_4_minutes_and_never_merge() -> None:
    runs: list[tuple[bool, int]] = []  # (occupied, readings) of each run of equal readings
    for seed in range(30):
        occupied = [f["occupied"] for _, f in play(model(FL, seed), 2 * 86_400.0)]
        runs += [(o, len(list(g))) for o, g in itertools.groupby(occupied)][1:-1]
    stops = [n for o, n in runs if o]
    gaps = [n for o, n in runs if not o]
    assert 0.7 * 30 * 24 <= len(stops) <= 1.3 * 30 * 24  # 30 lanes, 2 days, one stop every ~2 h
    assert max(stops) <= 7 and min(stops) >= 1  # 1-3 minutes at 30 s: under 4 minutes always
    assert min(gaps) >= 3  # at least 2 minutes (4 readings, give or take one) between two stops


def test_battery_drains_a_few_percent_a_month_and_jumps_when_told() -> None:
    m = model(FL, 2)
    month = play(m, 30 * 86_400.0, every_s=86_400.0)
    drop = month[0][1]["battery_pct"] - month[-1][1]["battery_pct"]
    assert 1.5 <= drop <= 4.5
    m.begin("battery", EPOCH + 31 * 86_400.0, {"pct": 0.5})
    assert m.fields(EPOCH + 31 * 86_400.0)["battery_pct"] == 0.5
    assert m.fields(EPOCH + 400 * 86_400.0)["battery_pct"] == 0.0


# ---- smoke -------------------------------------------------------------------------------------------


def test_cooking_fumes_rise_and_fall_without_any_alert() -> None:
    rig = Rig()
    got = play_many({"sd-a": (model(SD, 5), {300: ("cooking", {})}),
                     "sd-b": (model(SD, 6), {300: ("cooking", {"peak": 4.9, "minutes": 10})})},
                    1800, every_s=15, rig=rig)
    default, strong = got["sd-a"], got["sd-b"]
    assert rig.got == []
    assert 2.8 <= max(values(default, "obscuration_pct_m")) <= 3.2
    assert 4.6 <= max(values(strong, "obscuration_pct_m")) <= 4.9
    for s, minutes in ((default, 6), (strong, 10)):
        peak_at = max(s, key=lambda x: x[1]["obscuration_pct_m"])[0]
        assert 300 + minutes * 30 - 60 <= peak_at <= 300 + minutes * 30 + 60  # the middle of the cooking
        assert max(values(s, "obscuration_pct_m", 300 + minutes * 60 + 15)) <= 0.6  # and gone after it
        rise = max(values(s, "temperature_c", 300, 300 + minutes * 60)) - max(values(s, "temperature_c", 0, 285))
        assert 0.6 <= rise <= 3.5
        assert not any(values(s, "alarm"))


@pytest.mark.parametrize("seed", range(8))
def test_a_fire_grows_on_its_stated_timeline_then_dies_down_when_extinguished(seed: int) -> None:
    m = model(SD, seed)
    s = play(m, 900, every_s=1, actions={60: ("fire", {}), 660: ("extinguish", {})})
    smoke5 = first(s, "obscuration_pct_m", lambda v: v >= 5)
    smoke10 = first(s, "obscuration_pct_m", lambda v: v >= 10)
    alarm = first(s, "alarm", bool)
    hot = first(s, "temperature_c", lambda v: v >= 57)
    assert smoke5 is not None and smoke10 is not None and alarm is not None and hot is not None
    assert 45 <= smoke5 - 60 <= 70
    assert 75 <= smoke10 - 60 <= 105
    assert smoke5 < alarm < smoke10
    assert values(s, "obscuration_pct_m", alarm, alarm)[0] >= 8.0 and all(values(s, "alarm", alarm, 700))
    assert hot - 60 >= 120 and hot - 60 <= 200
    assert 25.0 <= max(values(s, "obscuration_pct_m", 480, 660)) <= 35.0
    assert 70.0 <= values(s, "temperature_c", 60 + 330, 60 + 330)[0] <= 90.0
    assert max(values(s, "temperature_c")) <= 90.0
    # Extinguished at 660 s: smoke halves every 30 s, the alarm stops below 6 %/m, the heat fades.
    assert max(values(s, "obscuration_pct_m", 660 + 180)) < 3.0
    quiet = first(s, "alarm", lambda a: not a, after=660)
    assert quiet is not None and 30 <= quiet - 660 <= 90
    assert all(f["obscuration_pct_m"] < 6.0 for at, f in s if at >= quiet)
    assert max(values(s, "temperature_c", 660 + 240)) < values(s, "temperature_c", 0, 0)[0] + 2.5


def test_a_slower_fire_takes_growth_s_to_reach_10() -> None:
    for seed in range(4):
        s = play(model(SD, seed), 400, every_s=1, actions={0: ("fire", {"growth_s": 180})})
        smoke10 = first(s, "obscuration_pct_m", lambda v: v >= 10)
        assert smoke10 is not None and 160 <= smoke10 <= 200


def test_a_fire_fires_obscuration_then_alarm_and_extinguishing_clears_them() -> None:
    rig60, rig10 = Rig(), Rig()  # at the detector's own 60 s heartbeat, and at 10 s
    acts: Actions = {600: ("fire", {}), 1080: ("extinguish", {})}
    play(model(SD, 1), 1800, rig=rig60, device_id="sd-60", actions=acts)
    play(model(SD, 1), 1800, every_s=10, rig=rig10, device_id="sd-10", actions=acts)
    assert rig60.got == [
        ("fire", "smoke.obscuration", "yellow", "sd-60", 660.0),  # 60 s into the fire: 5-6 %/m
        ("fire", "smoke.alarm", "orange", "sd-60", 720.0),  # 120 s: about 14 %/m
        ("clear", "smoke.obscuration", None, "sd-60", 1260.0),
        ("clear", "smoke.alarm", None, "sd-60", 1260.0),
    ]
    assert rig10.got == [
        ("fire", "smoke.obscuration", "yellow", "sd-10", 660.0),
        ("fire", "smoke.alarm", "orange", "sd-10", 680.0),  # the detector's own alarm (8 %/m) at 80 s
        ("clear", "smoke.alarm", None, "sd-10", 1220.0),
        ("clear", "smoke.obscuration", None, "sd-10", 1240.0),
    ]


def test_self_test_fault_and_tamper() -> None:
    rig = Rig()
    m = model(SD, 3)
    s = play(m, 1200, rig=rig, device_id="sd-1",
             actions={120: ("self_test", {}), 600: ("fault", {}), 720: ("fault", {"on": False}),
                      840: ("tamper", {}), 960: ("tamper", {"on": False})})
    tested = [f for at, f in s if f.get("self_test")]
    assert len(tested) == 1 and tested[0]["alarm"] is True and tested[0]["obscuration_pct_m"] < 1.0
    assert s[3][1]["self_test"] is False and s[3][1]["alarm"] is False and "self_test" not in s[1][1]
    assert [at for at, f in s if f.get("fault")] == [600.0, 660.0]
    assert [at for at, f in s if f.get("tamper")] == [840.0, 900.0]
    assert s[-1][1]["fault"] is False and s[-1][1]["tamper"] is False
    assert rig.got == [("fire", "device.fault", "blue", "sd-1", 600.0), ("clear", "device.fault", None, "sd-1", 720.0),
                       ("fire", "device.fault", "blue", "sd-1", 840.0), ("clear", "device.fault", None, "sd-1", 960.0)]


# ---- e-bike chargers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_a_runaway_battery_heats_up_accelerating(seed: int) -> None:
    cold = model(EB, seed)  # from an idle port at room temperature
    warm = model(EB, seed + 100)  # an hour into a normal session (about 35 °C)
    for m, start in ((cold, 600.0), (warm, 3600.0)):
        acts: Actions = {start: ("runaway", {})} if m is cold else {0.0: ("charge", {}), start: ("runaway", {})}
        s = play(m, start + 1200, every_s=10, actions=acts)
        hot60 = first(s, "temperature_c", lambda v: v >= 60)
        hot80 = first(s, "temperature_c", lambda v: v >= 80)
        assert hot60 is not None and hot80 is not None
        assert 180 <= hot60 - start <= 300 and 300 <= hot80 - start <= 420
        minute = {round(at - start): f["temperature_c"] for at, f in s if at >= start}
        # At least 5 °C a minute from minute 2 on (up to 120 °C, where the sensor's reading bends off)
        assert all(minute[k + 60] - minute[k] >= 5.0 for k in range(120, 1140, 10) if minute[k + 60] < 120.0)
        assert all(minute[k + 10] - minute[k] > -1.0 for k in range(0, 1190, 10))  # and never down
        assert 130.0 <= max(minute.values()) < 200.0
        assert all(values(s, "charging", start)) and 1.3 <= min(values(s, "current_a", start)) <= 2.8


def test_a_runaway_fires_heating_then_overheat_orange_and_red() -> None:
    rig = Rig()
    play(model(EB, 2), 7200, rig=rig, device_id="eb-1", actions={60: ("charge", {}), 3600: ("runaway", {})})
    assert rig.got == [
        ("fire", "ebike.heating", "orange", "eb-1", 3660.0),
        ("fire", "ebike.overheat", "orange", "eb-1", 3840.0),  # 4 min into the runaway
        ("raise", "ebike.overheat", "red", "eb-1", 3960.0),  # 6 min
        ("clear", "ebike.heating", None, "eb-1", 4590.0),  # near the sensor's ceiling (186 °C) the rise ends
    ]


def test_overcurrent_fires_at_once_heats_slowly_and_clears_when_unplugged() -> None:
    rig = Rig()
    s = play(model(EB, 2), 7200, rig=rig, device_id="eb-1",
             actions={60: ("charge", {}), 3600: ("overcurrent", {}), 3600 + 900: ("unplug", {})})
    assert rig.got == [("fire", "ebike.overcurrent", "orange", "eb-1", 3600.0),
                       ("clear", "ebike.overcurrent", None, "eb-1", 4560.0)]
    amps = values(s, "current_a", 3600, 4470)
    assert min(amps) >= 12.5 and max(amps) <= 13.5
    assert max(values(s, "temperature_c", 3600, 3600 + 600)) < 50.0
    assert values(s, "temperature_c", 4470, 4470)[0] > values(s, "temperature_c", 3600, 3600)[0] + 8.0
    assert set(values(s, "charging", 4500)) == {False} and set(values(s, "current_a", 4500)) == {0.0}
    cooled = values(s, "temperature_c", 4500 + 1800, 4500 + 1800)[0]
    assert cooled < values(s, "temperature_c", 0, 0)[0] + 1.5  # back to ambient within 30 minutes
    heavy = play(model(EB, 3), 900, every_s=30, actions={0: ("overcurrent", {"current": 100})})
    assert min(values(heavy, "current_a")) >= 99.5 and max(values(heavy, "temperature_c", 0, 600)) < 60.0


def test_an_endless_session_trickles_and_fires_overcharge_after_8_hours() -> None:
    rig = Rig()
    s = play(model(EB, 5), 10 * 3600, rig=rig, device_id="eb-1", actions={60: ("endless", {})})
    assert rig.got == [("fire", "ebike.overcharge", "yellow", "eb-1", 60 + 8 * 3600.0)]
    assert all(values(s, "charging", 60))
    trickle = values(s, "current_a", 60 + 4 * 3600)
    assert min(trickle) >= 0.1 and max(trickle) <= 0.3


# ---- water -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_heavy_rain_floods_the_dip_fast_and_drains_after(seed: int) -> None:
    s = play(model(WL, seed), 3 * 3600, actions={600: ("rain", {"peak_mm_h": 60, "minutes": 60})})
    levels = {at: f["level_cm"] for at, f in s}
    assert 40.0 < max(levels.values()) < 70.0
    assert max(levels[at + 600] - levels[at] for at in levels if at + 600 in levels) >= 10.0
    assert 55.0 <= max(values(s, "rain_mm_h")) <= 61.5
    end = 600 + 3600
    below = first(s, "level_cm", lambda v: v < 8, after=end)
    assert below is not None and below - end <= 25 * 60
    assert max(values(s, "level_cm", end + 3600)) < -20.0 and set(values(s, "rain_mm_h", end)) == {0.0}


@pytest.mark.parametrize("seed", range(6))
def test_a_light_shower_stays_below_10_cm(seed: int) -> None:
    s = play(model(WL, seed), 3 * 3600, actions={600: ("rain", {"peak_mm_h": 20, "minutes": 60})})
    assert max(values(s, "level_cm")) < 10.0 and 18.0 <= max(values(s, "rain_mm_h")) <= 20.5


def test_heavy_rain_walks_water_level_up_to_red_fires_rising_then_clears() -> None:
    rig = Rig()
    play(model(WL, 3), 4 * 3600, rig=rig, device_id="wl-1", actions={600: ("rain", {"peak_mm_h": 60})})
    assert rig.got == [
        ("fire", "water.rising", "yellow", "wl-1", 1380.0),  # the drain fills: -30 to -19 cm in 10 min
        ("fire", "water.level", "blue", "wl-1", 2040.0),
        ("raise", "water.level", "yellow", "wl-1", 2160.0),
        ("raise", "water.rising", "orange", "wl-1", 2160.0),
        ("raise", "water.level", "orange", "wl-1", 2340.0),
        ("raise", "water.rising", "red", "wl-1", 2340.0),
        ("raise", "water.level", "red", "wl-1", 2700.0),
        ("clear", "water.rising", None, "wl-1", 3720.0),
        ("lower", "water.level", "yellow", "wl-1", 4620.0),
        ("clear", "water.level", None, "wl-1", 5220.0),
    ]


def test_a_blocked_drain_keeps_the_water_until_cleared_and_dry_stops_the_rain() -> None:
    s = play(model(WL, 1), 6 * 3600, actions={0: ("blocked_drain", {}), 600: ("rain", {"peak_mm_h": 40}),
                                               600 + 1800: ("dry", {}), 3 * 3600: ("clear_drain", {})})
    assert set(values(s, "rain_mm_h", 600 + 1800)) == {0.0} and max(values(s, "rain_mm_h")) > 15.0
    after_rain = values(s, "level_cm", 600 + 1800, 3 * 3600 - 60)
    assert min(after_rain) > 10.0 and max(after_rain) - min(after_rain) < 12.0  # it stays
    assert max(values(s, "level_cm", 4 * 3600)) < -20.0  # and drains once cleared


# ---- fire lanes -----------------------------------------------------------------------------------------


def test_parking_20_minutes_fires_yellow_then_orange_and_leaving_clears() -> None:
    rig = Rig()
    got = play_many({"fl-1": (model(FL, 4), {600: ("park", {"minutes": 20})}),
                     "fl-2": (model(FL, 5), {600: ("park", {"object": "debris"}), 1800: ("leave", {})})}, 3600, rig=rig)
    s = got["fl-1"]
    assert {f["object"] for at, f in got["fl-2"] if 600 <= at < 1800} == {"debris"}
    assert rig.got == [
        ("fire", "fire_lane.blocked", "yellow", "fl-1", 900.0),
        ("fire", "fire_lane.blocked", "yellow", "fl-2", 900.0),
        ("raise", "fire_lane.blocked", "orange", "fl-1", 1500.0),
        ("raise", "fire_lane.blocked", "orange", "fl-2", 1500.0),
        ("clear", "fire_lane.blocked", None, "fl-1", 1830.0),
        ("clear", "fire_lane.blocked", None, "fl-2", 1830.0),
    ]
    parked = [f for at, f in s if 600 <= at < 1800]
    assert all(f["occupied"] and f["object"] == "car" for f in parked)
    confident = [f for f in parked if 0.8 <= f["confidence"] <= 0.99]
    assert len(parked) * 0.85 <= len(confident) < len(parked) and min(f["confidence"] for f in parked) >= 0.55
    assert not any(values(s, "occupied", 1800, 2100))


# ---- leak sensors -----------------------------------------------------------------------------------------


def test_a_leak_sensor_stays_dry_and_cool_for_a_week_at_its_hourly_heartbeat() -> None:
    rig = Rig()
    got = play_many({f"lk-{seed}": (model(LK, seed), {}) for seed in range(5)}, 7 * 86_400.0, rig=rig)
    assert rig.got == []
    for s in got.values():
        assert len(s) == 7 * 24 + 1 and not any(values(s, "leak"))
        temps = values(s, "temperature_c")
        assert min(temps) >= 10.5 and max(temps) <= 21.5 and max(temps) - min(temps) <= 2.0
        assert not {"fault", "tamper"} & set(s[-1][1])


def test_a_leak_fires_yellow_at_the_next_reading_and_clears_5_min_after_the_probes_dry() -> None:
    rig = Rig()
    got = play_many({"lk-1": (model(LK, 1), {600: ("leak", {"minutes": 20})}),
                     "lk-2": (model(LK, 2), {630: ("leak", {}), 3600: ("dry", {})})}, 2 * 3600, every_s=60, rig=rig)
    assert [at for at, f in got["lk-1"] if f["leak"]] == [600.0 + 60 * k for k in range(20)]
    assert [at for at, f in got["lk-2"] if f["leak"]] == [660.0 + 60 * k for k in range(49)]
    assert rig.got == [
        ("fire", "water.leak", "yellow", "lk-1", 600.0),
        ("fire", "water.leak", "yellow", "lk-2", 660.0),
        ("clear", "water.leak", None, "lk-1", 2100.0),  # dry from 1800 s
        ("clear", "water.leak", None, "lk-2", 3900.0),  # dry from 3600 s
    ]


def test_dry_ends_an_incident_and_a_leak_at_once() -> None:
    m = model(LK, 3)
    m.begin("incident", EPOCH, {"readings": 50})
    assert m.fields(EPOCH)["leak"] is True
    m.begin("dry", EPOCH + 60, {})
    assert m.fields(EPOCH + 60)["leak"] is False
    m.begin("leak", EPOCH + 120, {})
    assert all(m.fields(EPOCH + 120 + 3600 * k)["leak"] for k in range(48))


# ---- incidents -------------------------------------------------------------------------------------------


def test_an_incident_fires_each_types_typical_alert() -> None:
    got: dict[DeviceType, list[Brief]] = {}
    for dtype in DeviceType:  # each in a community of its own
        rig = Rig()
        # A leak sensor reports a change at once, not at its hourly heartbeat: a reading a minute here.
        play(model(dtype, 7), 1800, every_s=60.0 if dtype is LK else None, rig=rig, device_id="d1",
             actions={300: ("incident", {})})
        got[dtype] = [b for b in rig.got if b[1] != "ebike.heating" and b[1] != "water.rising"]
    assert got == {
        SD: [("fire", "smoke.obscuration", "yellow", "d1", 300.0), ("fire", "smoke.alarm", "orange", "d1", 300.0),
             ("clear", "smoke.obscuration", None, "d1", 660.0), ("clear", "smoke.alarm", None, "d1", 660.0)],
        EB: [("fire", "ebike.overheat", "orange", "d1", 300.0), ("clear", "ebike.overheat", None, "d1", 600.0)],
        WL: [("fire", "water.level", "yellow", "d1", 300.0), ("clear", "water.level", None, "d1", 1260.0)],
        FL: [("fire", "fire_lane.blocked", "yellow", "d1", 600.0), ("clear", "fire_lane.blocked", None, "d1", 690.0)],
        BS: [("fire", "shed.offgas", "orange", "d1", 300.0), ("fire", "shed.fire", "red", "d1", 300.0),
             ("clear", "shed.offgas", None, "d1", 900.0), ("clear", "shed.fire", None, "d1", 900.0)],
        # Wet for 5 readings (300-540 s), dry from 600 s, cleared 5 min later.
        LK: [("fire", "water.leak", "yellow", "d1", 300.0), ("clear", "water.leak", None, "d1", 900.0)],
    }


def test_a_lane_blocked_while_a_detector_of_its_community_alarms_goes_red_at_once() -> None:
    rig = Rig()
    play_many({"sd-1": (model(SD, 1), {600: ("fire", {})}), "fl-1": (model(FL, 1), {690: ("park", {})})}, 900,
              rig=rig)
    assert rig.got == [("fire", "smoke.obscuration", "yellow", "sd-1", 660.0),
                       ("fire", "fire_lane.blocked", "red", "fl-1", 690.0),
                       ("fire", "smoke.alarm", "orange", "sd-1", 720.0)]


@pytest.mark.parametrize("seed", range(5))
def test_a_shed_battery_vents_voc_then_h2_then_co_minutes_before_heat_and_smoke(seed: int) -> None:
    m = model(BS, seed)
    quiet = [m.fields(EPOCH + 60.0 * k) for k in range(60)]  # an hour of a quiet night
    assert all(f["h2_ppm"] < 5 and f["co_ppm"] < 5 and f["obscuration_pct_m"] == 0 and f["temperature_c"] < 40
               for f in quiet)
    start = EPOCH + 3600.0
    m.begin("runaway", start, {})
    first: dict[str, float] = {}
    for k in range(1, 20 * 60 // 10):
        t = start + 10.0 * k
        f = m.fields(t)
        for name, limit in (("voc_ppm", 5.0), ("h2_ppm", 50.0), ("co_ppm", 50.0), ("obscuration_pct_m", 1.0),
                            ("temperature_c", 60.0)):
            if name not in first and f[name] >= limit:
                first[name] = t - start
    assert first["voc_ppm"] < first["h2_ppm"] < first["co_ppm"] < first["obscuration_pct_m"] < first["temperature_c"]
    # The early warning (H₂ ≥ 50 ppm) comes at least two minutes before any visible smoke.
    assert first["obscuration_pct_m"] - first["h2_ppm"] >= 240.0, first
