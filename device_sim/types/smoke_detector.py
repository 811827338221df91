"""The simulator's smoke detector (烟感): clean air with a daily swing, cooking fumes, a growing fire."""

from __future__ import annotations

import math
import random
from typing import Any

from device_sim.model import DAY_RAD, Behaviour, Model, Param, minutes_param, shared_behaviours
from device_sim.types import register_model
from kernel.devices.smoke_detector import KIND

# Smoke detector phases.
_IDLE, _COOK, _FIRE, _DECAY = 0, 1, 2, 3
# The fire's smoke: a logistic curve started at zero, shaped so that (over clean air) 5 %/m comes at
# about 55 s and 10 %/m at growth_s.
_FIRE_A = 8.0
_FIRE_K90 = 0.0185
_SMOKE_DECAY = math.log(2.0) / 30.0  # half-life 30 s
_HEAT_FADE_S = 70.0

BEHAVIOURS: dict[str, Behaviour] = {
    "cooking": Behaviour("cooking fumes rise to about `peak` %/m and fall back over `minutes`, room +1-3 °C; "
                         "never alarms",
                         {"peak": Param("number", 3.0, lo=0.0, hi=5.0, lo_open=True, hi_open=True),
                          "minutes": minutes_param(6.0)}),
    "fire": Behaviour("a growing fire: smoke 5 %/m after about 55 s, 10 %/m after `growth_s`, saturating "
                      "near 30; 57 °C after about 2.5 min, 75-88 °C after 5 min; own alarm from 8 %/m",
                      {"growth_s": Param("number", 90.0, lo=10.0, hi=3600.0)}),
    "extinguish": Behaviour("the fire is out: smoke halves every 30 s, heat fades over a few minutes; "
                            "own alarm off below 6 %/m", {}),
    "self_test": Behaviour("a self-test: alarm and self_test true for the next reading (or 30 s)", {}),
    **shared_behaviours("a staged fire: alarm true, 11-14 %/m, 40-50 °C for `readings` readings, then it dies down",
              flags_stored=True),
}


class SmokeDetector(Model):
    """An optical smoke detector with a thermistor: obscuration, its own alarm, room temperature."""

    device_type = KIND.device_type
    behaviours = BEHAVIOURS

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
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
        return self._amb + math.sin(t * DAY_RAD + self._phase)

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
        temp = self._amb + math.sin(t * DAY_RAD + self._phase) + 0.15 * (r() + r() - 1.0)
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


register_model(SmokeDetector, share=5, place=1)
