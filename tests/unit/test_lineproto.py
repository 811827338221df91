"""InfluxDB line protocol encoding: escaping, value formats, and what cannot be encoded."""

from __future__ import annotations

import math

import pytest

from ingest.lineproto import LineProtocolError, encode_batch, encode_field, encode_point, escape_key, escape_measurement
from kernel.reading import Point

TS = 1_780_000_000_123_456_789


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("plain", "plain"),
        ("a b", r"a\ b"),
        ("a,b", r"a\,b"),
        ("a=b", r"a\=b"),
        (" ,= ", r"\ \,\=\ "),
        ('say "hi"', r'say\ "hi"'),
        ("临汾一村 1号楼", r"临汾一村\ 1号楼"),
    ],
)
def test_escape_key(raw: str, escaped: str) -> None:
    assert escape_key(raw) == escaped


@pytest.mark.parametrize("bad", ["", "a\nb", "a\rb", "\n", "a\\b", "\\", "trailing\\", "tab\there", "\x00v", "\x7f"])
def test_escape_key_refuses(bad: str) -> None:
    with pytest.raises(LineProtocolError):
        escape_key(bad)


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [("ebike_charger", "ebike_charger"), ("a b", r"a\ b"), ("a,b", r"a\,b"), ("a=b", "a=b"), ('a"b', 'a"b')],
)
def test_escape_measurement(raw: str, escaped: str) -> None:
    assert escape_measurement(raw) == escaped


@pytest.mark.parametrize("bad", ["", "a\nb", "ends\\", "#comment", "\tm", "\x00m"])
def test_escape_measurement_refuses(bad: str) -> None:
    with pytest.raises(LineProtocolError):
        escape_measurement(bad)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (True, "true"),
        (False, "false"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (1.5, "1.5"),
        (3, "3.0"),
        (0.1, "0.1"),
        (1e300, "1e+300"),
        (5e-324, "5e-324"),
        (-1.7976931348623157e308, "-1.7976931348623157e+308"),
        (123456789012345680.0, "1.2345678901234568e+17"),
        ("", '""'),
        ("car", '"car"'),
        ('say "hi"', r'"say \"hi\""'),
        ("back\\slash", r'"back\\slash"'),
        ('\\"', r'"\\\""'),
        ("a,b=c d", '"a,b=c d"'),
        ("临汾一村", '"临汾一村"'),
    ],
)
def test_encode_field(value: float | bool | str, encoded: str) -> None:
    assert encode_field(value) == encoded


@pytest.mark.parametrize("value", [1.0, 0.1, 1 / 3, 1e-7, 1e16, 2.0**53 + 2, math.pi, 5e-324, 1.7976931348623157e308])
def test_float_fields_always_read_as_floats_and_round_trip(value: float) -> None:
    text = encode_field(value)
    assert any(c in text for c in ".e")
    assert float(text) == value


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "line\nbreak", "carriage\rreturn"])
def test_encode_field_refuses(value: float | str) -> None:
    with pytest.raises(LineProtocolError):
        encode_field(value)


def test_encode_point_sorts_tags_and_keeps_field_order() -> None:
    point = Point("ebike_charger", {"grid": "g1", "community": "linfen-yicun", "device_id": "ev-1", "building": "b02"},
                  {"current_a": 3, "charging": True, "temperature_c": 41.25}, TS)
    assert encode_point(point) == (
        "ebike_charger,building=b02,community=linfen-yicun,device_id=ev-1,grid=g1 "
        f"current_a=3.0,charging=true,temperature_c=41.25 {TS}"
    )


def test_encode_point_escapes_every_part() -> None:
    point = Point("m x,y", {"t k": "v,1=2"}, {"f=k": 'a "b"', "g": False}, 0)
    assert encode_point(point) == r'm\ x\,y,t\ k=v\,1\=2 f\=k="a \"b\"",g=false 0'


@pytest.mark.parametrize(
    ("tags", "fields"),
    [
        ({"building": ""}, {"v": 1.0}),
        ({"building": "a\nb"}, {"v": 1.0}),
        ({"building": "a\\b"}, {"v": 1.0}),
        ({"": "x"}, {"v": 1.0}),
        ({"building": "b"}, {}),
        ({"building": "b"}, {"": 1.0}),
        ({"building": "b"}, {"v\n": 1.0}),
        ({"building": "b"}, {"v": math.nan}),
        ({"building": "b"}, {"v": -math.inf}),
        ({"building": "b"}, {"s": "x\ny=1"}),
    ],
)
def test_encode_point_refuses(tags: dict[str, str], fields: dict[str, float | bool | str]) -> None:
    with pytest.raises(LineProtocolError):
        encode_point(Point("m", tags, fields, TS))


def test_encode_batch_joins_lines() -> None:
    points = [Point("m", {"k": "临汾"}, {"v": float(i)}, TS + i) for i in range(3)]
    body = encode_batch(points)
    assert body == "\n".join(f"m,k=临汾 v={i}.0 {TS + i}" for i in range(3)).encode()
    assert encode_batch([]) == b""
