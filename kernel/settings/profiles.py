"""Profiles: how a payload without a standard shape becomes a reading (docs/devices.md, "Profiles").

A profile names a device type and, for each field of a reading, where to find it in the message as
its source receives it (a JMESPath expression) and how to turn what is found into the field's value
(`map`, `default`, `scale`, `offset`). Its `examples` are messages and the readings they must give,
run by `cbrain profiles test`. A profile may name a vendor's JavaScript codec (`codec:`) that turns
a LoRaWAN uplink's bytes into the object the paths read.
"""

from __future__ import annotations

from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from kernel.devices import CATALOG
from kernel.ids import DeviceType, Identifier
from kernel.reading import ReadingPayload
from kernel.settings.base import _Model

# A value read from a message, or a field's value: what JSON holds.
Plain = str | int | float | bool | None
# Fields every reading may carry besides its type's measured ones (section 1 of the contract).
META_FIELDS = frozenset(ReadingPayload.model_fields)


def as_text(value: Any) -> str:
    """A value found in a message as `map` compares it: JSON's spelling, integral numbers without `.0`."""
    if value is True or value is False:
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class FieldMap(_Model):
    """Where one field of the reading is found, and how its value is made."""

    path: str = Field(min_length=1)
    # The value found (compared as text) → the field's value; a value not in it takes `default`.
    map: dict[str, Plain] | None = None
    default: Plain = None
    # value × scale + offset; either may name a variable of the device (its `vars:`), e.g. a
    # distance sensor's mounting height.
    scale: float | str | None = None
    offset: float | str | None = None

    @field_validator("path")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            jmespath.compile(value)
        except JMESPathError as exc:
            first = str(exc).splitlines()[0]
            raise ValueError(f"not a JMESPath expression: {first}") from None
        return value

    @field_validator("map", mode="before")
    @classmethod
    def _keys_as_text(cls, value: Any) -> Any:
        # YAML reads `1: true` with an integer key; the table compares the found value as text.
        if isinstance(value, dict):
            return {as_text(k): v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _default_with_map(self) -> FieldMap:
        if self.default is not None and self.map is None:
            raise ValueError("default is what a value not in map becomes: give map too, or leave default out")
        return self

    def variables(self) -> set[str]:
        """The device variables this field needs."""
        return {v for v in (self.scale, self.offset) if isinstance(v, str)}


class ProfileExample(_Model):
    """A message as the source receives it and the reading it must give (`cbrain profiles test`)."""

    name: str | None = None
    input: dict[str, Any] | str
    # The device's variables for this example (`vars:` of a registered device).
    vars: dict[str, float | str] = {}
    # What the message must give: a reading, or its rejection's reason (e.g. missing_field).
    reading: dict[str, Any] | None = None
    rejected: str | None = None

    @model_validator(mode="after")
    def _one_outcome(self) -> ProfileExample:
        if (self.reading is None) == (self.rejected is None):
            raise ValueError("an example gives either a reading or rejected: <reason>")
        return self


class Profile(_Model):
    """One profile: a device type and its fields' mappings."""

    id: Identifier
    device_type: DeviceType
    fields: dict[str, FieldMap] = Field(min_length=1)
    # A vendor codec (JavaScript, ChirpStack's `decodeUplink`), relative to the file the profile is in;
    # for a ChirpStack source it decodes the uplink's `data` into `object` before the paths are read.
    codec: str | None = Field(default=None, min_length=1)
    examples: list[ProfileExample] = []
    description: str | None = None

    @model_validator(mode="after")
    def _fields_of_type(self) -> Profile:
        kind = CATALOG[self.device_type]
        allowed = kind.declared | META_FIELDS
        for name in self.fields:
            if name not in allowed:
                # (its context names the key, so the error's line is the field's: kernel.settings.parsing)
                raise PydanticCustomError(
                    "unknown_field", "'{field}' is not a field of {device_type} (its fields: {known}, and ts, seq)",
                    {"field": name, "device_type": self.device_type.value,
                     "known": ", ".join(sorted(allowed - {"ts", "seq"}))})
        return self

    def variables(self) -> set[str]:
        """The device variables the profile needs."""
        return {v for f in self.fields.values() for v in f.variables()}


def with_codec_path(profile: Profile, base_dir: str | None) -> Profile:
    """The profile with its codec's path made absolute against the directory of the file it is in."""
    if profile.codec is None or base_dir is None or profile.codec.startswith("/"):
        return profile
    return profile.model_copy(update={"codec": f"{base_dir.rstrip('/')}/{profile.codec}"})
