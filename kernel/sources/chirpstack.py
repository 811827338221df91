"""ChirpStack v4: a LoRaWAN network server's MQTT integration (`application/{id}/device/{dev_eui}/event/up`)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from kernel.sources import SourceConfig, register


@register
class ChirpStackConfig(SourceConfig):
    """`application_id`: the ChirpStack application whose uplinks are read (none: every application);
    `topic_prefix`: the integration's event topic prefix (ChirpStack's `event_topic` starts with
    `application` unless changed in chirpstack.toml)."""

    # Its devices' expected interval unless the site file gives one:
    # LoRaWAN sensors send a heartbeat every 20 min to a few hours.
    default_interval_s: ClassVar[float | None] = 3600.0
    type: Literal["chirpstack"] = "chirpstack"
    application_id: str | None = Field(default=None, pattern=r"^[0-9A-Za-z-]{1,64}$")
    topic_prefix: str = Field(default="application", pattern=r"^[^#+]+$")
