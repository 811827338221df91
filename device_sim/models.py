"""Plausible readings for each device type: quiet, everyday values with noise and slow drift."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from kernel.ids import DeviceType

# How often each type reports when nothing happens (seconds); the offline rule builds on these.
EXPECTED_INTERVAL_S: dict[DeviceType, float] = {
    DeviceType.SMOKE_DETECTOR: 60.0,
    DeviceType.EBIKE_CHARGER: 30.0,
    DeviceType.WATER_LEVEL: 60.0,
    DeviceType.FIRE_LANE: 30.0,
}


@dataclass(slots=True)
class SimDevice:
    """One simulated device and the state its next reading grows from."""

    community: str
    device_type: DeviceType
    device_id: str
    rng: random.Random
    seq: int = 0
    battery: float = 100.0
    state: dict[str, float] = field(default_factory=dict)
    incident: int = 0  # readings left in a staged incident (smoke, water or a blocked lane)

    def reading(self, ts_ms: int) -> dict[str, Any]:
        """The next reading, with its seq and timestamp."""
        rng = self.rng
        self.battery = max(0.0, self.battery - rng.random() * 0.01)
        body: dict[str, Any] = {"ts": ts_ms, "seq": self.seq, "battery_pct": round(self.battery, 1),
                                "rssi_dbm": round(rng.gauss(-70, 5), 1)}
        self.seq += 1
        if self.incident:
            self.incident -= 1
            return body | self._incident(rng)
        if self.device_type is DeviceType.SMOKE_DETECTOR:
            body |= {"obscuration_pct_m": round(abs(rng.gauss(0.2, 0.15)), 2), "alarm": False,
                     "temperature_c": round(rng.gauss(22, 1), 1)}
        elif self.device_type is DeviceType.EBIKE_CHARGER:
            charging = self.state.setdefault("charging", float(rng.random() < 0.5)) > 0
            if rng.random() < 0.01:
                self.state["charging"] = 0.0 if charging else 1.0
            current = max(0.0, rng.gauss(2.2, 0.2)) if charging else 0.0
            voltage = rng.gauss(220, 2)
            body |= {"current_a": round(current, 2), "voltage_v": round(voltage, 1),
                     "power_w": round(current * voltage, 1), "charging": charging,
                     "temperature_c": round(rng.gauss(32 if charging else 24, 1), 1)}
        elif self.device_type is DeviceType.WATER_LEVEL:
            level = self.state.get("level", -30.0) + rng.gauss(0, 0.3)
            self.state["level"] = min(-5.0, max(-60.0, level))
            body |= {"level_cm": round(self.state["level"], 1), "rain_mm_h": 0.0}
        else:
            occupied = rng.random() < 0.05
            body |= {"occupied": occupied, "confidence": round(rng.uniform(0.8, 0.99), 2)}
            if occupied:
                body["object"] = rng.choice(["car", "ebike", "debris"])
        return body

    def _incident(self, rng: random.Random) -> dict[str, Any]:
        """What the device reports while something goes wrong where it is."""
        if self.device_type is DeviceType.SMOKE_DETECTOR:
            return {"obscuration_pct_m": round(rng.uniform(11, 14), 1), "alarm": True,
                    "temperature_c": round(rng.uniform(40, 50), 1)}
        if self.device_type is DeviceType.EBIKE_CHARGER:
            return {"current_a": round(rng.uniform(2, 3), 2), "charging": True, "voltage_v": 220.0,
                    "temperature_c": round(rng.uniform(62, 70), 1)}
        if self.device_type is DeviceType.WATER_LEVEL:
            return {"level_cm": round(rng.uniform(16, 20), 1), "rain_mm_h": 30.0}
        return {"occupied": True, "object": "car", "confidence": 0.95}


# ---- the model interface the fleet, the load generator and the scenarios use ---------------------


class Model:
    """One device's physics: the fields of its next reading at simulated time t (epoch seconds).

    `begin` starts a behaviour (a fire, a charging session, a rain event...) at simulated time t."""

    def __init__(self, device_type: DeviceType, rng: random.Random) -> None:
        self.device_type = device_type
        self.interval_s = EXPECTED_INTERVAL_S[device_type]
        self._sim = SimDevice("-", device_type, "-", rng)

    def fields(self, t: float) -> dict[str, Any]:
        """The reading's fields (no ts, no seq) at simulated time t; t never goes back."""
        body = self._sim.reading(int(t * 1000))
        del body["ts"], body["seq"]
        return body

    def begin(self, behaviour: str, t: float, params: dict[str, Any]) -> None:
        """Start a behaviour; ValueError names an unknown behaviour or a bad parameter."""
        if behaviour != "incident":
            raise ValueError(f"unknown behaviour {behaviour!r} for {self.device_type.value}")
        self._sim.incident = int(params.get("readings", 5))


def make_model(device_type: DeviceType, rng: random.Random) -> Model:
    """The model of one device of this type, drawing its randomness from rng."""
    return Model(device_type, rng)
