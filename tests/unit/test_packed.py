"""Journal entries are stored compressed (kernel.packed) and read back either way."""

from __future__ import annotations

from pathlib import Path

import orjson

from ingest.device_book import DeviceBook
from ingest.statedb import StateDB
from kernel.ids import DeviceType
from kernel.packed import Packed, unpacked
from kernel.reading import Reading
from kernel.settings import Settings
from kernel.site import Site


def test_a_device_journal_entry_is_stored_compressed_and_replays_as_written(tmp_path: Path) -> None:
    site = Site(Settings.model_validate({"communities": [{"id": "c", "name": "c"}]}))
    book = DeviceBook(site)
    for i in range(300):
        book.observe(Reading("c", DeviceType("ebike_charger"), f"eb-{i % 50}", 10**18 + i * 10**6,
                             {"current_a": 2.0, "voltage_v": 220.0, "charging": True}, i // 50 + 1,
                             received_ns=10**18 + i * 10**6 + 3))
    entry = book.take_journal()
    assert entry is not None
    db = StateDB(tmp_path / "state.db")
    db.commit([], [], device_log=entry)
    (stored,) = [bytes(b) for (b,) in db.conn.execute("SELECT body FROM device_journal")]
    assert stored[:1] == b"x" and len(stored) * 5 < len(entry)
    assert db.device_journal() == [stored] and unpacked(stored) == entry

    again = DeviceBook(site)
    again.replay(db.device_journal())
    assert sorted(again.devices.items()) == sorted(book.devices.items()) and len(again.devices) == 50


def test_entries_of_earlier_versions_are_read_as_they_are() -> None:
    old = orjson.dumps([1, [], []])
    assert unpacked(old) is old
    assert unpacked(Packed(old).__conform__(object)) == old  # type: ignore[arg-type]
