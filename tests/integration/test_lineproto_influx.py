"""Line protocol round trips through a real influxd: what InfluxStore writes is exactly what a query returns.

InfluxDB keeps the sign of -0.0 but answers it as JSON `-0`, which Python reads as the integer 0, so
-0.0 is compared by value (equal to 0.0) and its sign is not checked.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.influx import InfluxStore
from ingest.lineproto import LineProtocolError, encode_field, encode_point, escape_key
from kernel.ids import ID_PATTERN
from kernel.reading import FieldValue, Point
from kernel.settings import InfluxSettings
from tests.servers import InfluxD, quote_ident

pytestmark = pytest.mark.integration

T0 = 1_780_000_000_000_000_000
_next_ts = itertools.count(T0, 1_000)

CHINESE = ["临汾一村 1号楼", "临汾路街道", "第一网格", "电动车充电桩,东侧=2", '烟感 "厨房"', "水位\\井盖"]
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
HYPOTHESIS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def field_encodable(value: str) -> bool:
    """Whether encode_field takes value."""
    try:
        encode_field(value)
    except LineProtocolError:
        return False
    return True


def key_encodable(value: str) -> bool:
    """Whether escape_key takes value."""
    try:
        escape_key(value)
    except LineProtocolError:
        return False
    return True


identifiers = st.from_regex(ID_PATTERN.removesuffix("$") + r"\Z", fullmatch=True)
string_values = (st.sampled_from(CHINESE) | TEXT).filter(field_encodable)
tag_values = (st.sampled_from([c for c in CHINESE if key_encodable(c)]) | TEXT).filter(key_encodable)
floats = st.floats(allow_nan=False, allow_infinity=False)


def write(influxdb: InfluxD, database: str, points: list[Point]) -> None:
    """Write through the service's store."""

    async def run() -> None:
        store = InfluxStore(InfluxSettings(url=influxdb.url, database=database))
        try:
            await store.write(points)
        finally:
            await store.close()

    asyncio.run(run())


def read_at(influxdb: InfluxD, database: str, measurement: str, ts_ns: int) -> list[dict[str, Any]]:
    """Every row of measurement at ts_ns, columns (tags and fields) by name, nulls dropped."""
    result = influxdb.query(f"SELECT * FROM {quote_ident(measurement)} WHERE time = {ts_ns}", database)
    rows: list[dict[str, Any]] = []
    for series in result["results"][0].get("series", []):
        for values in series["values"]:
            rows.append({k: v for k, v in zip(series["columns"], values, strict=True) if v is not None})
    return rows


def same_value(stored: Any, written: FieldValue) -> bool:
    """Exact equality, with types: booleans stay booleans, strings strings, floats equal bit for bit or both 0."""
    if isinstance(written, bool):
        return stored is written
    if isinstance(written, str):
        return isinstance(stored, str) and stored == written
    if isinstance(stored, bool) or not isinstance(stored, int | float):
        return False
    if written == 0:
        return stored == 0
    return float(stored) == written and math.copysign(1.0, float(stored)) == math.copysign(1.0, written)


@st.composite
def readings(draw: st.DrawFn) -> list[Point]:
    """A batch of ebike_charger points with identifier tags, each at its own timestamp."""
    points: list[Point] = []
    for _ in range(draw(st.integers(1, 4))):
        tags = {"community": draw(identifiers), "device_id": draw(identifiers),
                "building": draw(identifiers), "grid": draw(identifiers)}
        fields: dict[str, FieldValue] = {"current_a": draw(floats)}
        if draw(st.booleans()):
            fields["temperature_c"] = draw(floats)
        fields["charging"] = draw(st.booleans())
        fields["note"] = draw(string_values)
        points.append(Point("ebike_charger", tags, fields, next(_next_ts)))
    return points


@HYPOTHESIS
@given(points=readings())
def test_identifier_tags_and_any_field_values_round_trip(influxdb: InfluxD, influx_db: str,
                                                         points: list[Point]) -> None:
    write(influxdb, influx_db, points)
    for point in points:
        (row,) = read_at(influxdb, influx_db, point.measurement, point.ts_ns)
        assert row["time"] == point.ts_ns
        assert {k: row.get(k) for k in point.tags} == point.tags
        for key, value in point.fields.items():
            assert key in row, (key, value)
            assert same_value(row[key], value), (key, value, row[key])
        assert set(row) == {"time", *point.tags, *point.fields}


@HYPOTHESIS
@given(building=tag_values, grid=tag_values, note=string_values)
def test_any_encodable_tag_value_round_trips(influxdb: InfluxD, influx_db: str, building: str, grid: str,
                                             note: str) -> None:
    point = Point("water_level", {"community": "linfen-yicun", "device_id": "wl-1", "building": building,
                                  "grid": grid}, {"level_cm": 1.5, "note": note}, next(_next_ts))
    write(influxdb, influx_db, [point])
    (row,) = read_at(influxdb, influx_db, point.measurement, point.ts_ns)
    assert (row["building"], row["grid"]) == (building, grid)
    assert same_value(row["note"], note)
    assert same_value(row["level_cm"], 1.5)


