"""Live state of every device the service has heard from, persisted with each committed batch.

What a batch changed is made durable in the batch's own transaction, as a journal entry: one row
holding what the devices were given since the last entry, in order (each valid reading's seq,
times and fields; each online / offline announcement). A restart loads the rows, then gives the
journal's events to the same code again, which brings every device to the state it had. Every
DEVICE_SNAPSHOT_EVERY_NS or DEVICE_SNAPSHOT_AFTER events (ingest.pipeline) the devices changed
since the last snapshot are written to their own rows, in a transaction right after the batch's,
which empties the journal. Upserting every changed device's row with each commit cost ~4 µs of
CPU a reading at 15,000/s (one B-tree update per device per commit);
a journal of each changed device's whole state ~3 µs (the entries of earlier versions, still read
back); the events ~1 µs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from ingest.dedup import DUPLICATE, LATE, NEW, WINDOW, SeqMark, SeqVerdict
from kernel.ids import DeviceType
from kernel.packed import unpacked
from kernel.reading import FieldValue, Reading, StatusUpdate
from kernel.site import Site

DeviceKey = tuple[str, str, str]  # community, device_type, device_id
# What the journal keeps of each thing a device was given, in order (DeviceBook.events): a valid
# reading, a duplicate included, as (key, seq, ts_ns, received_ns, fields); an announcement as (key,
# online, received_ns).
Event = tuple[DeviceKey, int | None, int, int, dict[str, FieldValue]] | tuple[DeviceKey, bool, int]
_READING_EVENT = 5


@dataclass(slots=True)
class DeviceState:
    """What the service knows of one device."""

    community: str
    device_type: str
    device_id: str
    building: str
    grid: str
    mark: SeqMark = field(default_factory=SeqMark)
    last_ts_ns: int | None = None
    last_seen_ns: int | None = None
    last_fields: dict[str, FieldValue] = field(default_factory=dict)
    online: bool | None = None
    status_ns: int | None = None
    readings: int = 0
    duplicates: int = 0
    lost: int = 0

    def row(self) -> tuple[object, ...]:
        """The row StateDB stores."""
        return (self.community, self.device_type, self.device_id, self.mark.high, self.mark.to_bytes(),
                self.mark.high_ts_ns, self.last_ts_ns, self.last_seen_ns, orjson.dumps(self.last_fields),
                None if self.online is None else int(self.online), self.status_ns,
                self.readings, self.duplicates, self.lost)


def _possible(high: int) -> int:
    """The mask of a device whose every seq up to high (within the window) was seen."""
    return (1 << min(high + 1, WINDOW)) - 1 if high >= 0 else 0


class DeviceBook:
    """Device states by key, which changed since the last commit, and which since the last snapshot."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.devices: dict[DeviceKey, DeviceState] = {}
        self.dirty: set[DeviceKey] = set()
        self.unsaved: set[DeviceKey] = set()  # journalled since the last snapshot, not in their rows yet
        self.events: list[Event] = []  # given since the last journal entry, in order
        for entry in site.settings.devices:
            self._get(entry.community, entry.type.value, entry.id)

    def _get(self, community: str, device_type: str, device_id: str) -> DeviceState:
        key = (community, device_type, device_id)
        state = self.devices.get(key)
        if state is None:
            place = self.site.place(community, device_id)
            state = DeviceState(community, device_type, device_id, place.building, place.grid)
            self.devices[key] = state
        return state

    def restore(self, rows: list[tuple[Any, ...]]) -> None:
        """Load the states StateDB kept (columns in the order of DeviceState.row)."""
        for (community, dtype, device_id, high, mask, high_ts, last_ts, last_seen, fields, online,
             status_ns, readings, duplicates, lost) in rows:
            s = self._get(community, dtype, device_id)
            s.mark = SeqMark.restore(high, mask or b"", high_ts)
            s.last_ts_ns, s.last_seen_ns, s.status_ns = last_ts, last_seen, status_ns
            s.last_fields = orjson.loads(fields) if fields else {}
            s.online = None if online is None else bool(online)
            s.readings, s.duplicates, s.lost = readings, duplicates, lost

    def replay(self, entries: list[bytes]) -> None:
        """Apply journal entries (take_journal's), oldest first, over the restored rows. The devices
        they name are saved with the next snapshot, which empties the journal."""
        types: dict[str, DeviceType] = {}
        for body in entries:
            entry = orjson.loads(unpacked(body))
            if isinstance(entry, dict):
                for event in entry["events"]:
                    (community, dtype, device_id), *rest = event
                    kind = types.get(dtype) or types.setdefault(dtype, DeviceType(dtype))
                    if len(event) == _READING_EVENT:
                        seq, ts_ns, received_ns, fields = rest
                        self.observe(Reading(community, kind, device_id, ts_ns, fields, seq, received_ns=received_ns))
                    else:
                        online, received_ns = rest
                        self.status(StatusUpdate(community, kind, device_id, online, received_ns))
                self.events.clear()
            else:
                self._replay_states(entry)
        self.unsaved |= self.dirty
        self.dirty.clear()

    def _replay_states(self, states: list[list[Any]]) -> None:
        """A journal entry of earlier versions: the whole state of each device changed, its seen-mask
        kept as its holes (the seqs of the window up to the newest not seen; an int while it fits a
        JSON integer, else hexadecimal)."""
        for (community, dtype, device_id, high, holes, high_ts, last_ts, last_seen, fields, online,
             status_ns, readings, duplicates, lost) in states:
            s = self._get(community, dtype, device_id)
            missing = holes if isinstance(holes, int) else int(holes, 16)
            s.mark = SeqMark.from_mask(high, _possible(high) ^ missing, high_ts)
            s.last_ts_ns, s.last_seen_ns, s.status_ns = last_ts, last_seen, status_ns
            s.last_fields, s.online = fields, online
            s.readings, s.duplicates, s.lost = readings, duplicates, lost
            self.unsaved.add((community, dtype, device_id))

    def observe(self, reading: Reading) -> tuple[SeqVerdict, int]:
        """Record a valid reading; return its seq verdict and the seqs it skipped."""
        key = (reading.community, reading.device_type.value, reading.device_id)
        state = self.devices.get(key) or self._get(*key)
        verdict, gap = NEW, 0
        if reading.seq is not None:
            device_ts = reading.ts_ns != reading.received_ns
            verdict, gap = state.mark.observe(reading.seq, reading.ts_ns, device_ts)
        state.last_seen_ns = reading.received_ns
        self.dirty.add(key)
        self.events.append((key, reading.seq, reading.ts_ns, reading.received_ns, reading.fields))
        if verdict is DUPLICATE:
            state.duplicates += 1
            return verdict, 0
        state.readings += 1
        state.lost += gap - (verdict is LATE)
        if state.last_ts_ns is None or reading.ts_ns >= state.last_ts_ns:
            state.last_ts_ns = reading.ts_ns
            state.last_fields = reading.fields
        if state.online is not True:
            state.online, state.status_ns = True, reading.received_ns
        return verdict, gap

    def status(self, update: StatusUpdate) -> None:
        """Record an online / offline announcement."""
        key = (update.community, update.device_type.value, update.device_id)
        state = self.devices.get(key) or self._get(*key)
        state.online, state.status_ns = update.online, update.received_ns
        self.dirty.add(key)
        self.events.append((key, update.online, update.received_ns))

    def take_journal(self) -> bytes | None:
        """The journal entry of what the devices were given since the last take (None if nothing)."""
        if not self.events:
            return None
        body = orjson.dumps({"events": self.events})
        self.events = []
        self.unsaved |= self.dirty
        self.dirty.clear()
        return body

    def take_snapshot(self) -> list[tuple[object, ...]]:
        """Rows of every device changed since the last snapshot (which replace the journal)."""
        self.unsaved |= self.dirty
        rows = [self.devices[k].row() for k in self.unsaved]
        self.dirty.clear()
        self.unsaved.clear()
        self.events = []
        return rows
