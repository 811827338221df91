"""The simulator's leak sensor (水浸传感器) on the floor of a basement, garage, pump room or distribution room.

Dry and cool, reporting its heartbeat at the catalog's interval (hourly). It leaks only when told: a
leak is an alert at once (water.leak), so a model that leaked by itself would put unplanned alerts
into every scenario that plays the site's devices; the demo stages its rare leaks as incidents.
The simulator reports at the heartbeat only, where a real sensor reports a change at once: a
scenario that plays a leak runs fast enough (or names a short `minutes`) to see it."""

from __future__ import annotations

import math
import random
from typing import Any

from device_sim.model import DAY_RAD, Behaviour, Model, minutes_param, shared_behaviours
from device_sim.types import register_model
from kernel.devices.water_leak import KIND

BEHAVIOURS: dict[str, Behaviour] = {
    "leak": Behaviour("water reaches the probes (a burst pipe, a pump's seal, rain under the garage door): leak "
                      "true for `minutes`, or until dry", {"minutes": minutes_param(None, "until dry")}),
    "dry": Behaviour("the water is gone: leak false from now", {}),
    **shared_behaviours("a burst pipe: leak true for `readings` readings, then dry"),
}


class WaterLeak(Model):
    """A battery leak sensor: its probes wet or dry, and the room's temperature (a basement's: cool, steady)."""

    device_type = KIND.device_type
    behaviours = BEHAVIOURS

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        r = self._r
        self._amb = 12.0 + 8.0 * r()
        self._phase = 2.0 * math.pi * r()
        self._wet_until = -math.inf  # the probes are wet before this time (from the leak's start)

    def fields(self, t: float) -> dict[str, Any]:
        """The reading's fields (no ts, no seq) at simulated time t; t never goes back."""
        r = self._r
        if self._incident:
            self._incident -= 1
            wet = True
        else:
            wet = t < self._wet_until
        # Underground rooms follow the day only a little: ±0.8 °C around their own temperature.
        temp = self._amb + 0.8 * math.sin(t * DAY_RAD + self._phase) + 0.1 * (r() + r() - 1.0)
        return self._common(t, {"leak": wet, "temperature_c": round(temp * 10.0) / 10.0})

    def _start(self, behaviour: str, t: float, p: dict[str, Any]) -> None:
        if behaviour == "leak":
            self._wet_until = math.inf if p["minutes"] is None else t + p["minutes"] * 60.0
        elif behaviour == "dry":
            self._wet_until, self._incident = -math.inf, 0
        else:  # incident
            self._incident = p["readings"]


register_model(WaterLeak, share=1, place=5)