@pytest.mark.parametrize(
    "value",
    [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308,
     0.1, 1 / 3, 2.0**53, 2.0**53 + 2, 1e16, 123456789012345680.0, 1e-7, math.pi],
)
def test_float_edge_values_round_trip(influxdb: InfluxD, influx_db: str, value: float) -> None:
    point = Point("smoke_detector", {"community": "c", "device_id": "d", "building": "b", "grid": "g"},
                  {"temperature_c": value}, next(_next_ts))
    write(influxdb, influx_db, [point])
    (row,) = read_at(influxdb, influx_db, point.measurement, point.ts_ns)
    assert same_value(row["temperature_c"], value)


@pytest.mark.parametrize(
    "text",
    [*CHINESE, "", " ", "\t", "\x00", "a\\", "\\", '"', '\\"', "\\n", "\\t", "\\\\", "a\\ b", "a\\,b=c", "=,\" ", "😀",
     "\u2028", "\ufeff", "x" * 5000],
    ids=lambda text: ascii(text)[:24],
)
def test_edge_strings_round_trip_as_tags_and_fields(influxdb: InfluxD, influx_db: str, text: str) -> None:
    tags = {"community": "c", "device_id": "d", "building": text if key_encodable(text) else "b", "grid": "g"}
    point = Point("fire_lane", tags, {"occupied": True, "object": text}, next(_next_ts))
    write(influxdb, influx_db, [point])
    (row,) = read_at(influxdb, influx_db, point.measurement, point.ts_ns)
    assert (row["building"], row["object"], row["occupied"]) == (tags["building"], text, True)


_measurements = itertools.count()


@HYPOTHESIS
@given(tag_key=tag_values, field_key=tag_values)
def test_any_encodable_key_round_trips(influxdb: InfluxD, influx_db: str, tag_key: str, field_key: str) -> None:
    if tag_key == field_key or "time" in (tag_key, field_key) or field_key[0] in "\t\x00":
        return
    point = Point(f"keys{next(_measurements)}", {tag_key: "v"}, {field_key: 2.5}, next(_next_ts))
    write(influxdb, influx_db, [point])
    (row,) = read_at(influxdb, influx_db, point.measurement, point.ts_ns)
    assert row == {"time": point.ts_ns, tag_key: "v", field_key: 2.5}


@pytest.mark.parametrize("measurement", ["a b", "a,b", "a=b", 'a"b', "临汾 一村", "😀"])
def test_measurement_names_round_trip(influxdb: InfluxD, influx_db: str, measurement: str) -> None:
    point = Point(measurement, {"k": "v"}, {"x": 1.0}, next(_next_ts))
    write(influxdb, influx_db, [point])
    assert read_at(influxdb, influx_db, measurement, point.ts_ns) == [{"time": point.ts_ns, "k": "v", "x": 1}]


def _stored_exactly_or_refused(influxdb: InfluxD, database: str, point: Point) -> None:
    """The encoder either refuses a point or InfluxDB stores exactly that point."""
    try:
        encode_point(point)
    except LineProtocolError:
        return
    write(influxdb, database, [point])
    shown = influxdb.query("SHOW MEASUREMENTS", database)["results"][0].get("series", [{"values": []}])[0]["values"]
    assert [point.measurement] in shown
    rows = read_at(influxdb, database, point.measurement, point.ts_ns)
    assert rows == [{"time": point.ts_ns, **point.tags, **point.fields}]


@pytest.mark.parametrize("measurement", ["#", "#m"])
def test_measurement_starting_with_hash(influxdb: InfluxD, influx_db: str, measurement: str) -> None:
    _stored_exactly_or_refused(influxdb, influx_db, Point(measurement, {"k": "v"}, {"x": 1.0}, next(_next_ts)))


@pytest.mark.parametrize("measurement", ["\tm", "\x00m"])
def test_measurement_starting_with_whitespace(influxdb: InfluxD, influx_db: str, measurement: str) -> None:
    _stored_exactly_or_refused(influxdb, influx_db, Point(measurement, {"k": "v"}, {"x": 1.0}, next(_next_ts)))


@pytest.mark.parametrize("field_key", ["\tv", "\x00v", "\t"])
def test_first_field_key_starting_with_whitespace(influxdb: InfluxD, influx_db: str, field_key: str) -> None:
    _stored_exactly_or_refused(influxdb, influx_db, Point("fk", {"k": "v"}, {field_key: 1.0}, next(_next_ts)))


@pytest.mark.parametrize(("tags", "fields"), [({"k": "v"}, {"time": 1.0}), ({"time": "v"}, {"x": 1.0})])
def test_key_time(influxdb: InfluxD, influx_db: str, tags: dict[str, str], fields: dict[str, FieldValue]) -> None:
    _stored_exactly_or_refused(influxdb, influx_db, Point("tk", tags, fields, next(_next_ts)))
