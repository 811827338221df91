"""InfluxDB line protocol encoding: escaping, value formats, and what cannot be encoded."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ingest.lineproto as lineproto
from ingest.lineproto import (
    LineProtocolError,
    decode_line,
    decode_lines,
    encode_batch,
    encode_field,
    encode_line,
    encode_lines,
    encode_point,
    escape_key,
    escape_measurement,
)
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


@settings(max_examples=300)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, -0.0, 2.1, 30.5]),
                min_size=1, max_size=40))
def test_a_float_written_again_reads_as_its_own_text(values: list[float]) -> None:
    # The texts of floats met before are kept (lineproto._FLOAT_TEXT): each line is still the value's own
    # repr, zero keeps its sign, and the same value twice in a row gives the same text.
    for value in values + values:
        line = encode_line("m", {"v": value}, 1).decode()
        assert line == f"m v={value!r} 1"
    assert len(lineproto._FLOAT_TEXT) <= lineproto.FLOAT_TEXT_MAX


def test_the_float_texts_kept_stay_bounded_and_refusals_are_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lineproto, "FLOAT_TEXT_MAX", 8)
    monkeypatch.setattr(lineproto, "_FLOAT_TEXT", {})
    for k in range(1, 30):
        assert encode_line("m", {"v": k / 7}, 1) == f"m v={k / 7!r} 1".encode()
        assert 1 <= len(lineproto._FLOAT_TEXT) <= 8
    for bad in (math.nan, math.inf, -math.inf):
        for _ in range(2):
            with pytest.raises(LineProtocolError):
                encode_line("m", {"v": bad}, 1)
    assert all(math.isfinite(v) and v for v in lineproto._FLOAT_TEXT)
    assert encode_line("m", {"v": -0.0, "w": 0.0}, 1) == b"m v=-0.0,w=0.0 1"


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


# ---- decode: the spool keeps line protocol, and reads it back (dead letters, the SQLite store) ----

_keys = st.text(st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\\"),
                min_size=1, max_size=8).filter(lambda k: k != "time")
_values = st.one_of(st.booleans(), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=8))
_measurements = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=8) | st.sampled_from(
    ["a\\=b", "x\\,y", "a\\\\ b", "ebike_charger", "alert"])


@settings(max_examples=400, deadline=None)
@given(_measurements, st.dictionaries(_keys, _keys, max_size=3),
       st.dictionaries(_keys, _values, min_size=1, max_size=4), st.integers(0, 2**62))
def test_decode_line_is_the_inverse_of_encode_point(measurement: str, tags: dict[str, str],
                                                    fields: dict[str, float | bool | str], ts: int) -> None:
    point = Point(measurement, tags, fields, ts)
    try:
        line = encode_point(point)
    except LineProtocolError:
        return  # refused at commit, dead-lettered: never spooled
    back = decode_line(line)
    assert (back.measurement, back.tags, back.ts_ns) == (measurement, tags, ts)
    assert back.fields == fields
    assert [type(v) for v in back.fields.values()] == [type(v) for v in fields.values()]


def test_decode_lines_reads_a_spooled_body() -> None:
    points = [Point("ebike_charger", {"community": "c", "device_id": "ev 1"}, {"current_a": 2.5, "charging": True}, 7),
              Point("alert", {"rule": "r,1"}, {"title": 'say "hi"\\', "level": "red"}, 8)]
    lines, refused = encode_lines([*points, Point("x", {"a": "bad\\"}, {"v": 1.0}, 9)])
    assert [r[1] for r in refused] == ["tags and field keys cannot contain a backslash"]
    assert decode_lines(b"\n".join(lines)) == points


@pytest.mark.parametrize("bad", ["", "m", "m,t=1", "m f=1.0", "m f=nope 1", "m s=\"open 1"])
def test_decode_line_refuses_what_is_not_a_line(bad: str) -> None:
    with pytest.raises(ValueError):
        decode_line(bad)
