"""Device physics for the simulator: each type's readings over simulated time, and the behaviours that change them.

A model is a small state machine driven by the caller's simulated clock: `fields(t)` gives the reading
at time t (t never goes back), `begin(behaviour, t, params)` starts a fire, a charging session, a rain
shower, a parked car... All randomness comes from the rng the model was made with, so the same seed and
the same calls give the same readings. `fields` is on the load generator's hot path (20,000 calls per
second): it does a few float operations and at most a few `exp`/`sin` calls, and rounds by
`round(x * 10) / 10` (a third of the cost of `round(x, 1)`).
"""

from __future__ import annotations

import importlib
import math
import pkgutil
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kernel.devices import CATALOG
from kernel.ids import DeviceType

# How often each type reports when nothing happens (seconds), from the catalog; the offline rule
# builds on the same figures.
EXPECTED_INTERVAL_S: dict[DeviceType, float] = {t: k.expected_interval_s for t, k in CATALOG.items()}

DAY_S = 86_400.0
MONTH_S = 30 * DAY_S
_DAY_RAD = 2.0 * math.pi / DAY_S
LANE_OBJECTS = ("car", "ebike", "debris", "other", "unknown")


# ---- behaviours and their parameters ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    """One behaviour parameter: its kind (number, int, bool, choice), default and allowed values."""

    kind: str
    default: Any = None
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[str, ...] = ()
    required: bool = False
    none_means: str = ""  # a default of None is allowed and means this ("until leave")

    def allowed(self) -> str:
        """What values are allowed, in words."""
        if self.kind == "bool":
            return "true or false"
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        what = "a whole number" if self.kind == "int" else "a number"
        if self.lo is None or self.hi is None:
            if self.lo is not None:
                return f"{what} {'above' if self.lo_open else 'at least'} {self.lo:g}"
            return f"{what} {'below' if self.hi_open else 'at most'} {self.hi:g}" if self.hi is not None else what
        lo = f"above {self.lo:g}" if self.lo_open else f"from {self.lo:g}"
        if self.hi_open:
            return f"{what} {lo} and below {self.hi:g}"
        return f"{what} {lo} {'and at most' if self.lo_open else 'to'} {self.hi:g}"

    def check(self, value: Any) -> Any:
        """The value normalised, or None when it is not allowed."""
        if self.kind == "bool":
            return value if isinstance(value, bool) else None
        if self.kind == "choice":
            return value if isinstance(value, str) and value in self.choices else None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return None
        if self.kind == "int":
            if isinstance(value, float) and not value.is_integer():
                return None
            value = int(value)
        else:
            value = float(value)
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return None
        if self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi):
            return None
        return value

    def describe(self, name: str) -> str:
        """`name=default` for the help text."""
        if self.required:
            return f"{name} (required, {self.allowed()})"
        if self.default is None:
            return f"{name}=none ({self.none_means}; or {self.allowed()})"
        default = self.default
        if isinstance(default, bool):
            shown = str(default).lower()
        elif isinstance(default, float):
            shown = f"{default:g}"
        else:
            shown = str(default)
        return f"{name}={shown} ({self.allowed()})"


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What a behaviour does, and its parameters."""

    text: str
    params: dict[str, Param]

    def describe(self) -> str:
        """One line: what it does, then its parameters and their defaults."""
        if not self.params:
            return self.text
        return f"{self.text}; params: " + ", ".join(p.describe(n) for n, p in self.params.items())


def _minutes(default: float | None, none_means: str = "") -> Param:
    return Param("number", default, lo=0.0, hi=1440.0, lo_open=True, none_means=none_means)


_ON = {"on": Param("bool", True)}


def _shared(incident: str, *, flags_stored: bool = False) -> dict[str, Behaviour]:
    # docs/devices.md lists fault and tamper for smoke detectors only: the service ignores (and
    # counts) them from other types, so their help says so.
    note = "" if flags_stored else " (not a field of this type in the contract: the service ignores it)"
    return {
        "fault": Behaviour(f"the device reports a fault until begun again with on=false{note}", dict(_ON)),
        "tamper": Behaviour(f"the device reports tampering until begun again with on=false{note}", dict(_ON)),
        "battery": Behaviour("the battery jumps to pct, then keeps draining",
                             {"pct": Param("number", lo=0.0, hi=100.0, required=True)}),
        "incident": Behaviour(incident, {"readings": Param("int", 5, lo=1.0, hi=10_000.0)}),
    }


# The registry: per type, its behaviours, its model class and its share of a generated site.
_SPECS: dict[DeviceType, dict[str, Behaviour]] = {}
_MODELS: dict[DeviceType, Callable[[random.Random], Model]] = {}
_SHARES: dict[DeviceType, int] = {}
# Per type, behaviour name -> one line: what it does, its parameters and their defaults.
BEHAVIOURS: dict[DeviceType, dict[str, str]] = {}


def register_model(device_type: DeviceType, model: Callable[[random.Random], Model],
                   behaviours: dict[str, Behaviour], *, share: int) -> None:
    """Add a type's simulator model; `share` is how many of every 10 generated devices are of it."""
    _SPECS[device_type] = behaviours
    _MODELS[device_type] = model
    _SHARES[device_type] = share
    BEHAVIOURS[device_type] = {name: b.describe() for name, b in behaviours.items()}


