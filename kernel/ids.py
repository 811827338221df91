"""Identifiers and device types (docs/devices.md)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, StringConstraints
from pydantic_core import core_schema

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
ID_RE = re.compile(ID_PATTERN)

Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]


def stable_id(*parts: object) -> str:
    """An id made from what it names, so that doing the same thing again (a partition's readings read
    again by its next holder in the cluster) makes the same id, which receivers deduplicate."""
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:32]

UNKNOWN = "unknown"

# name -> the one DeviceType object of that name; filled by kernel.devices as its modules register
# (the kernel package loads the catalog before any module of ours can name a type).
_KNOWN: dict[str, DeviceType] = {}


class _DeviceTypeMeta(type):
    """Lets `DeviceType.SMOKE_DETECTOR` name a registered type and `for t in DeviceType` list them."""

    def __getattr__(cls, name: str) -> DeviceType:
        found = _KNOWN.get(name.lower()) if name.isupper() else None
        if found is None:
            raise AttributeError(name)
        return found

    def __iter__(cls) -> Iterator[DeviceType]:
        return iter(list(_KNOWN.values()))

    def __len__(cls) -> int:
        return len(_KNOWN)


class DeviceType(str, metaclass=_DeviceTypeMeta):
    """A device type in the catalog (kernel.devices); the name is also the InfluxDB measurement.

    A str, so it compares, hashes and formats as its name; `DeviceType("x")` raises ValueError for a
    type that no catalog module registered."""

    # The plain name, as an enum's value would be: a plain str made once (a fresh copy would be hashed
    # afresh in every dict key it goes into), kept on the instance (no __slots__): a look-up in a
    # dict per use cost ~120 ns more, and the ingest path reads it a few times a reading.
    value: str

    def __new__(cls, value: object) -> DeviceType:
        """The registered type of this name; ValueError names the known ones otherwise."""
        if isinstance(value, DeviceType):
            return value
        found = _KNOWN.get(value) if isinstance(value, str) else None
        if found is None:
            raise ValueError(f"{value!r} is not a device type; known: {', '.join(sorted(_KNOWN))}")
        return found

    def __repr__(self) -> str:
        return f"DeviceType({self.value!r})"

    @classmethod
    def registered(cls, name: str) -> DeviceType:
        """Register a new type name (kernel.devices does this); the same name twice is an error."""
        if name in _KNOWN or not is_identifier(name):
            raise ValueError(f"device type {name!r} is already registered or not an identifier")
        obj = str.__new__(cls, name)
        obj.value = name
        _KNOWN[name] = obj
        return obj

    @classmethod
    def lookup(cls, name: str) -> DeviceType | None:
        """The registered type of this name, or None (cheap: one dict look-up)."""
        return _KNOWN.get(name)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            cls, core_schema.str_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(str.__str__))


def device_types() -> frozenset[str]:
    """The names of every registered device type."""
    return frozenset(_KNOWN)


def is_identifier(value: str) -> bool:
    """True when value is a valid community, device, grid or building id."""
    return ID_RE.match(value) is not None and not value.endswith("\n")
