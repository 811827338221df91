"""The device-type catalog: one module per type in this package, each registering itself.

A type's entry says everything the rest of the service needs: the InfluxDB measurement, the payload
model (fields with units and ranges), how often it reports, the prefix of generated ids, its name and
its fields' names and units in zh-CN and English, and which of its fields the dashboards plot. The
decoder, the rules' field checks, the simulator, the summaries and the dashboards read it from here.
Adding a type is adding a module.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field

from kernel.alerting import Level
from kernel.ids import DeviceType
from kernel.reading import ReadingPayload


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """What one reading field is, for people: its name in both languages and its unit ("" if none)."""

    zh: str
    en: str
    unit: str = ""

    def name(self, locale: str) -> str:
        """The field's name in the locale (zh-CN unless "en")."""
        return self.en if locale == "en" else self.zh


# How a plot sums up a field's readings over a time bucket (InfluxQL): numbers by their mean or
# highest value, a flag (a boolean) or a word by its last value.
AGGREGATES = ("mean", "max", "last")


@dataclass(frozen=True, slots=True)
class Plot:
    """A field of a type's readings that the dashboards draw (docs/dashboards.md): one line per device on
    the community's dashboard, and with `wall` the highest per community on the street office's wall.

    Its title and unit come from the field's FieldInfo. `bands` colour a number from a value up in a
    level's colour (the built-in rules' default thresholds, so the panel says what the rules would);
    `states` name a flag's or word's values, each with a level's colour or none."""

    field: str
    aggregate: str = "mean"
    bands: tuple[tuple[float, Level], ...] = ()
    states: tuple[tuple[str, str, str, Level | None], ...] = ()  # (value, zh-CN, English, level or None)
    wall: bool = False


# Fields every type may carry (docs/devices.md).
COMMON_FIELDS: dict[str, FieldInfo] = {
    "battery_pct": FieldInfo("电量", "battery", "%"),
    "rssi_dbm": FieldInfo("信号强度", "signal strength", "dBm"),
}


@dataclass(frozen=True, slots=True)
class DeviceKind:
    """One device type's catalog entry."""

    device_type: DeviceType
    payload: type[ReadingPayload]
    expected_interval_s: float
    id_prefix: str
    zh: str
    en: str
    fields: dict[str, FieldInfo]
    declared: frozenset[str] = field(default=frozenset())
    # What each built-in rule about this type is called in a summary: rule id → (zh-CN, English).
    rule_titles: dict[str, tuple[str, str]] = field(default_factory=dict)
    # What the dashboards draw of its readings, in this order.
    plots: tuple[Plot, ...] = ()
    # Sums over each community's online devices of the type, written with the community's summary for
    # the wall (docs/storage.md, `community_summary`): summary field → the readings' field summed.
    community_sums: dict[str, str] = field(default_factory=dict)

    @property
    def measurement(self) -> str:
        """The InfluxDB measurement its readings are stored in (docs/storage.md)."""
        return self.device_type.value

    def name(self, locale: str) -> str:
        """The type's name in the locale (zh-CN unless "en")."""
        return self.en if locale == "en" else self.zh

    def field_info(self, name: str) -> FieldInfo | None:
        """What a field of this type (or a common one) is, or None."""
        return self.fields.get(name) or COMMON_FIELDS.get(name)


CATALOG: dict[DeviceType, DeviceKind] = {}


def register(name: str, payload: type[ReadingPayload], *, expected_interval_s: float, id_prefix: str,
             zh: str, en: str, fields: dict[str, FieldInfo], plots: tuple[Plot, ...],
             rule_titles: dict[str, tuple[str, str]] | None = None,
             community_sums: dict[str, str] | None = None) -> DeviceKind:
    """Add a device type to the catalog; a catalog module calls this once, at import."""
    payload_fields = set(payload.model_fields) - set(ReadingPayload.model_fields)
    if set(fields) != payload_fields:
        raise ValueError(f"device type {name}: fields {sorted(fields)} do not match its payload's "
                         f"{sorted(payload_fields)}")
    _check_plots(name, plots, fields)
    for summed in (community_sums or {}).values():
        if summed not in fields:
            raise ValueError(f"device type {name}: community sum of unknown field {summed!r}")
    kind = DeviceKind(DeviceType.registered(name), payload, expected_interval_s, id_prefix, zh, en, dict(fields),
                      frozenset(payload.model_fields),  # model_fields is a costly property: read it once
                      dict(rule_titles or {}), tuple(plots), dict(community_sums or {}))
    CATALOG[kind.device_type] = kind
    return kind


def _check_plots(name: str, plots: tuple[Plot, ...], fields: dict[str, FieldInfo]) -> None:
    """Every type shows on the dashboards: at least one plot, each of a field of its own."""
    if not plots:
        raise ValueError(f"device type {name}: no plots (the dashboards would not show it)")
    for plot in plots:
        if plot.field not in fields:
            raise ValueError(f"device type {name}: plot of unknown field {plot.field!r}")
        if plot.aggregate not in AGGREGATES:
            raise ValueError(f"device type {name}: plot of {plot.field} sums up by {plot.aggregate!r}, "
                             f"not one of {', '.join(AGGREGATES)}")
        if plot.states and (plot.bands or plot.aggregate != "last"):
            raise ValueError(f"device type {name}: plot of {plot.field} names states: it takes the last "
                             f"value and has no bands")
        if plot.wall and plot.aggregate == "last":
            raise ValueError(f"device type {name}: plot of {plot.field} on the wall needs a number's highest")


def device_kind(device_type: str) -> DeviceKind:
    """The catalog entry of a registered type (KeyError otherwise)."""
    return CATALOG[DeviceType(device_type)]


def field_info(device_type: str, name: str) -> FieldInfo | None:
    """What a field of a type is (name in both languages, unit), or None when the type or field is unknown."""
    found = DeviceType.lookup(device_type)
    kind = CATALOG.get(found) if found is not None else None
    return kind.field_info(name) if kind is not None else COMMON_FIELDS.get(name)


def _load_catalog() -> None:
    # Every module of this package is one device type; sorted, so the catalog's order is stable.
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{module.name}")


_load_catalog()