def device_mix() -> list[DeviceType]:
    """The types of a generated site's devices, in the order they repeat (each type `share` times)."""
    return [t for t, n in _SHARES.items() for _ in range(n)]


_SMOKE_BEHAVIOURS: dict[str, Behaviour] = {
        "cooking": Behaviour("cooking fumes rise to about `peak` %/m and fall back over `minutes`, room +1-3 °C; "
                             "never alarms",
                             {"peak": Param("number", 3.0, lo=0.0, hi=5.0, lo_open=True, hi_open=True),
                              "minutes": _minutes(6.0)}),
        "fire": Behaviour("a growing fire: smoke 5 %/m after about 55 s, 10 %/m after `growth_s`, saturating "
                          "near 30; 57 °C after about 2.5 min, 75-88 °C after 5 min; own alarm from 8 %/m",
                          {"growth_s": Param("number", 90.0, lo=10.0, hi=3600.0)}),
        "extinguish": Behaviour("the fire is out: smoke halves every 30 s, heat fades over a few minutes; "
                                "own alarm off below 6 %/m", {}),
        "self_test": Behaviour("a self-test: alarm and self_test true for the next reading (or 30 s)", {}),
        **_shared("a staged fire: alarm true, 11-14 %/m, 40-50 °C for `readings` readings, then it dies down",
                  flags_stored=True),
}
_EBIKE_BEHAVIOURS: dict[str, Behaviour] = {
        "charge": Behaviour("a normal charging session: `current` for 70 % of `hours`, tapering to 0.2 A, "
                            "then charging stops; 30-42 °C while charging",
                            {"hours": Param("number", 4.0, lo=0.0, hi=24.0, lo_open=True),
                             "current": Param("number", 2.5, lo=1.5, hi=3.0)}),
        "runaway": Behaviour("a failing battery (starts a session if none): 60 °C after about 4 min, 80 °C "
                             "after about 6 min, then on up to 150-190 °C; charging stays true", {}),
        "overcurrent": Behaviour("a modified battery draws `current` (±0.5 A) until unplugged, heating "
                                 "slowly (under 60 °C for 10 min)",
                                 {"current": Param("number", 13.0, lo=10.0, hi=100.0, lo_open=True)}),
        "endless": Behaviour("a session that never ends: charging true forever, a 0.1-0.3 A trickle "
                             "after about 4 hours", {}),
        "unplug": Behaviour("the session ends: current 0, charging false, cooling to ambient over minutes", {}),
        **_shared("a staged overheat while charging: 62-70 °C for `readings` readings, then unplugged"),
}
_WATER_BEHAVIOURS: dict[str, Behaviour] = {
        "rain": Behaviour("a shower rising to `peak_mm_h` and falling over `minutes`; water rises while "
                          "inflow beats the drain (peak 60 for 60 min: over 40 cm; peak 20: under 10 cm)",
                          {"peak_mm_h": Param("number", 40.0, lo=0.0, hi=300.0, lo_open=True),
                           "minutes": _minutes(60.0)}),
        "blocked_drain": Behaviour("the drain is blocked (almost no outflow) until begun with on=false",
                                   dict(_ON)),
        "clear_drain": Behaviour("the drain flows again (blocked_drain with on=false)", {}),
        "dry": Behaviour("the rain stops now", {}),
        **_shared("staged standing water: 16-20 cm for `readings` readings, then it drains"),
}
_LANE_BEHAVIOURS: dict[str, Behaviour] = {
        "park": Behaviour("something stops in the lane: occupied true with `object`, confidence 0.8-0.99",
                          {"object": Param("choice", "car", choices=LANE_OBJECTS),
                           "minutes": _minutes(None, "until leave")}),
        "leave": Behaviour("the lane is empty again", {}),
        **_shared("a car parks in the lane for 6 minutes (or `readings` readings if longer)"),
}


