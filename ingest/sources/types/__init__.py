"""The source types: one module each, registering its adapter with ingest.sources.register."""

from __future__ import annotations

import importlib
import pkgutil


def _load() -> None:
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{module.name}")


_load()
