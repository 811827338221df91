"""Sources: devices that report through other systems (docs/devices.md, "Connecting the devices you have").

One module per source type registers its adapter: which topics it reads on the service's broker
(or, for a platform that pushes over HTTP, how a push proves itself), and how one of its messages
becomes `Message`s: an address, the body a profile's paths read, and the envelope's time, counter,
availability and identity. `reader.SourceReader` routes a message to its adapter, finds the
registered device of each address, maps the body through the device's profile (`mapping.py`), or
the adapter's own mapping when it has none, and hands the reading to the decoder's validation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from kernel.sources import SourceConfig


@dataclass(slots=True)
class Message:
    """What one message of a source says about one of its addresses."""

    address: str
    # What a profile's paths read: the message as the source received it (parsed).
    body: Any = None
    ts: int | str | None = None  # epoch milliseconds or RFC 3339; None: the time of receipt
    seq: int | None = None
    rssi_dbm: float | None = None
    online: bool | None = None  # an availability message: the devices' status, not a reading
    port: int | None = None  # the one port (from 1) the message is about; None: every port of the address
    dedup: str | None = None  # the source's own identity of the message (a repeat is a duplicate)


class SourceFormatError(ValueError):
    """A message that breaks its source's format; `reason` is a stable code, the message says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class Adapter:
    """One source: its topics and how its messages read. Subclasses set `type` and override `read`."""

    type: ClassVar[str] = ""

    def __init__(self, config: SourceConfig, *, timezone: str, addresses: list[str]) -> None:
        self.config = config
        self.timezone = config.timezone or timezone
        self.addresses = addresses  # the registered devices' addresses (a source without wildcards subscribes to each)

    def subscriptions(self) -> list[str]:
        """The MQTT topic filters its messages arrive on ([] for a push source)."""
        return []

    def owns(self, topic: str) -> bool:
        """Whether a topic is this source's."""
        return False

    def topic_trees(self) -> tuple[str, ...]:
        """The topic trees the source's hub or devices publish and read their commands in (their
        broker account's, `cbrain mqtt provision`)."""
        return ()

    def read(self, topic: str, payload: bytes) -> list[Message]:
        """The messages a delivery carries; [] for one that is not a reading (a command, a bridge log).
        SourceFormatError when it breaks the source's format."""
        raise NotImplementedError

    def fields(self, body: Any, port: int | None) -> dict[str, Any]:
        """A reading's fields (section 1 names) from a body, for a device without a profile."""
        raise SourceFormatError("no_profile", f"a {self.type} message needs a profile to become a reading")

    @staticmethod
    def key(address: str) -> str:
        """An address as devices are looked up by (ChirpStack: a DevEUI in any case)."""
        return address


ADAPTERS: dict[str, type[Adapter]] = {}


def register(adapter: type[Adapter]) -> type[Adapter]:
    """Class decorator: add a source type's adapter (its `type` names it, as in kernel.sources)."""
    if not adapter.type or adapter.type in ADAPTERS:
        raise ValueError(f"source adapter {adapter.__name__} needs a unique `type`")
    ADAPTERS[adapter.type] = adapter
    return adapter


def pick(values: dict[str, Any], table: dict[str, tuple[str, Callable[[Any], Any] | None]],
         port: int | None) -> dict[str, Any]:
    """Section-1 fields from a flat body by a table (key → field, conversion): a list value is one
    per port (port N takes the N-th element, from 1); None and absent keys are left out."""
    out: dict[str, Any] = {}
    for key, (name, convert) in table.items():
        value = values.get(key)
        if isinstance(value, list):
            index = (port or 1) - 1
            value = value[index] if 0 <= index < len(value) else None
        if value is None:
            continue
        out[name] = convert(value) if convert is not None and _number(value) else value
    return out


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def kwh_to_wh(value: float) -> float:
    """Energy as the sources count it (kWh) in the contract's unit (Wh)."""
    return round(value * 1000.0, 6)