def check_params(device_type: DeviceType, behaviour: str, params: dict[str, Any]) -> dict[str, Any]:
    """The behaviour's parameters with defaults filled in; ValueError (one line) on anything not allowed."""
    specs = _SPECS[device_type]
    spec = specs.get(behaviour)
    if spec is None:
        raise ValueError(f"unknown behaviour {behaviour!r} for {device_type}; "
                         f"allowed: {', '.join(specs)}")
    where = f"behaviour {behaviour!r} of {device_type}"
    for name in params:
        if name not in spec.params:
            allowed = f"allowed: {', '.join(spec.params)}" if spec.params else "it takes no parameters"
            raise ValueError(f"{where} has no parameter {name!r}; {allowed}")
    out: dict[str, Any] = {}
    for name, p in spec.params.items():
        if name not in params:
            if p.required:
                raise ValueError(f"{where} needs parameter {name!r} ({p.allowed()})")
            out[name] = p.default
            continue
        value = params[name]
        if value is None and p.none_means:
            out[name] = None
            continue
        checked = None if value is None else p.check(value)
        if checked is None:
            raise ValueError(f"{where}: parameter {name!r} must be {p.allowed()}, got {value!r}")
        out[name] = checked
    return out


# ---- the models -----------------------------------------------------------------------------------


class Model:
    """One device's physics: the fields of its reading at simulated time t (epoch seconds).

    `begin` starts a behaviour (a fire, a charging session, a rain shower...) at simulated time t."""

    device_type: DeviceType
    interval_s: float

    def __init__(self, device_type: DeviceType, rng: random.Random) -> None:
        self.device_type = device_type
        self.interval_s = EXPECTED_INTERVAL_S[device_type]
        self._rng = rng
        self._r = r = rng.random
        self._battery = 55.0 + 45.0 * r()
        self._drain = (1.5 + 3.0 * r()) / MONTH_S  # % per second
        self._battery_t: float | None = None
        self._rssi = -88.0 + 30.0 * r()
        self._flags: dict[str, bool] = {}  # fault / tamper / self_test, once the device has reported them
        self._incident = 0  # readings left in a staged incident

    def fields(self, t: float) -> dict[str, Any]:
        """The reading's fields (no ts, no seq) at simulated time t; t never goes back."""
        raise NotImplementedError

    def begin(self, behaviour: str, t: float, params: dict[str, Any]) -> None:
        """Start a behaviour at simulated time t; ValueError names an unknown behaviour or a bad parameter."""
        p = check_params(self.device_type, behaviour, params)
        if self._battery_t is None:
            self._battery_t = t
        self._advance(t)
        if behaviour in ("fault", "tamper"):
            self._flags[behaviour] = p["on"]
        elif behaviour == "battery":
            self._battery, self._battery_t = p["pct"], t
        else:
            self._start(behaviour, t, p)

    def _advance(self, t: float) -> None:
        """Bring the physical state up to t (no randomness), so that a behaviour starts from it."""

    def _start(self, behaviour: str, t: float, p: dict[str, Any]) -> None:
        raise NotImplementedError

    def _common(self, t: float, body: dict[str, Any]) -> dict[str, Any]:
        bt = self._battery_t
        if bt is None:
            self._battery_t = bt = t
        battery = self._battery - self._drain * (t - bt)
        r = self._r
        # round(x * 10) / 10 rounds like round(x, 1) at a third of its cost.
        body["battery_pct"] = round(battery * 10.0) / 10.0 if battery > 0.0 else 0.0
        body["rssi_dbm"] = round(self._rssi + 4.0 * (r() + r() - 1.0))
        if self._flags:
            body.update(self._flags)
        return body


