"""Channels: one module each. A channel sends one notification and says how it went.

Each module registers a factory for its type (the config models are in kernel.channels, where the
site file is validated): `make_channel(config, context)` builds the channel a recipient's entry says.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from kernel.channels import CHANNEL_CONFIGS, ChannelConfig
from kernel.errors import ConfigError
from notify.notification import Notification


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt went: delivered, worth retrying (with the receiver's Retry-After), or refused."""

    ok: bool
    retryable: bool = False
    retry_after_s: float | None = None
    error: str | None = None


class Channel(Protocol):
    """Something that can carry a notification to a recipient."""

    type: str

    async def send(self, n: Notification) -> Outcome: ...


@dataclass(frozen=True, slots=True)
class ChannelContext:
    """What the service lends its channels: one HTTP client, the MQTT prefix and (made on first use)
    its one MQTT publisher."""

    http_client: httpx.AsyncClient
    mqtt_prefix: str
    mqtt_publisher: Callable[[], Any]


Factory = Callable[[Any, ChannelContext], Channel]
FACTORIES: dict[str, Factory] = {}


def register_factory(type_name: str, factory: Factory) -> None:
    """Add the factory of a channel type whose config model kernel.channels registered."""
    if type_name not in CHANNEL_CONFIGS:
        raise ValueError(f"channel type {type_name!r} has no config model in kernel/channels/")
    FACTORIES[type_name] = factory


def make_channel(config: ChannelConfig, context: ChannelContext) -> Channel:
    """The channel one recipient's entry describes."""
    factory = FACTORIES.get(config.type)
    if factory is None:
        raise ConfigError(f"channel type {config.type!r} has no sender in notify/channels/")
    return factory(config, context)


def _load() -> None:
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{module.name}")


_load()
