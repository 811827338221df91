"""What a simulator model is: the base of every device type's physics, its behaviours and their parameters.

A model is a small state machine driven by the caller's simulated clock: `fields(t)` gives the reading
at time t (t never goes back), `begin(behaviour, t, params)` starts a fire, a charging session, a rain
shower, a parked car... All randomness comes from the rng the model was made with, so the same seed and
the same calls give the same readings. `fields` is on the load generator's hot path (20,000 calls per
second): it does a few float operations and at most a few `exp`/`sin` calls, and rounds by
`round(x * 10) / 10` (a third of the cost of `round(x, 1)`).

Each device type's model is one module of `device_sim/types/`, which registers it there.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, ClassVar

from kernel.devices import CATALOG
from kernel.ids import DeviceType

# How often each type reports when nothing happens (seconds), from the catalog; the offline rule
# builds on the same figures.
EXPECTED_INTERVAL_S: dict[DeviceType, float] = {t: k.expected_interval_s for t, k in CATALOG.items()}

DAY_S = 86_400.0
MONTH_S = 30 * DAY_S
DAY_RAD = 2.0 * math.pi / DAY_S  # radians per second of a daily cycle
STEP_S = 60.0  # the longest step of a model that integrates its state over time


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



def minutes_param(default: float | None, none_means: str = "") -> Param:
    """A duration in minutes, above 0 and at most a day."""
    return Param("number", default, lo=0.0, hi=1440.0, lo_open=True, none_means=none_means)


def switch_params() -> dict[str, Param]:
    """The parameters of a behaviour switched on and off: `on`, true unless given."""
    return {"on": Param("bool", True)}


def shared_behaviours(incident: str, *, flags_stored: bool = False) -> dict[str, Behaviour]:
    """The behaviours every type has: fault, tamper, battery and a staged incident (described by `incident`)."""
    # docs/devices.md lists fault and tamper for smoke detectors only: the service ignores (and
    # counts) them from other types, so their help says so.
    note = "" if flags_stored else " (not a field of this type in the contract: the service ignores it)"
    return {
        "fault": Behaviour(f"the device reports a fault until begun again with on=false{note}", switch_params()),
        "tamper": Behaviour(f"the device reports tampering until begun again with on=false{note}", switch_params()),
        "battery": Behaviour("the battery jumps to pct, then keeps draining",
                             {"pct": Param("number", lo=0.0, hi=100.0, required=True)}),
        "incident": Behaviour(incident, {"readings": Param("int", 5, lo=1.0, hi=10_000.0)}),
    }


def check_params(device_type: DeviceType, specs: dict[str, Behaviour], behaviour: str,
                 params: dict[str, Any]) -> dict[str, Any]:
    """The behaviour's parameters (of `specs`, the type's behaviours) with defaults filled in; ValueError
    (one line) on anything not allowed."""
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


# ---- the model ------------------------------------------------------------------------------------


class Model:
    """One device's physics: the fields of its reading at simulated time t (epoch seconds).

    `begin` starts a behaviour (a fire, a charging session, a rain shower...) at simulated time t. A
    subclass names its `device_type` and its `behaviours`."""

    device_type: ClassVar[DeviceType]
    behaviours: ClassVar[dict[str, Behaviour]]
    interval_s: float

    def __init__(self, rng: random.Random) -> None:
        self.interval_s = EXPECTED_INTERVAL_S[self.device_type]
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
        p = check_params(self.device_type, self.behaviours, behaviour, params)
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
        """Add the fields every type carries (battery, signal, reported flags) to a reading's body."""
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

