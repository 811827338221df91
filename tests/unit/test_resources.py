"""Shelters, supplies and door knocks (CONTRACT §13): the site file's keys refused with a located one-line
error, the resource book's rules and door knocks with explicit times (the calendar in the site's time
zone), its state restored from the rows it wrote, and the summaries its alerts read in both languages."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import cast
from zoneinfo import ZoneInfo

import pytest

from alerts.summary import summarise
from app.cli import main
from app.view import ServiceView
from app.web.alert_words import AlertWords
from app.words import words
from kernel.alerting import Alert, AlertStatus, Level, Transition, TransitionKind
from kernel.clock import NS
from kernel.errors import ConfigError, Reason, Refused
from kernel.resources import DOOR_KNOCKS_LATE, SHELTER_FULL, SUPPLIES_EXPIRED, SUPPLIES_EXPIRING, SUPPLIES_SHORT
from kernel.settings import Settings, parse_settings
from kernel.site import Site
from resources.book import Changes, ResourceBook
from resources.catalog import Catalog
from resources.store import SCHEMA, SELECT_CONDITIONS, SELECT_KNOCKS, SELECT_OCCUPANCY, SELECT_STOCK

SITE_FILE = Path(__file__).resolve().parents[2] / "examples" / "site.yaml"
SITE = SITE_FILE.read_text(encoding="utf-8")
SOURCE = "site.yaml"
SETTINGS = parse_settings(SITE, source=SOURCE, env={})
ZONE = ZoneInfo(SETTINGS.timezone)  # Asia/Shanghai: UTC+8, no summer time


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """Nanoseconds at a local time of the site."""
    return int(datetime(year, month, day, hour, minute, second, tzinfo=ZONE).timestamp()) * NS


T0 = local(2030, 6, 1, 9)  # every supply of the example site far from its date, every stock above its minimum


def book() -> ResourceBook:
    b = ResourceBook(Catalog(SETTINGS))
    assert b.evaluate(T0).transitions == []
    return b


def of(changes: Changes, where: str) -> list[tuple[TransitionKind, str, Level | None, float | None]]:
    """The transitions at one place: (kind, rule, level, value)."""
    return [(t.kind, t.rule, t.level, t.value) for t in changes.transitions if t.device_id == where]


# ---- the site file --------------------------------------------------------------------------------


def line_of(text: str, needle: str) -> int:
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


def edit(old: str, new: str) -> str:
    assert SITE.count(old) == 1, old
    return SITE.replace(old, new)


# (name, the file with one mistake, the text of the line the error must point at, the key, what it says)
BAD: list[tuple[str, str, str, str, str]] = [
    ("supply_code_not_7_digits", edit('code: "1010101", name: 灭火器, unit: 具, quantity: 24',
                                      'code: "101010", name: 灭火器, unit: 具, quantity: 24'),
     'code: "101010"', "communities.0.supplies.0.code", "7 digits of GB/T 38565-2020"),
    ("supply_code_unquoted", edit('code: "1020301"', "code: 1020301"), "code: 1020301",
     "communities.0.supplies.2.code", 'write the code in quotes, e.g. code: "1010101"'),
    ("unknown_keeper", edit("building: b01, keeper: worker-g1, expires: 2031-03-31",
                            "building: b01, keeper: worker-g9, expires: 2031-03-31"), "keeper: worker-g9",
     "communities.0.supplies.0.keeper", "names keeper 'worker-g9', which is not a listed recipient"),
    ("vulnerable_in_unknown_building", edit("{id: v-b03-0105, building: b03,", "{id: v-b03-0105, building: b09,"),
     "building: b09", "communities.0.vulnerable.2.building",
     "names building 'b09', which community 'linfen-yicun' lacks"),
    ("shelter_capacity_zero", edit("capacity: 600", "capacity: 0"), "capacity: 0", "communities.0.shelters.0.capacity",
     "greater than 0"),
    ("shelter_capacity_negative", edit("capacity: 400", "capacity: -40"), "capacity: -40",
     "communities.1.shelters.0.capacity", "greater than 0"),
    ("unknown_manager", edit("manager: committee-ercun", "manager: nobody"), "manager: nobody",
     "communities.1.shelters.0.manager", "names manager 'nobody'"),
    ("supply_in_unknown_building", edit("place: 11号楼一层, building: b11,", "place: 11号楼一层, building: b01,"),
     "building: b01, keeper: worker-g3", "communities.1.supplies.0.building", "which community 'linfen-ercun' lacks"),
    ("shelter_listed_twice", edit("{id: sh-park,", "{id: sh-school,"), "{id: sh-school, name: 临汾绿地",
     "communities.1.shelters.0.id", "shelter 'sh-school' is listed twice"),
    ("impossible_expiry", edit("expires: 2031-03-31", "expires: 2031-02-31"), "expires: 2031-02-31",
     "", "'2031-02-31' is not a date"),
    ("unknown_kind", edit("kind: [flood],\n", "kind: [lava],\n"), "kind: [lava]", "communities.0.supplies.2.kind.0",
     "'fire'"),
    ("door_knock_time", SITE + "resources: {door_knock_within_s: 0}\n", "door_knock_within_s: 0",
     "resources.door_knock_within_s", "greater than 0"),
]
# What the issue names: each of these must be a located error naming its key.
NAMED = ("supply_code_not_7_digits", "unknown_keeper", "vulnerable_in_unknown_building", "shelter_capacity_zero")


@pytest.mark.parametrize(("text", "marker", "key", "says"), [pytest.param(*b[1:], id=b[0]) for b in BAD])
def test_a_mistake_in_the_resources_is_a_one_line_error_at_its_line(text: str, marker: str, key: str,
                                                                     says: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(text, source=SOURCE, env={})
    message = str(info.value)
    assert "\n" not in message and says in message, message
    assert message.startswith(f"{SOURCE}:{line_of(text, marker)}: {key}"), message


@pytest.mark.parametrize("name", NAMED)
def test_config_check_names_the_file_the_line_and_the_key(name: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    _name, text, marker, key, _says = next(b for b in BAD if b[0] == name)
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith(f"cbrain: bad configuration: {path}:{line_of(text, marker)}: {key}: "), err


def test_the_example_site_lists_what_docs_resources_describes() -> None:
    yicun, ercun = SETTINGS.communities
    assert [sh.id for sh in yicun.shelters] == ["sh-school"] and [sh.id for sh in ercun.shelters] == ["sh-park"]
    assert yicun.supplies[0].code == "1010101" and yicun.supplies[0].expires is not None
    assert [(v.id, v.building) for v in yicun.vulnerable] == [("v-b01-0302", "b01"), ("v-b01-0601", "b01"),
                                                               ("v-b03-0105", "b03")]
    assert [(b.households, b.residents) for b in yicun.buildings] == [(120, 310), (96, 240), (108, 275)]
    r = SETTINGS.resources
    assert (r.door_knock_within_s, r.expiring_within_days, r.shelter_radius_m) == (900.0, 30, 1000.0)


# ---- supplies: the calendar ----------------------------------------------------------------------


def test_a_supply_starts_to_expire_30_days_before_its_date_at_local_midnight() -> None:
    b = book()  # sup-ext-b01 may be used until 2031-03-31: expiring from 2031-03-01, local time
    where = "supply:sup-ext-b01"
    assert of(b.evaluate(local(2031, 2, 28, 23, 59, 59)), where) == []
    changes = b.evaluate(local(2031, 3, 1))
    assert of(changes, where) == [(TransitionKind.FIRE, SUPPLIES_EXPIRING, Level.BLUE, 30.0)]
    t = next(t for t in changes.transitions if t.device_id == where)
    assert (t.community, t.building, t.grid, t.device_type) == ("linfen-yicun", "b01", "g1", "supply")
    # The boundary is Shanghai's midnight, 16:00 UTC the day before; not UTC's.
    assert local(2031, 3, 1) == int(datetime(2031, 2, 28, 16, tzinfo=ZoneInfo("UTC")).timestamp()) * NS
    assert of(b.evaluate(local(2031, 3, 15)), where) == []  # still expiring: no second alert


def test_a_supply_expires_the_day_after_its_last_day() -> None:
    b = book()
    where = "supply:sup-ext-b01"
    b.evaluate(local(2031, 3, 1))
    assert of(b.evaluate(local(2031, 3, 31, 23, 59, 59)), where) == []  # its last day: still usable
    changes = b.evaluate(local(2031, 4, 1))
    assert sorted(of(changes, where)) == sorted([(TransitionKind.FIRE, SUPPLIES_EXPIRED, Level.YELLOW, 1.0),
                                                 (TransitionKind.CLEAR, SUPPLIES_EXPIRING, None, None)])
    assert set(b.conditions) >= {(SUPPLIES_EXPIRED, where)} and (SUPPLIES_EXPIRING, where) not in b.conditions


def test_the_next_deadline_is_the_next_local_midnight_and_the_tick_then_raises_the_alert() -> None:
    b = book()
    now = local(2031, 2, 28, 12)
    assert b.next_deadline(now) == local(2031, 3, 1) == b.next_boundary(now)
    assert of(b.on_tick(local(2031, 2, 28, 23, 59, 59)), "supply:sup-ext-b01") == []
    assert of(b.on_tick(local(2031, 3, 1)), "supply:sup-ext-b01") == [
        (TransitionKind.FIRE, SUPPLIES_EXPIRING, Level.BLUE, 30.0)]
    assert b.next_deadline(local(2031, 3, 1)) == local(2031, 3, 2)  # the tick moved on to the next midnight


# ---- supplies: the ledger ------------------------------------------------------------------------


def test_a_movement_below_the_minimum_is_short_until_restocked() -> None:
    b = book()  # sup-ext-b01: 24 in stock, 20 at least
    where = "supply:sup-ext-b01"
    quantity, changes = b.move("sup-ext-b01", -5, "used", " 1号楼502室厨房灭火 ", "worker-g1", "grid_worker", T0 + 1)
    assert quantity == 19 == b.stock["sup-ext-b01"]
    assert of(changes, where) == [(TransitionKind.FIRE, SUPPLIES_SHORT, Level.YELLOW, 19.0)]
    ledger = dict(changes.writes)
    assert any(r[:7] == ("sup-ext-b01", "linfen-yicun", T0 + 1, -5, 19, "used", "1号楼502室厨房灭火")
               for rows in ledger.values() for r in rows)
    quantity, changes = b.move("sup-ext-b01", -1, "count", None, "committee-yicun", "community", T0 + 2)
    assert quantity == 18 and of(changes, where) == [] and changes.writes  # still short: the ledger alone
    quantity, changes = b.move("sup-ext-b01", 2, "restocked", None, "worker-g1", "grid_worker", T0 + 3)
    assert quantity == 20 and of(changes, where) == [(TransitionKind.CLEAR, SUPPLIES_SHORT, None, 20.0)]


@pytest.mark.parametrize(("supply", "delta", "reason", "refused"), [
    ("sup-ext-b01", -3, "restocked", Reason.INVALID),  # a restock puts stock in
    ("sup-ext-b01", 3, "used", Reason.INVALID),  # a use takes it out
    ("sup-ext-b01", 3, "expired", Reason.INVALID),
    ("sup-ext-b01", -25, "used", Reason.CONFLICT),  # 24 in stock
    ("sup-nothing", -1, "used", Reason.NOT_FOUND),
    ("sup-ext-b01", 0, "count", Reason.INVALID),
    ("sup-ext-b01", -1, "stolen", Reason.INVALID),
    ("sup-ext-b01", True, "restocked", Reason.INVALID),
    ("sup-ext-b01", 2_000_000, "restocked", Reason.INVALID),
])
def test_a_movement_that_does_not_fit_is_refused_and_changes_nothing(supply: str, delta: int, reason: str,
                                                                       refused: Reason) -> None:
    b = book()
    with pytest.raises(Refused) as info:
        b.move(supply, delta, reason, None, "worker-g1", "grid_worker", T0 + 1)
    assert info.value.reason is refused, info.value
    assert b.stock["sup-ext-b01"] == 24 and b.conditions == {}


def test_a_note_of_more_than_500_characters_is_refused() -> None:
    with pytest.raises(Refused, match="500"):
        book().move("sup-ext-b01", -1, "used", "长" * 501, "worker-g1", "grid_worker", T0 + 1)


# ---- shelters ------------------------------------------------------------------------------------


def test_a_shelter_filling_up_is_yellow_at_90_percent_orange_when_full_then_lower_and_clear() -> None:
    b = book()  # sh-school: 600 people
    where = "shelter:sh-school"
    assert of(b.occupy("sh-school", 539, "committee-yicun", T0 + 1), where) == []
    assert of(b.occupy("sh-school", 540, "committee-yicun", T0 + 2), where) == [
        (TransitionKind.FIRE, SHELTER_FULL, Level.YELLOW, 540.0)]
    assert of(b.occupy("sh-school", 600, "committee-yicun", T0 + 3), where) == [
        (TransitionKind.RAISE, SHELTER_FULL, Level.ORANGE, 600.0)]
    assert of(b.occupy("sh-school", 650, "street-office", T0 + 4), where) == []  # over full: still orange
    assert of(b.occupy("sh-school", 599, "committee-yicun", T0 + 5), where) == [
        (TransitionKind.LOWER, SHELTER_FULL, Level.YELLOW, 599.0)]
    changes = b.occupy("sh-school", 100, "committee-yicun", T0 + 6)
    assert of(changes, where) == [(TransitionKind.CLEAR, SHELTER_FULL, None, 100.0)]
    assert len({t.episode for t in changes.transitions}) == 1 and (b.occupancy_at["sh-school"] == T0 + 6)
    t = changes.transitions[0]
    assert (t.community, t.building, t.grid, t.previous) == ("linfen-yicun", "unknown", "unknown", Level.YELLOW)


@pytest.mark.parametrize(("shelter", "count", "refused"), [
    ("sh-nowhere", 1, Reason.NOT_FOUND), ("sh-school", -1, Reason.INVALID), ("sh-school", 1_000_001, Reason.INVALID),
    ("sh-school", False, Reason.INVALID),
])
def test_an_occupancy_that_does_not_fit_is_refused(shelter: str, count: int, refused: Reason) -> None:
    with pytest.raises(Refused) as info:
        book().occupy(shelter, count, "committee-yicun", T0 + 1)
    assert info.value.reason is refused


# ---- door knocks ---------------------------------------------------------------------------------

DUE = T0 + int(900 * NS)


def test_door_knocks_open_once_per_red_alert_of_a_building_with_vulnerable_residents() -> None:
    b = book()
    assert b.open_knocks("a-orange", Level.ORANGE, "linfen-yicun", "b01", "g1", T0).writes == []
    assert b.open_knocks("a-b02", Level.RED, "linfen-yicun", "b02", "g1", T0).writes == []  # nobody listed there
    assert b.open_knocks("a-nowhere", Level.RED, "linfen-yicun", "unknown", "unknown", T0).writes == []
    opened = b.open_knocks("a1", Level.RED, "linfen-yicun", "b01", "g1", T0)
    assert opened.transitions == [] and sum(len(rows) for _s, rows in opened.writes) == 2
    kl = b.lists["a1"]
    assert list(kl.knocks) == ["v-b01-0302", "v-b01-0601"] and (kl.created_ns, kl.due_ns) == (T0, DUE)
    assert kl.counts() == {"total": 2, "pending": 2, "reached": 0, "not_reached": 0}
    assert b.open_knocks("a1", Level.RED, "linfen-yicun", "b01", "g1", T0 + 5).writes == []  # once per alert
    assert set(b.lists) == {"a1"}


def test_knocks_are_recorded_and_what_does_not_fit_is_refused() -> None:
    b = book()
    b.open_knocks("a1", Level.RED, "linfen-yicun", "b01", "g1", T0)
    kl, changes = b.knock("a1", "v-b01-0302", "not_reached", "敲门无人应答", "worker-g1", T0 + 60)
    assert changes.transitions == [] and [r[1] for _s, rows in changes.writes for r in rows] == ["v-b01-0302"]
    k = kl.knocks["v-b01-0302"]
    assert (k.status.value, k.actor, k.at_ns, k.note) == ("not_reached", "worker-g1", T0 + 60, "敲门无人应答")
    kl, _ = b.knock("a1", "v-b01-0302", "reached", "邻居带下楼", "worker-g2", T0 + 90)  # a later answer replaces it
    assert kl.knocks["v-b01-0302"].status.value == "reached"
    assert kl.counts() == {"total": 2, "pending": 1, "reached": 1, "not_reached": 0}
    for alert, vid, status, reason in [("a9", "v-b01-0302", "reached", Reason.NOT_FOUND),
                                       ("a1", "v-b03-0105", "reached", Reason.NOT_FOUND),
                                       ("a1", "v-b01-0601", "pending", Reason.INVALID),
                                       ("a1", "v-b01-0601", "maybe", Reason.INVALID)]:
        with pytest.raises(Refused) as info:
            b.knock(alert, vid, status, None, "worker-g1", T0 + 100)
        assert info.value.reason is reason


def test_knocks_not_done_in_time_raise_door_knocks_late_once_and_the_last_knock_clears_it() -> None:
    b = book()
    b.open_knocks("a1", Level.RED, "linfen-yicun", "b01", "g1", T0)
    b.knock("a1", "v-b01-0302", "reached", None, "worker-g1", T0 + 60)
    assert b.next_deadline(T0 + 61) == DUE
    assert of(b.on_tick(DUE - 1), "knocks:a1") == []
    late = b.on_tick(DUE)
    assert of(late, "knocks:a1") == [(TransitionKind.FIRE, DOOR_KNOCKS_LATE, Level.YELLOW, 1.0)]
    t = late.transitions[0]
    assert (t.community, t.building, t.grid, t.device_type) == ("linfen-yicun", "b01", "g1", "building")
    assert b.lists["a1"].escalated and b.next_deadline(DUE) == b.next_boundary(DUE)  # no knock deadline left
    assert of(b.on_tick(DUE + 60 * NS), "knocks:a1") == []  # once
    # Knocked without an answer: still not reached, the alert stays.
    _kl, missed = b.knock("a1", "v-b01-0601", "not_reached", "家中无人，已联系家属", "worker-g1", DUE + 120 * NS)
    assert of(missed, "knocks:a1") == []
    _kl, done = b.knock("a1", "v-b01-0601", "reached", "在女儿家", "worker-g1", DUE + 180 * NS)
    assert of(done, "knocks:a1") == [(TransitionKind.CLEAR, DOOR_KNOCKS_LATE, None, 0.0)]
    assert done.transitions[0].episode == t.episode


def test_knocks_all_done_in_time_raise_nothing() -> None:
    b = book()
    b.open_knocks("a1", Level.RED, "linfen-yicun", "b01", "g1", T0)
    b.knock("a1", "v-b01-0302", "reached", None, "worker-g1", T0 + 60)
    _kl, changes = b.knock("a1", "v-b01-0601", "reached", None, "worker-g1", T0 + 61)
    assert changes.transitions == []
    assert b.next_deadline(T0 + 62) == b.next_boundary(T0 + 62)
    assert of(b.on_tick(DUE), "knocks:a1") == []


# ---- restore -------------------------------------------------------------------------------------


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    con = sqlite3.connect(":memory:")
    con.executescript(SCHEMA)
    yield con
    con.close()


def commit(con: sqlite3.Connection, changes: Changes) -> list[Transition]:
    """The writes committed as the runner commits them; the transitions it hands to the alerts."""
    for statement, rows in changes.writes:
        con.executemany(statement, rows)
    return changes.transitions


def restored(con: sqlite3.Connection) -> ResourceBook:
    b = ResourceBook(Catalog(SETTINGS))
    b.restore(con.execute(SELECT_STOCK).fetchall(), con.execute(SELECT_OCCUPANCY).fetchall(),
              con.execute(SELECT_CONDITIONS).fetchall(), con.execute(SELECT_KNOCKS, (0,)).fetchall())
    return b


def test_a_book_restored_from_its_rows_is_the_book_that_wrote_them(db: sqlite3.Connection) -> None:
    b = book()
    commit(db, b.move("sup-ext-b01", -6, "used", None, "worker-g1", "grid_worker", T0 + 1)[1])
    commit(db, b.move("sup-pump", 3, "restocked", None, "worker-g2", "grid_worker", T0 + 2)[1])
    commit(db, b.occupy("sh-school", 600, "committee-yicun", T0 + 3))
    commit(db, b.occupy("sh-park", 10, "committee-ercun", T0 + 4))
    commit(db, b.open_knocks("a1", Level.RED, "linfen-yicun", "b01", "g1", T0 + 5))
    commit(db, b.knock("a1", "v-b01-0302", "reached", "已转移", "worker-g1", T0 + 6)[1])
    commit(db, b.open_knocks("a2", Level.RED, "linfen-yicun", "b03", "g2", T0 + 7))
    commit(db, b.on_tick(T0 + 5 + int(900 * NS)))  # a1 late; a2 not yet
    commit(db, b.evaluate(local(2031, 3, 2)))  # the extinguishers start to expire
    again = restored(db)
    assert again.stock == b.stock and again.stock["sup-ext-b01"] == 18 and again.stock["sup-pump"] == 5
    assert (again.occupancy, again.occupancy_at) == (b.occupancy, b.occupancy_at)
    assert again.conditions == b.conditions
    assert {(r, w) for r, w in again.conditions} == {
        (SUPPLIES_SHORT, "supply:sup-ext-b01"), (SHELTER_FULL, "shelter:sh-school"), (DOOR_KNOCKS_LATE, "knocks:a1"),
        (SUPPLIES_EXPIRING, "supply:sup-ext-b01"), (SUPPLIES_EXPIRED, "supply:sup-ext-b11")}
    assert again.lists == b.lists
    # Restored, it goes on as the book that wrote the rows would: nothing fires twice, a2 is still due,
    # and the last knock of a1 clears its late alert with the same episode.
    assert again.evaluate(local(2031, 3, 2)).transitions == []
    assert again.next_deadline(T0 + 8) == b.next_deadline(T0 + 8) == T0 + 7 + int(900 * NS)
    cleared = again.knock("a1", "v-b01-0601", "reached", None, "worker-g1", T0 + 10 * 60 * NS)[1]
    assert [(t.kind, t.episode) for t in cleared.transitions] == [
        (TransitionKind.CLEAR, b.conditions[(DOOR_KNOCKS_LATE, "knocks:a1")].episode)]
    assert of(again.on_tick(T0 + 7 + int(900 * NS)), "knocks:a2") == [
        (TransitionKind.FIRE, DOOR_KNOCKS_LATE, Level.YELLOW, 1.0)]


def test_a_cleared_condition_is_deleted_from_the_store(db: sqlite3.Connection) -> None:
    b = book()
    commit(db, b.occupy("sh-school", 560, "committee-yicun", T0 + 1))
    commit(db, b.occupy("sh-school", 20, "committee-yicun", T0 + 2))
    assert db.execute(SELECT_CONDITIONS).fetchall() == [] and restored(db).conditions == {}
    assert restored(db).occupancy["sh-school"] == 20


# ---- the summaries -------------------------------------------------------------------------------


def alert_of(t: Transition) -> Alert:
    assert t.level is not None
    return Alert("a1", t.rule, t.level, AlertStatus.FIRING, t.community, t.building, t.grid, t.device_id,
                 t.device_type, t.value, t.started_ns, t.at_ns, "")


def first(changes: Changes, where: str) -> Alert:
    return alert_of(next(t for t in changes.transitions if t.device_id == where and t.level is not None))


def test_resource_alerts_read_well_in_both_languages_and_late_knocks_name_nobody() -> None:
    site = Site(SETTINGS)
    b = book()
    expiring = first(b.evaluate(local(2031, 3, 1)), "supply:sup-ext-b01")
    expired = first(b.evaluate(local(2031, 4, 1)), "supply:sup-ext-b01")
    short = first(b.move("sup-pump", -1, "used", None, "worker-g2", "grid_worker", local(2031, 4, 1, 8))[1],
                  "supply:sup-pump")
    full = first(b.occupy("sh-school", 600, "committee-yicun", local(2031, 4, 1, 9)), "shelter:sh-school")
    b.open_knocks("a1", Level.RED, "linfen-yicun", "b01", "g1", local(2031, 4, 1, 10))
    late = first(b.on_tick(local(2031, 4, 1, 10, 15)), "knocks:a1")
    expected = [
        (expiring, "【蓝色预警（IV级）】临汾一村 1号楼 （第一网格）：应急物资临近过期 "
                   "灭火器（1号楼一层楼梯口，30 天后到期：2031-03-31）",
         "[blue (IV)] 临汾一村 1号楼 (第一网格): emergency supply near its expiry date 灭火器 (1号楼一层楼梯口: "
         "expires in 30 days, on 2031-03-31)"),
        (expired, "【黄色预警（III级）】临汾一村 1号楼 （第一网格）：应急物资已过期 "
                  "灭火器（1号楼一层楼梯口，2031-03-31 到期，已过期）",
         "[yellow (III)] 临汾一村 1号楼 (第一网格): emergency supply past its expiry date 灭火器 (1号楼一层楼梯口: "
         "expired on 2031-03-31)"),
        (short, "【黄色预警（III级）】临汾一村 3号楼 （第二网格）：应急物资库存不足 "
                "移动排水泵（小区东门防汛仓库，库存 1台，最低 2）",
         "[yellow (III)] 临汾一村 3号楼 (第二网格): emergency supply below its minimum stock "
         "移动排水泵 (小区东门防汛仓库: 1 台 in stock, minimum 2)"),
        (full, "【橙色预警（II级）】临汾一村：避难场所接近满员 临汾路小学操场（已有 600 人，容量 600）",
         "[orange (II)] 临汾一村: shelter filling up 临汾路小学操场 (600 people, capacity 600)"),
        (late, "【黄色预警（III级）】临汾一村 1号楼 （第一网格）：上门确认未按时完成（尚有 2 户未确认安全）",
         "[yellow (III)] 临汾一村 1号楼 (第一网格): door knocks not done in time (2 not yet reached)"),
    ]
    for alert, zh, en in expected:
        assert summarise(site, alert, "zh-CN") == zh
        assert summarise(site, alert, "en") == en
    # Who is behind the door is personal data: never in a summary (CONTRACT §13).
    for v in SETTINGS.communities[0].vulnerable:
        for private in (v.name, v.contact, v.needs, v.id, f"{v.room}室"):
            assert not private or all(private not in summarise(site, late, lang) for lang in ("zh-CN", "en"))


def test_settings_of_another_zone_move_the_boundary() -> None:
    utc: Settings = SETTINGS.model_copy(update={"timezone": "UTC"})
    b = ResourceBook(Catalog(utc))
    assert of(b.evaluate(local(2031, 3, 1)), "supply:sup-ext-b01") == []  # 16:00 UTC on 28 February
    assert of(b.evaluate(local(2031, 3, 1, 8)), "supply:sup-ext-b01") == [  # UTC's midnight
        (TransitionKind.FIRE, SUPPLIES_EXPIRING, Level.BLUE, 30.0)]


# ---- the ledger ----------------------------------------------------------------------------------


async def test_a_communitys_ledger_is_its_own_rows_up_to_the_limit(db: sqlite3.Connection) -> None:
    from app.resource_view import ResourceView
    from kernel.clock import ManualClock
    from kernel.settings import Scope

    b = book()
    for i in range(5):  # the other community's movements come first
        commit(db, b.move("sup-ext-b11", -1, "used", None, "worker-g3", "grid_worker", T0 + i)[1])
    for i in range(2):
        commit(db, b.move("sup-ext-b01", -1, "used", None, "worker-g1", "grid_worker", T0 + 10 + i)[1])

    async def select(sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        return db.execute(sql, args).fetchall()

    view = ResourceView(SETTINGS, Site(SETTINGS), ManualClock(T0), b, None, select)
    mine = await view.movements(Scope(community="linfen-yicun"), limit=3)
    assert [(m["supply_id"], m["quantity"], m["name"]) for m in mine] == [("sup-ext-b01", 23, "灭火器"),
                                                                           ("sup-ext-b01", 22, "灭火器")]
    assert len(await view.movements(None, limit=3)) == 3 and len(await view.movements(None)) == 7


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_an_alert_page_names_and_links_what_a_resource_alert_is_about(lang: str) -> None:
    """The alert page's row for what an alert is about: a device by its id and kind; a supply or
    shelter by its name on its page; late door knocks as the alert they belong to, never the internal
    place ("knocks:<alert id>") nor a device page that does not exist."""
    b = book()
    raised = [*b.move("sup-ext-b01", -6, "used", None, "worker-g1", "grid_worker", T0 + 1)[1].transitions,
              *b.occupy("sh-school", 600, "committee-yicun", T0 + 2).transitions,
              *b.open_knocks("a1", Level.RED, "linfen-yicun", "b01", "g1", T0 + 3).transitions,
              *b.on_tick(T0 + 3 + int(900 * NS)).transitions]
    aw = AlertWords(cast(ServiceView, SimpleNamespace(site=Site(SETTINGS))), lang)
    t = words(lang)
    rows = {tr.rule: aw.subject({"community": tr.community, "device_id": tr.device_id,
                                 "device_type": tr.device_type}) for tr in raised}
    assert rows[SUPPLIES_SHORT] == {"label": t["subject_supply"], "text": "灭火器", "href": "/supplies#s-sup-ext-b01",
                                    "kind": ""}
    assert rows[SHELTER_FULL] == {"label": t["subject_shelter"], "text": "临汾路小学操场",
                                  "href": "/shelters#sh-sh-school", "kind": ""}
    assert rows[DOOR_KNOCKS_LATE] == {"label": t["knocks"], "text": t["knocks_of"], "href": "/alert/a1#knocks",
                                      "kind": ""}
    building = aw.subject({"community": "linfen-yicun", "device_id": "building:b01", "device_type": "smoke_detector"})
    assert building == {"label": t["device"], "text": "1号楼", "href": "", "kind": "烟感" if lang == "zh" else
                        "smoke detector"}
    smoke = aw.subject({"community": "linfen-yicun", "device_id": "smoke-b01-0302", "device_type": "smoke_detector"})
    assert smoke == {"label": t["device"], "text": "smoke-b01-0302", "href": "/device/smoke-b01-0302",
                     "kind": "烟感" if lang == "zh" else "smoke detector"}
