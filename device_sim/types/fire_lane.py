"""The simulator's fire-lane camera (消防通道): brief stops now and then, a car parked in the lane."""

from __future__ import annotations

import math
import random
from typing import Any

from device_sim.model import Behaviour, Model, Param, minutes_param, shared_behaviours
from device_sim.types import register_model
from kernel.devices.fire_lane import KIND

LANE_OBJECTS = ("car", "ebike", "debris", "other", "unknown")
_STOP_EVERY_S = 2 * 3600.0
_STOP_GAP_S = 120.0  # at least this between two brief stops, so that a reading sees the lane empty

BEHAVIOURS: dict[str, Behaviour] = {
    "park": Behaviour("something stops in the lane: occupied true with `object`, confidence 0.8-0.99",
                      {"object": Param("choice", "car", choices=LANE_OBJECTS),
                       "minutes": minutes_param(None, "until leave")}),
    "leave": Behaviour("the lane is empty again", {}),
    **shared_behaviours("a car parks in the lane for 6 minutes (or `readings` readings if longer)"),
}


class FireLane(Model):
    """A camera watching a fire lane: occupied or not, what stands there, how sure it is."""

    device_type = KIND.device_type
    behaviours = BEHAVIOURS

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
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


register_model(FireLane, share=1, place=4)