# Smoke detector phases.
_IDLE, _COOK, _FIRE, _DECAY = 0, 1, 2, 3
# The fire's smoke: a logistic curve started at zero, shaped so that (over clean air) 5 %/m comes at
# about 55 s and 10 %/m at growth_s.
_FIRE_A = 8.0
_FIRE_K90 = 0.0185
_SMOKE_DECAY = math.log(2.0) / 30.0  # half-life 30 s
_HEAT_FADE_S = 70.0


class SmokeDetector(Model):
    """An optical smoke detector with a thermistor: obscuration, its own alarm, room temperature."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__(DeviceType("smoke_detector"), rng)
        r = self._r
        self._amb = 21.5 + 3.0 * r()
        self._phase = 2.0 * math.pi * r()
        self._clean = 0.12 + 0.13 * r()
        self._mode = _IDLE
        self._t0 = 0.0
        self._s0 = 0.0  # smoke and heat left over when the current phase began, fading
        self._h0 = 0.0
        self._k = _FIRE_K90
        self._smax = 30.0
        self._f0 = 0.0
        self._hmax = 0.0
        self._peak = 0.0
        self._dur = 1.0
        self._dheat = 0.0
        self._alarm = False
        self._test_pending = False
        self._test_until = -math.inf

    def _ambient(self, t: float) -> float:
        return self._amb + math.sin(t * _DAY_RAD + self._phase)

    def _smoke_heat(self, t: float) -> tuple[float, float]:
        """Noise-free smoke (%/m above clean air) and heat (°C above ambient) at t."""
        mode = self._mode
        if mode == _IDLE:
            return 0.0, 0.0
        tau = t - self._t0
        s = self._s0 * math.exp(-_SMOKE_DECAY * tau) if self._s0 > 0.005 else 0.0
        h = self._h0 * math.exp(-tau / _HEAT_FADE_S) if self._h0 > 0.02 else 0.0
        if mode == _FIRE:
            f = self._smax / (1.0 + _FIRE_A * math.exp(-self._k * tau))
            fs = (f - self._f0) * self._smax / (self._smax - self._f0)
            fh = self._hmax * (1.0 - math.exp(-((tau / 150.0) ** 2)))
            return (fs if fs > s else s), (fh if fh > h else h)
        if mode == _COOK and tau < self._dur:
            bump = math.sin(math.pi * tau / self._dur) ** 2
            cs, ch = self._peak * bump, self._dheat * bump
            return (cs if cs > s else s), (ch if ch > h else h)
        if s < 0.005 and h < 0.02:
            self._mode = _IDLE
        return s, h

    def fields(self, t: float) -> dict[str, Any]:
        """The reading's fields (no ts, no seq) at simulated time t; t never goes back."""
        r = self._r
        clean = self._clean + 0.3 * r()
        temp = self._amb + math.sin(t * _DAY_RAD + self._phase) + 0.15 * (r() + r() - 1.0)
        if self._incident:
            self._incident -= 1
            obs = 11.0 + 3.0 * r()
            heat = 18.0 + 8.0 * r()
            temp += heat
            if not self._incident:
                self._mode, self._t0, self._s0, self._h0 = _DECAY, t, obs - clean, heat
        elif self._mode == _IDLE:
            obs = clean
        else:
            s, h = self._smoke_heat(t)
            obs = clean + s * (1.0 + 0.06 * (r() - 0.5))
            if obs > 4.9 and self._mode == _COOK:
                obs = 4.9
            temp += h
        if obs >= 8.0:
            self._alarm = True
        elif obs < 6.0:
            self._alarm = False
        body = {"obscuration_pct_m": round((obs if obs < 100.0 else 100.0) * 100.0) / 100.0, "alarm": self._alarm,
                "temperature_c": round((temp if temp < 150.0 else 150.0) * 10.0) / 10.0}
        self._common(t, body)
        if self._test_pending or t < self._test_until:
            self._test_pending = False
            body["alarm"] = body["self_test"] = True
        return body

    def _start(self, behaviour: str, t: float, p: dict[str, Any]) -> None:
        r = self._r
        if behaviour == "self_test":
            self._test_pending, self._test_until = True, t + 30.0
            self._flags["self_test"] = False  # readings after the test say so, so the alarm rule trusts them
            return
        if behaviour == "incident":
            self._incident = p["readings"]
            return
        s, h = self._smoke_heat(t)
        self._t0, self._s0, self._h0 = t, s, h
        if behaviour == "cooking":
            self._mode = _COOK
            self._peak = max(0.0, p["peak"] - self._clean - 0.15)
            self._dur = p["minutes"] * 60.0
            self._dheat = 1.0 + 2.0 * r()
        elif behaviour == "fire":
            self._mode = _FIRE
            self._k = _FIRE_K90 * 90.0 / p["growth_s"]
            self._smax = 27.0 + 6.0 * r()
            self._f0 = self._smax / (1.0 + _FIRE_A)
            self._hmax = 75.0 + 13.0 * r() - self._ambient(t)
        else:  # extinguish
            self._mode = _DECAY


