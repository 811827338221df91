"""The device-type catalog: one module per type in this package, each registering itself.

A type's entry says everything the rest of the service needs: the InfluxDB measurement, the payload
model (fields with units and ranges), how often it reports, the prefix of generated ids, its name and
its fields' names and units in zh-CN and English. The decoder, the rules' field checks, the
simulator, the summaries and the dashboards read it from here. Adding a type is adding a module.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field

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
             zh: str, en: str, fields: dict[str, FieldInfo],
             rule_titles: dict[str, tuple[str, str]] | None = None) -> DeviceKind:
    """Add a device type to the catalog; a catalog module calls this once, at import."""
    payload_fields = set(payload.model_fields) - set(ReadingPayload.model_fields)
    if set(fields) != payload_fields:
        raise ValueError(f"device type {name}: fields {sorted(fields)} do not match its payload's "
                         f"{sorted(payload_fields)}")
    kind = DeviceKind(DeviceType.registered(name), payload, expected_interval_s, id_prefix, zh, en, dict(fields),
                      frozenset(payload.model_fields),  # model_fields is a costly property: read it once
                      dict(rule_titles or {}))
    CATALOG[kind.device_type] = kind
    return kind


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
