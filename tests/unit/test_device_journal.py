"""The device journal: rows plus journal entries, applied in order, give back every device's state,
the entries of earlier versions (each changed device's whole state) included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.dedup import WINDOW
from ingest.device_book import DeviceBook, DeviceState, _possible
from ingest.statedb import StateDB
from kernel.ids import DeviceType
from kernel.reading import Reading, StatusUpdate
from kernel.settings import Settings
from kernel.site import Site

SITE = Site(Settings.model_validate({"communities": [{"id": "c", "name": "c"}]}))


def state_of(s: DeviceState) -> tuple[Any, ...]:
    return (s.mark.high, s.mark.mask, s.mark.high_ts_ns, s.last_ts_ns, s.last_seen_ns, s.last_fields, s.online,
            s.status_ns, s.readings, s.duplicates, s.lost)


def earlier_entry(book: DeviceBook) -> bytes | None:
    """The journal entry an earlier version made of the same changes: the whole state of every device
    changed, the seen-mask as its holes (an int while it fits a JSON integer, else hexadecimal)."""
    body = None
    if book.dirty:
        states = []
        for k in book.dirty:
            s, mark = book.devices[k], book.devices[k].mark
            holes = mark.holes if mark.high >= WINDOW - 1 else mark.holes & _possible(mark.high)
            states.append([s.community, s.device_type, s.device_id, mark.high,
                           holes if holes < 1 << 63 else format(holes, "x"), mark.high_ts_ns, s.last_ts_ns,
                           s.last_seen_ns, s.last_fields, s.online, s.status_ns, s.readings, s.duplicates, s.lost])
        body = orjson.dumps(states)
    book.take_journal()  # (what this version would have journalled is dropped)
    return body


# One step: a reading (device, seq or None, ts, fields), a status, a commit (journal; or the journal
# entry of an earlier version) or a snapshot.
steps = st.lists(st.one_of(
    st.tuples(st.just("reading"), st.integers(0, 3), st.one_of(st.none(), st.integers(0, 3 * WINDOW)),
              st.integers(0, 10**6), st.floats(-50, 50, allow_nan=False), st.booleans()),
    st.tuples(st.just("status"), st.integers(0, 3), st.booleans()),
    st.just(("commit",)),
    st.just(("commit as an earlier version",)),
    st.just(("snapshot",)),
    st.just(("commit, then a snapshot",)),
), max_size=120)


def restored(db: StateDB) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    """Every device's state as a restart finds it in db."""
    book = DeviceBook(SITE)
    book.restore(db.devices())
    book.replay(db.device_journal())
    return {k: state_of(s) for k, s in book.devices.items()}


@settings(max_examples=80, deadline=None)
@given(steps)
def test_rows_and_journal_restore_every_state(tmp_path_factory: Any, script: list[tuple[Any, ...]]) -> None:
    db = StateDB(Path(tmp_path_factory.mktemp("db")) / "state.db")
    book = DeviceBook(SITE)
    for rx, step in enumerate(script, 1):
        if step[0] == "reading":
            _, dev, seq, ts, value, charging = step
            book.observe(Reading("c", DeviceType("ebike_charger"), f"ev{dev}", ts * 1000 + 1,
                                 {"current_a": value, "charging": charging}, seq, received_ns=rx))
        elif step[0] == "status":
            book.status(StatusUpdate("c", DeviceType("ebike_charger"), f"ev{step[1]}", step[2], rx))
        elif step[0] == "commit":
            db.commit([], [], device_log=book.take_journal())
        elif step[0] == "commit as an earlier version":
            db.commit([], [], device_log=earlier_entry(book))
        elif step[0] == "snapshot":
            db.commit([], book.take_snapshot())
        else:  # as Pipeline.commit does: the batch's journal entry, then the snapshot on its own
            db.commit([], [], device_log=book.take_journal())
            rows = book.take_snapshot()
            assert restored(db) == {k: state_of(s) for k, s in book.devices.items()}  # a kill -9 in between
            db.snapshot(rows)
            assert db.device_journal() == []
    db.commit([], [], device_log=book.take_journal())  # the last batch's
    assert restored(db) == {k: state_of(s) for k, s in book.devices.items()}
    again = DeviceBook(SITE)
    again.restore(db.devices())
    again.replay(db.device_journal())
    # What was replayed is in the next snapshot, which empties the journal.
    db.commit([], again.take_snapshot())
    assert db.device_journal() == []
    third = DeviceBook(SITE)
    third.restore(db.devices())
    assert {k: state_of(s) for k, s in third.devices.items()} == {k: state_of(s) for k, s in book.devices.items()}
    db.close()


def test_a_mask_with_holes_beyond_a_json_integer_survives() -> None:
    book = DeviceBook(SITE)
    for seq in [*range(0, WINDOW + 10, 2), WINDOW + 500]:  # every other seq: holes all through the window
        book.observe(Reading("c", DeviceType("ebike_charger"), "ev1", seq + 1, {"current_a": 1.0}, seq,
                             received_ns=seq + 1))
    key = ("c", "ebike_charger", "ev1")
    assert book.devices[key].mark.holes >= 1 << 64
    body = book.take_journal()
    assert body is not None
    again = DeviceBook(SITE)
    again.replay([body])
    assert state_of(again.devices[key]) == state_of(book.devices[key])
    assert again.unsaved == {key}
    assert again.take_journal() is None  # what was replayed is not journalled again


def test_an_entry_of_an_earlier_version_with_such_a_mask_survives() -> None:
    book = DeviceBook(SITE)
    for seq in [*range(0, WINDOW + 10, 2), WINDOW + 500]:
        book.observe(Reading("c", DeviceType("ebike_charger"), "ev1", seq + 1, {"current_a": 1.0}, seq,
                             received_ns=seq + 1))
    body = earlier_entry(book)
    assert body is not None and b'"' in body.split(b",")[4]  # the holes as hexadecimal
    again = DeviceBook(SITE)
    again.replay([body])
    key = ("c", "ebike_charger", "ev1")
    assert state_of(again.devices[key]) == state_of(book.devices[key])
    assert again.unsaved == {key}


def test_the_journal_keeps_events_in_their_order() -> None:
    # A device announced offline, then reporting, is online; the other way round, offline.
    book = DeviceBook(SITE)
    charger = DeviceType("ebike_charger")
    book.status(StatusUpdate("c", charger, "ev1", False, 1))
    book.observe(Reading("c", charger, "ev1", 2, {"current_a": 1.0}, 0, received_ns=2))
    book.observe(Reading("c", charger, "ev2", 2, {"current_a": 1.0}, 0, received_ns=2))
    book.status(StatusUpdate("c", charger, "ev2", False, 3))
    book.observe(Reading("c", charger, "ev2", 2, {"current_a": 1.0}, 0, received_ns=4))  # a duplicate
    body = book.take_journal()
    assert body is not None
    again = DeviceBook(SITE)
    again.replay([body])
    assert again.devices[("c", "ebike_charger", "ev1")].online is True
    assert again.devices[("c", "ebike_charger", "ev2")].online is False
    assert again.devices[("c", "ebike_charger", "ev2")].duplicates == 1
    assert {k: state_of(s) for k, s in again.devices.items()} == {k: state_of(s) for k, s in book.devices.items()}