# E-bike charger sessions.
_NONE, _CHARGE, _ENDLESS, _OVER, _RUNAWAY = 0, 1, 2, 3, 4
# Runaway: an exponential through 60 °C at 225 s and 80 °C at 345 s (in its own time scale), rising
# 6 °C/min at 2 min. A start cooler than its value at 0 s blends in over the first 240 s (smoothstep,
# so the rise never slows below the curve's); a hotter one fades out slowly enough never to dip.
_RW_T60 = 225.0
_RW_TAU = 336.0
_RW_A = 20.0 / (math.exp(120.0 / _RW_TAU) - 1.0)
_RW_R0 = 60.0 + _RW_A * (math.exp(-_RW_T60 / _RW_TAU) - 1.0)
_RW_SLOPE0 = _RW_A / _RW_TAU * math.exp(-_RW_T60 / _RW_TAU)
_RW_KNEE = 110.0
_STEP_S = 60.0
# A port warms by at most this (°C/s) whatever the load: far from the 5 °C/min heating rule.
_WARM_MAX = 0.02


class EbikeCharger(Model):
    """One 220 V charging port: current, voltage, power, port temperature, cumulative energy."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__(DeviceType("ebike_charger"), rng)
        r = self._r
        self._amb = 21.0 + 4.0 * r()
        self._phase = 2.0 * math.pi * r()
        self._vmean = 218.5 + 3.0 * r()
        self._energy = 500.0 + 20_000.0 * r()
        self._t: float | None = None
        self._temp = 0.0
        self._i = 0.0  # noise-free current at self._t
        self._mode = _NONE
        self._ts = 0.0
        self._i0 = 2.5
        self._len = 4.0 * 3600.0
        self._trickle = 0.1 + 0.2 * r()
        self._rw_t0 = 0.0
        self._rw_scale = 1.0
        self._rw_cap = 170.0
        self._rw_off = 0.0
        self._rw_tb = 120.0

    def _current(self, t: float) -> float:
        """Noise-free current at t for the running session."""
        mode = self._mode
        if mode == _NONE:
            return 0.0
        if mode in (_OVER, _RUNAWAY):
            return self._i0
        frac = (t - self._ts) / self._len
        if frac < 0.7:
            return self._i0
        end = 0.2 if mode == _CHARGE else self._trickle
        if frac >= 1.0:
            return end
        return self._i0 * math.pow(end / self._i0, (frac - 0.7) / 0.3)

    def _runaway_temp(self, t: float) -> float:
        tau = (t - self._rw_t0) / self._rw_scale
        temp = 60.0 + _RW_A * (math.exp((tau - _RW_T60) / _RW_TAU) - 1.0)
        off, tb = self._rw_off, self._rw_tb
        if tau < tb:
            u = tau / tb
            temp += off * (1.0 - u * u * (3.0 - 2.0 * u)) if off < 0.0 else off * (1.0 - u) ** 2
        if temp <= _RW_KNEE:
            return temp
        # Past the knee the sensor's reading bends smoothly towards its ceiling instead of clipping.
        span = self._rw_cap - _RW_KNEE
        return self._rw_cap - span * math.exp(-(temp - _RW_KNEE) / span)

    def _advance(self, t: float) -> None:
        last = self._t
        if last is None:
            self._t, self._temp = t, self._amb + 1.5 * math.sin(t * _DAY_RAD + self._phase)
            return
        if t <= last:
            return
        if self._mode == _CHARGE and t >= self._ts + self._len:
            self._integrate(last, self._ts + self._len)
            self._mode = _NONE
            last = self._ts + self._len
        self._integrate(last, t)

    def _integrate(self, last: float, t: float) -> None:
        # Steps of at most a minute (one step at the type's own interval); the current of each step's
        # end stands for the step.
        amb = self._amb + 1.5 * math.sin(t * _DAY_RAD + self._phase)
        mode, temp, energy, volts = self._mode, self._temp, self._energy, self._vmean
        i = 0.0
        while last < t:
            h = t - last if t - last <= _STEP_S else _STEP_S
            last += h
            i = self._current(last) if mode != _NONE else 0.0
            energy += i * volts * h / 3600.0
            if mode == _RUNAWAY:
                continue
            if i > 0.0:
                target = amb + 7.5 + (2.0 + 0.15 * i) * i
                if target > 150.0:
                    target = 150.0
                new = target + (temp - target) * math.exp(-h / 600.0)
                cap = temp + _WARM_MAX * h
                temp = new if new < cap else cap
            else:
                temp = amb + (temp - amb) * math.exp(-h / 300.0)
        self._temp = self._runaway_temp(t) if mode == _RUNAWAY else temp
        self._t, self._i, self._energy = t, i, energy

    def fields(self, t: float) -> dict[str, Any]:
        """The reading's fields (no ts, no seq) at simulated time t; t never goes back."""
        self._advance(t)
        r = self._r
        mode = self._mode
        i = self._i
        if mode == _OVER:
            i += 0.8 * (r() - 0.5)
            if i > 100.0:
                i = 100.0
        elif i > 0.0:
            i *= 1.0 + (0.08 if mode == _RUNAWAY else 0.03) * (r() - 0.5)
        if self._incident:
            self._incident -= 1
            self._temp = 62.0 + 8.0 * r()
            if not self._incident:
                self._mode = _NONE
        amps = round(i * 100.0) / 100.0
        volts = round((self._vmean - 0.15 * i + 0.8 * math.sin(t * _DAY_RAD + self._phase)
                       + 0.8 * (r() + r() - 1.0)) * 10.0) / 10.0
        body = {"current_a": amps, "voltage_v": volts, "power_w": round(amps * volts * 10.0) / 10.0,
                "temperature_c": round((self._temp + 0.25 * (r() + r() - 1.0)) * 10.0) / 10.0,
                "charging": mode != _NONE, "energy_wh": round(self._energy * 10.0) / 10.0}
        return self._common(t, body)

    def _session(self, t: float, mode: int, current: float, hours: float) -> None:
        self._mode, self._ts, self._i0, self._len = mode, t, current, hours * 3600.0
        self._i = self._current(t)

    def _start(self, behaviour: str, t: float, p: dict[str, Any]) -> None:
        r = self._r
        if behaviour == "charge":
            self._session(t, _CHARGE, p["current"], p["hours"])
        elif behaviour == "endless":
            self._session(t, _ENDLESS, 2.5, 4.0)
        elif behaviour == "overcurrent":
            self._session(t, _OVER, p["current"], 4.0)
        elif behaviour == "unplug":
            self._mode, self._i = _NONE, 0.0
        elif behaviour == "runaway":
            current = self._current(t) if self._mode != _NONE else 2.5
            self._session(t, _RUNAWAY, max(current, 1.5), 4.0)
            self._rw_t0, self._rw_scale, self._rw_cap = t, 0.93 + 0.14 * r(), 150.0 + 40.0 * r()
            self._rw_off = self._temp - _RW_R0
            self._rw_tb = 240.0 if self._rw_off < 0.0 else max(120.0, 2.5 * self._rw_off / _RW_SLOPE0)
        else:  # incident
            if self._mode == _NONE:
                self._session(t, _CHARGE, 2.5, 4.0)
            self._incident = p["readings"]


