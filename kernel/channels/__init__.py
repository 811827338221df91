"""Channel configurations: one module per channel type in this package, each registering its model.

The site file's `channels:` entries are a discriminated union (on `type`) of these models, so
`cbrain config check` names the file, line and key of a webhook without a secret, a robot without
its URL or an unknown type. The code that sends lives in notify.channels, keyed by the same type.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict

from kernel.typed_models import add_model, load_modules, tagged_union


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
    return add_model(CHANNEL_CONFIGS, model, "channel")


load_modules(__path__, __name__)

# The union of every registered model, tagged by `type`; an unknown type is one clear error.
AnyChannel: Any = tagged_union(CHANNEL_CONFIGS, "channel_type")
