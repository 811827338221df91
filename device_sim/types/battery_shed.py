"""The simulator's bike shed (车棚) sensor: quiet nights, and a parked battery that vents and runs away.

A lithium battery going into thermal runaway vents before it burns: first electrolyte vapour (VOC),
then hydrogen, then carbon monoxide, and only minutes later heat and visible smoke (vendors' bench
tests put H₂ 2-8 min ahead of smoke). `runaway` plays that sequence from its start t0:
VOC from t0, H₂ from t0 + 1 min (about 50 ppm 2.5 min later), CO from t0 + 3 min, and smoke and heat
from t0 + `smoke_min` (default 8 min): obscuration past 10 %/m within half a minute, 60 °C within
about a minute. `vent` ends it: the gases halve every minute, smoke every 30 s, heat fades.
"""

from __future__ import annotations

import math
import random
from typing import Any

from device_sim.model import DAY_RAD, Behaviour, Model, Param, shared_behaviours
from device_sim.types import register_model
from kernel.devices.battery_shed import KIND

_H2_START_S = 60.0
_CO_START_S = 180.0
_H2_TAU_S = 120.0  # H₂ grows as 25 ppm × (e^(τ/120 s) − 1): 43 ppm at 2 min, 34 ppm/min then
_CO_TAU_S = 100.0
_GAS_HALF_S = 60.0
_SMOKE_HALF_S = 30.0

BEHAVIOURS: dict[str, Behaviour] = {
    "runaway": Behaviour("a parked battery vents and runs away: VOC at once, H₂ after 1 min (50 ppm after "
                         "about 3.5 min), CO after 3 min, then smoke and heat at `smoke_min` (10 %/m within "
                         "30 s, 60 °C within about a minute)",
                         {"smoke_min": Param("number", 8.0, lo=4.0, hi=60.0)}),
    "vent": Behaviour("the fire is out and the shed aired: gases halve every minute, smoke every 30 s, "
                      "heat fades over minutes", {}),
    **shared_behaviours("a staged fire: 70-80 °C, CO 150-200 ppm, smoke 12-15 %/m for `readings` readings"),
}


def _grow(tau: float, scale: float, tau_s: float, cap: float) -> float:
    if tau <= 0.0:
        return 0.0
    value = scale * (math.exp(min(tau / tau_s, 30.0)) - 1.0)
    return value if value < cap else cap


class BatteryShed(Model):
    """A shed's ceiling sensor: temperature, humidity, CO, H₂, VOC and smoke obscuration."""

    device_type = KIND.device_type
    behaviours = BEHAVIOURS

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        r = self._r
        self._amb = 14.0 + 8.0 * r()
        self._phase = 2.0 * math.pi * r()
        self._hum = 55.0 + 20.0 * r()
        self._t0: float | None = None  # start of the runaway
        self._smoke_s = 480.0
        self._vent_t: float | None = None
        self._at_vent: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)

    def _runaway(self, t: float) -> tuple[float, float, float, float, float]:
        """VOC, H₂, CO (ppm), obscuration (%/m) and heat above ambient (°C) of the running runaway."""
        t0 = self._t0
        if t0 is None:
            return 0.0, 0.0, 0.0, 0.0, 0.0
        tau = t - t0
        smoke_tau = tau - self._smoke_s
        voc = 40.0 * (1.0 - math.exp(-tau / 120.0)) + (_grow(smoke_tau, 20.0, 60.0, 800.0) if smoke_tau > 0 else 0.0)
        h2 = _grow(tau - _H2_START_S, 25.0, _H2_TAU_S, 4000.0)
        co = _grow(tau - _CO_START_S, 15.0, _CO_TAU_S, 2500.0)
        if smoke_tau > 0.0:
            smoke = 30.0 * (1.0 - math.exp(-smoke_tau / 60.0))
            heat = 3.0 + 170.0 * (1.0 - math.exp(-smoke_tau / 200.0))
        else:
            smoke, heat = 0.0, 3.0 * tau / self._smoke_s  # a battery venting warms the shed a little
        return voc, h2, co, smoke, heat

    def _state(self, t: float) -> tuple[float, float, float, float, float]:
        vt = self._vent_t
        if vt is None:
            return self._runaway(t)
        gas = 0.5 ** ((t - vt) / _GAS_HALF_S)
        smoke = 0.5 ** ((t - vt) / _SMOKE_HALF_S)
        heat = math.exp(-(t - vt) / 300.0)
        voc, h2, co, obs, hot = self._at_vent
        return voc * gas, h2 * gas, co * gas, obs * smoke, hot * heat

    def fields(self, t: float) -> dict[str, Any]:
        """The reading's fields (no ts, no seq) at simulated time t; t never goes back."""
        r = self._r
        voc, h2, co, obs, heat = self._state(t)
        amb = self._amb + 5.0 * math.sin(t * DAY_RAD + self._phase)
        if self._incident:
            self._incident -= 1
            heat, co, obs = 70.0 + 10.0 * r() - amb, 150.0 + 50.0 * r(), 12.0 + 3.0 * r()
        # Clean air: a few ppm of CO and H₂ and a fraction of a ppm of VOC, with sensor noise.
        body = {
            "temperature_c": round((amb + heat + 0.3 * (r() + r() - 1.0)) * 10.0) / 10.0,
            "humidity_pct": round(max(5.0, min(100.0, self._hum - heat * 0.8 + 2.0 * (r() - 0.5))) * 10.0) / 10.0,
            "co_ppm": round((1.0 + co + 1.5 * r()) * 10.0) / 10.0,
            "h2_ppm": round((0.5 + h2 + 1.5 * r()) * 10.0) / 10.0,
            "voc_ppm": round((0.2 + voc + 0.2 * r()) * 100.0) / 100.0,
            "obscuration_pct_m": round(obs * 10.0) / 10.0,
        }
        return self._common(t, body)

    def _start(self, behaviour: str, t: float, p: dict[str, Any]) -> None:
        if behaviour == "runaway":
            self._t0, self._smoke_s, self._vent_t = t, p["smoke_min"] * 60.0, None
        elif behaviour == "vent":
            self._at_vent = self._state(t)
            self._t0, self._vent_t = None, t
        else:  # incident
            self._incident = p["readings"]


register_model(BatteryShed, share=0)
