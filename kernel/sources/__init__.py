"""Source configurations: one module per source type in this package, each registering its model.

A source (docs/devices.md, "Connecting the devices you have") is a system devices already report
through: a Zigbee2MQTT hub, a ChirpStack network server, Tasmota or Shelly firmware on the
service's broker, or a carrier platform (CTWing, OneNET) that pushes over HTTP. The site file's
`sources:` entries are a discriminated union (on `type`) of these models, so `cbrain config check`
names the file, line and key of a push source without its token or an unknown type. The code that
reads a source's messages lives in ingest.sources, keyed by the same type.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from kernel.ids import Identifier
from kernel.typed_models import add_model, load_modules, tagged_union


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not a time zone (e.g. Asia/Shanghai)") from None
    return value


TimeZone = Annotated[str, AfterValidator(_zone)]


class SourceConfig(BaseModel):
    """Keys every source has; each type's model adds its own (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # How its messages arrive: "mqtt" (on the service's broker) or "http" (pushed to the service).
    transport: ClassVar[str] = "mqtt"
    # Whether its devices' `port:` picks one of several channels of one address (a power strip).
    has_ports: ClassVar[bool] = False
    # How often its devices report when nothing happens, unless the site file says: None is their
    # type's interval (devices on mains that report every TelePeriod); battery devices behind a hub
    # or a carrier report on change and with a heartbeat hours apart.
    default_interval_s: ClassVar[float | None] = None

    id: Identifier
    type: str
    # The profile that maps its messages to readings (a device's own `profile:` overrides it).
    profile: Identifier | None = None
    # The community its devices are in, when one hub serves one community: the community's people
    # then see the devices it reports that nobody has registered yet.
    community: Identifier | None = None
    # The time zone of the source's local times (Tasmota's `Time`); none means the site's `timezone`.
    timezone: TimeZone | None = None
    # Its devices' heartbeat: how often they report when nothing happens (device.offline after
    # `after_intervals` of these); a device's own `expected_interval_s` overrides it.
    expected_interval_s: float | None = Field(default=None, gt=0)

    def interval_s(self) -> float | None:
        """Its devices' expected interval (seconds), or None: their type's."""
        return self.expected_interval_s or self.default_interval_s


class PushSourceConfig(SourceConfig):
    """A platform that pushes to the service over HTTP, proving itself with a shared token."""

    transport: ClassVar[str] = "http"
    token: str = Field(min_length=8, max_length=256)


SOURCE_CONFIGS: dict[str, type[SourceConfig]] = {}
Config = TypeVar("Config", bound=SourceConfig)


def register(model: type[Config]) -> type[Config]:
    """Class decorator: add a source type's config model (its `type: Literal["name"]` names it)."""
    return add_model(SOURCE_CONFIGS, model, "source")


load_modules(__path__, __name__)

# The union of every registered model, tagged by `type`; an unknown type is one clear error.
AnySource: Any = tagged_union(SOURCE_CONFIGS, "source_type")
