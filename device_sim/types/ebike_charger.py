"""The simulator's e-bike charging port (充电口): sessions, a modified battery, a battery in thermal runaway."""

from __future__ import annotations

import math
import random
from typing import Any

from device_sim.model import DAY_RAD, STEP_S, Behaviour, Model, Param, shared_behaviours
from device_sim.types import register_model
from kernel.devices.ebike_charger import KIND

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
# A port warms by at most this (°C/s) whatever the load: far from the 5 °C/min heating rule.
_WARM_MAX = 0.02

BEHAVIOURS: dict[str, Behaviour] = {
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
    **shared_behaviours("a staged overheat while charging: 62-70 °C for `readings` readings, then unplugged"),
}


class EbikeCharger(Model):
    """One 220 V charging port: current, voltage, power, port temperature, cumulative energy."""

    device_type = KIND.device_type
    behaviours = BEHAVIOURS

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
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
            self._t, self._temp = t, self._amb + 1.5 * math.sin(t * DAY_RAD + self._phase)
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
        amb = self._amb + 1.5 * math.sin(t * DAY_RAD + self._phase)
        mode, temp, energy, volts = self._mode, self._temp, self._energy, self._vmean
        i = 0.0
        while last < t:
            h = t - last if t - last <= STEP_S else STEP_S
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
        volts = round((self._vmean - 0.15 * i + 0.8 * math.sin(t * DAY_RAD + self._phase)
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


register_model(EbikeCharger, share=2, place=2)
