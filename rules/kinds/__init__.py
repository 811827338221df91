"""Rule kinds: one module per kind in this package, each registering its entry.

An entry is the kind's whole contract with the rest of the rules package:

- `spec`: its pydantic model (a rules.model.RuleBase with `kind: Literal["name"]`), which also says
  which other rules it refers to (`references()`, checked to exist), which reading fields it
  reads (`fields()`, checked against its device types) and how the engine wires it to other rules
  (`per_device()`, `follows()`, `grouped_by()`, `while_rules()`, `relative_to()`);
- `machine`: the factory of its state machine, `(spec, device_type, setting) -> Machine`
  (rules.machine: a machine overrides the hooks of `Hooks` it reacts to).

rules.spec builds the rules file's `rules:` union from these entries; the engine builds each
rule's machines through them. A new kind is a new module here and nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import get_args

from rules.machine import MachineFactory
from rules.model import RuleBase


@dataclass(frozen=True, slots=True)
class RuleKind:
    """One kind of rule: its spec model and its machine factory."""

    name: str
    spec: type[RuleBase]
    machine: MachineFactory


KINDS: dict[str, RuleKind] = {}


def register(spec: type[RuleBase], machine: MachineFactory) -> RuleKind:
    """Add a kind; its name is the default of the model's `kind` (`kind: Literal["name"]`)."""
    field = spec.model_fields.get("kind")
    names = get_args(field.annotation) if field is not None else ()
    name = names[0] if len(names) == 1 else None
    if not isinstance(name, str) or name in KINDS:
        raise ValueError(f"rule kind {spec.__name__} needs a unique `kind: Literal[...]`")
    KINDS[name] = kind = RuleKind(name, spec, machine)
    return kind


def kind_of(spec: RuleBase) -> RuleKind:
    """The entry of a rule's kind."""
    return KINDS[getattr(spec, "kind")]  # noqa: B009  (every registered model has `kind`)


def _load() -> None:
    # The state kind first: it is the default and comes first in error messages.
    names = sorted((m.name for m in pkgutil.iter_modules(__path__)), key=lambda n: (n != "state", n))
    for name in names:
        importlib.import_module(f"{__name__}.{name}")


_load()