_DRAIN_CM_MIN = 1.6  # outflow through a free drain, cm of depth per minute
_INFLOW = 0.09  # cm of depth per minute for each mm/h of rain (the catchment runs into the dip)
_BLOCKED = 0.03
_OVERFLOW_CM = 150.0  # the dip overflows into the street beyond this depth


class WaterLevel(Model):
    """A gauge over a road dip with a drain: depth above the road surface, rain intensity."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__(DeviceType("water_level"), rng)
        r = self._r
        self._base = -33.0 + 6.0 * r()
        self._cap = _DRAIN_CM_MIN * (0.95 + 0.1 * r())
        self._level = self._base
        self._t: float | None = None
        self._blocked = False
        self._rs = 0.0
        self._rd = 1.0
        self._rp = 0.0  # peak of the current shower; 0 when dry

    def _rain(self, t: float) -> float:
        tau = t - self._rs
        if self._rp > 0.0 and 0.0 <= tau < self._rd:
            return self._rp * math.sin(math.pi * tau / self._rd)
        return 0.0

    def _advance(self, t: float) -> None:
        last = self._t
        self._t = t
        if last is None or t <= last:
            return
        base = self._base
        level = self._level
        if self._rp <= 0.0 and level - base < 0.01:
            self._level = base
            return
        cap = self._cap * _BLOCKED if self._blocked else self._cap
        dt = t - last
        while dt > 0.0:
            h = dt if dt < _STEP_S else _STEP_S
            head = level - base
            out = cap * (head / 5.0 if head < 5.0 else 1.0) * (1.0 + level / 40.0 if level > 0.0 else 1.0)
            level += (_INFLOW * self._rain(last + 0.5 * h) - out) * h / 60.0
            if level < base:
                level = base
            elif level > _OVERFLOW_CM:
                level = _OVERFLOW_CM
            last += h
            dt -= h
        self._level = level
        if self._rp > 0.0 and t >= self._rs + self._rd:
            self._rp = 0.0

    def fields(self, t: float) -> dict[str, Any]:
        """The reading's fields (no ts, no seq) at simulated time t; t never goes back."""
        self._advance(t)
        r = self._r
        if self._incident:
            self._incident -= 1
            staged = 16.0 + 4.0 * r()
            if staged > self._level:
                self._level = staged
            rain = 30.0 * (1.0 + 0.1 * (r() - 0.5))
            if not self._incident:
                self._rp = 0.0
        else:
            rain = self._rain(t)
            if rain > 0.0:
                rain *= 1.0 + 0.04 * (r() - 0.5)
        body = {"level_cm": round((self._level + 0.5 * (r() + r() - 1.0)) * 10.0) / 10.0,
                "rain_mm_h": round(rain * 10.0) / 10.0}
        return self._common(t, body)

    def _start(self, behaviour: str, t: float, p: dict[str, Any]) -> None:
        if behaviour == "rain":
            self._rs, self._rd, self._rp = t, p["minutes"] * 60.0, p["peak_mm_h"]
        elif behaviour == "dry":
            self._rp = 0.0
        elif behaviour == "blocked_drain":
            self._blocked = p["on"]
        elif behaviour == "clear_drain":
            self._blocked = False
        else:  # incident
            self._incident = p["readings"]


