"""Catalogs of configuration models told apart by their `type` (channels, sources): one module per
type registers its model; the site file's entries are their union, discriminated on `type`, so an
unknown type or a key of the wrong type is one clear, located error."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from functools import reduce
from operator import or_
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Discriminator, Tag

Model = TypeVar("Model", bound=BaseModel)


def add_model(table: dict[str, type[Any]], model: type[Model], what: str) -> type[Model]:
    """Register a model under its `type: Literal["name"]` default (ValueError when missing or taken)."""
    name = model.model_fields["type"].default
    if not isinstance(name, str) or name in table:
        raise ValueError(f"{what} config {model.__name__} needs a unique default for `type`")
    table[name] = model
    return model


def load_modules(path: Iterable[str], package: str) -> None:
    """Import every module of a package (each registers its type), in name order."""
    for module in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        importlib.import_module(f"{package}.{module.name}")


def tagged_union(table: dict[str, type[Any]], error_type: str) -> Any:
    """The union of every registered model, tagged by `type`; an unknown type is one clear error."""
    def tag(value: Any) -> str | None:
        raw = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
        return raw if isinstance(raw, str) and raw in table else None

    return Annotated[
        reduce(or_, (Annotated[model, Tag(name)] for name, model in sorted(table.items()))),
        Discriminator(tag, custom_error_type=error_type,
                      custom_error_message=f"type is one of {', '.join(sorted(table))}"),
    ]
