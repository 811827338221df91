"""Channel configurations: one module per channel type in this package, each registering its model.

The site file's `channels:` entries are a discriminated union (on `type`) of these models, so
`cbrain config check` names the file, line and key of a webhook without a secret, a robot without
its URL or an unknown type. The code that sends lives in notify.channels, keyed by the same type.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import reduce
from operator import or_
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Tag


class ChannelConfig(BaseModel):
    """Keys every channel has; each type's model adds its own (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018  (a bad port raises here)
    except ValueError:
        raise ValueError(f"{value!r} has a bad port") from None
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]

CHANNEL_CONFIGS: dict[str, type[ChannelConfig]] = {}
Config = TypeVar("Config", bound=ChannelConfig)


def register(model: type[Config]) -> type[Config]:
    """Class decorator: add a channel type's config model (its `type: Literal["name"]` names it)."""
    name = model.model_fields["type"].default
    if not isinstance(name, str) or name in CHANNEL_CONFIGS:
        raise ValueError(f"channel config {model.__name__} needs a unique default for `type`")
    CHANNEL_CONFIGS[name] = model
    return model


def _load() -> None:
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{module.name}")


_load()


def _tag(value: Any) -> str | None:
    raw = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return raw if isinstance(raw, str) and raw in CHANNEL_CONFIGS else None


# The union of every registered model, tagged by `type`; an unknown type is one clear error.
AnyChannel: Any = Annotated[
    reduce(or_, (Annotated[model, Tag(name)] for name, model in sorted(CHANNEL_CONFIGS.items()))),
    Discriminator(_tag, custom_error_type="channel_type",
                  custom_error_message=f"type is one of {', '.join(sorted(CHANNEL_CONFIGS))}"),
]
