"""The simulator's models, one module per device type in this package, each registering itself.

A type's module defines its `Model` subclass (device_sim.model) with its behaviours and calls
`register_model` once, at import; every type of the device catalog (kernel.devices) must have one.
Adding a device type adds a module here, named as the type.
"""

from __future__ import annotations

import importlib
import pkgutil
import random

from device_sim.model import Model
from kernel.devices import CATALOG
from kernel.ids import DeviceType

# The registry: per type, its model class, and its share of a generated site and place in its mix.
_MODELS: dict[DeviceType, type[Model]] = {}
_SHARES: dict[DeviceType, tuple[int, int]] = {}
# Per type, behaviour name -> one line: what it does, its parameters and their defaults.
BEHAVIOURS: dict[DeviceType, dict[str, str]] = {}


def register_model(model: type[Model], *, share: int, place: int = 100) -> None:
    """Add a type's simulator model; `share` is how many of every 10 generated devices are of it, `place`
    where they come in the repeating mix (lower first; ties by type name)."""
    device_type = model.device_type
    _MODELS[device_type] = model
    _SHARES[device_type] = (share, place)
    BEHAVIOURS[device_type] = {name: b.describe() for name, b in model.behaviours.items()}


def device_mix() -> list[DeviceType]:
    """The types of a generated site's devices, in the order they repeat (each type `share` times)."""
    order = sorted(_SHARES, key=lambda t: (_SHARES[t][1], t.value))
    return [t for t in order for _ in range(_SHARES[t][0])]


def make_model(device_type: DeviceType, rng: random.Random) -> Model:
    """The model of one device of this type, drawing its randomness from rng."""
    return _MODELS[device_type](rng)


def _load_models() -> None:
    # Every module of this package is one type's model; sorted, so the registry's order is stable.
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{module.name}")
    missing = set(CATALOG) - set(_MODELS)
    if missing:
        raise RuntimeError(f"no simulator model for device type(s) {', '.join(sorted(missing))}")


_load_models()
