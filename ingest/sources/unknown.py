"""Devices that report through a source but are not registered: found, not dropped.

Each (source, address) heard from without a device of that source is remembered with when it was
first and last heard, how often, and the start of its latest message, so that an installer can
copy its `devices:` line from the pages (`/devices/unregistered`) or `/api/v1/unregistered`."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

# At most this many addresses are remembered (a flood of made-up ones forgets the oldest).
LIMIT = 1000


@dataclass(slots=True)
class Unregistered:
    """An address heard from that no device of its source has."""

    source: str
    source_type: str
    address: str
    port: int | None  # the channel of a multi-channel address (a Shelly's switch), if the message names one
    community: str | None  # the source's community, if it names one
    device_type: str | None  # what the source's profile makes, if it has one
    first_seen_ns: int
    last_seen_ns: int
    messages: int
    sample: str


class UnknownDevices:
    """The unregistered addresses heard from, the most recently heard last."""

    def __init__(self, limit: int = LIMIT) -> None:
        self._items: OrderedDict[tuple[str, str, int | None], Unregistered] = OrderedDict()
        self._limit = limit

    def heard(self, found: Unregistered) -> None:
        """One more message from an unregistered address."""
        key = (found.source, found.address, found.port)
        known = self._items.pop(key, None)
        if known is not None:
            known.last_seen_ns, known.sample = found.last_seen_ns, found.sample
            known.messages += 1
            found = known
        self._items[key] = found
        while len(self._items) > self._limit:
            self._items.popitem(last=False)

    def latest(self) -> list[Unregistered]:
        """Every unregistered address, the most recently heard first."""
        return list(reversed(self._items.values()))