_STOP_EVERY_S = 2 * 3600.0
_STOP_GAP_S = 120.0  # at least this between two brief stops, so that a reading sees the lane empty


class FireLane(Model):
    """A camera watching a fire lane: occupied or not, what stands there, how sure it is."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__(DeviceType("fire_lane"), rng)
        self._object = ""  # what stands in the lane now ("" = nothing)
        self._until = math.inf  # when it leaves
        self._next = math.inf  # when the next brief stop begins
        self._started = False

    def _schedule(self, t: float) -> None:
        self._next = t + _STOP_GAP_S - _STOP_EVERY_S * math.log(1.0 - self._r())

    def fields(self, t: float) -> dict[str, Any]:
        """The reading's fields (no ts, no seq) at simulated time t; t never goes back."""
        r = self._r
        if not self._started:
            self._started = True
            self._schedule(t)
        if self._object and t >= self._until:
            self._schedule(self._until)
            self._object, self._until = "", math.inf
        while not self._object and t >= self._next:
            start = self._next
            end = start + 60.0 + 120.0 * r()
            obj = "car" if r() < 0.7 else "ebike"
            if t < end:
                self._object, self._until = obj, end
            else:  # a stop that began and ended between two readings
                self._schedule(end)
        if self._object:
            conf = 0.8 + 0.19 * r() if r() > 0.04 else 0.55 + 0.24 * r()
            body: dict[str, Any] = {"occupied": True, "object": self._object, "confidence": round(conf * 100.0) / 100.0}
        else:
            body = {"occupied": False, "confidence": round((0.85 + 0.14 * r()) * 100.0) / 100.0}
        return self._common(t, body)

    def _start(self, behaviour: str, t: float, p: dict[str, Any]) -> None:
        if not self._started:
            self._started = True
            self._schedule(t)
        if behaviour == "leave":
            if self._object:
                self._object, self._until = "", math.inf
                self._schedule(t)
            return
        if behaviour == "park":
            obj, minutes = p["object"], p["minutes"]
        else:  # incident
            obj, minutes = "car", max(6.0, p["readings"] * self.interval_s / 60.0)
        self._object = obj
        self._until = math.inf if minutes is None else t + minutes * 60.0


register_model(DeviceType("smoke_detector"), SmokeDetector, _SMOKE_BEHAVIOURS, share=6)
register_model(DeviceType("ebike_charger"), EbikeCharger, _EBIKE_BEHAVIOURS, share=2)
register_model(DeviceType("water_level"), WaterLevel, _WATER_BEHAVIOURS, share=1)
register_model(DeviceType("fire_lane"), FireLane, _LANE_BEHAVIOURS, share=1)


def make_model(device_type: DeviceType, rng: random.Random) -> Model:
    """The model of one device of this type, drawing its randomness from rng."""
    return _MODELS[device_type](rng)


def _load_models() -> None:
    # Types added later are one module each in device_sim/types/, registering themselves here.
    import device_sim.types as package
    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        importlib.import_module(f"{package.__name__}.{module.name}")


    missing = set(CATALOG) - set(_MODELS)
    if missing:
        raise RuntimeError(f"no simulator model for device type(s) {', '.join(sorted(missing))}")


_load_models()
