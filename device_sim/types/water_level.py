"""The simulator's water gauge (水位计) over a road dip with a drain: showers, a blocked drain."""

from __future__ import annotations

import math
import random
from typing import Any

from device_sim.model import STEP_S, Behaviour, Model, Param, minutes_param, shared_behaviours, switch_params
from device_sim.types import register_model
from kernel.devices.water_level import KIND

_DRAIN_CM_MIN = 1.6  # outflow through a free drain, cm of depth per minute
_INFLOW = 0.09  # cm of depth per minute for each mm/h of rain (the catchment runs into the dip)
_BLOCKED = 0.03
_OVERFLOW_CM = 150.0  # the dip overflows into the street beyond this depth

BEHAVIOURS: dict[str, Behaviour] = {
    "rain": Behaviour("a shower rising to `peak_mm_h` and falling over `minutes`; water rises while "
                      "inflow beats the drain (peak 60 for 60 min: over 40 cm; peak 20: under 10 cm)",
                      {"peak_mm_h": Param("number", 40.0, lo=0.0, hi=300.0, lo_open=True),
                       "minutes": minutes_param(60.0)}),
    "blocked_drain": Behaviour("the drain is blocked (almost no outflow) until begun with on=false",
                               switch_params()),
    "clear_drain": Behaviour("the drain flows again (blocked_drain with on=false)", {}),
    "dry": Behaviour("the rain stops now", {}),
    **shared_behaviours("staged standing water: 16-20 cm for `readings` readings, then it drains"),
}


class WaterLevel(Model):
    """A gauge over a road dip with a drain: depth above the road surface, rain intensity."""

    device_type = KIND.device_type
    behaviours = BEHAVIOURS

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
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
            h = dt if dt < STEP_S else STEP_S
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


register_model(WaterLevel, share=1, place=3)
