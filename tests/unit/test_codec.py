"""Vendors' ChirpStack codecs in QuickJS (ingest/sources/codec.py): the vendors' samples decode as
their documents say; a codec that throws, returns errors or no object, loops, or eats memory is a
CodecError with its reason, and the next message still decodes; results are JSON-plain.

The vendor codecs are not kept in the repository (app/defaults/profiles/codecs/SOURCES.md says where
each is published and its SHA-256): their tests skip when the file is absent."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ingest.sources.codec import REASONS, CodecError, JsCodec

CODECS = Path(__file__).resolve().parents[2] / "app" / "defaults" / "profiles" / "codecs"
SHA256 = {
    "milesight-gs524n": "f4d905957fb0e5e705bd7c59134f5d62fc94c939d442ea33a0103bd2436eb1e5",
    "dragino-dds75-lb": "307fb4a759d4eedf349ca3f0c8d15cdf2e39f7a10569279c1a546ac05011fba0",
}
# Answers by fPort: 1 the input it was given, 2 loops, 3 eats memory, 4 throws, 5 returns errors.
TEST_CODEC = """
function decodeUplink(input) {
  if (input.fPort === 2) { while (true) {} }
  if (input.fPort === 3) { var a = []; while (true) a.push(new Array(1e6)); }
  if (input.fPort === 4) { return null.battery; }
  if (input.fPort === 5) { return {errors: ["unknown frame type 0x7f", "length 3"]}; }
  return {data: {bytes: input.bytes, fPort: input.fPort, variables: input.variables}};
}
"""


def vendor(name: str) -> JsCodec:
    path = CODECS / f"{name}.js"
    if not path.exists():
        pytest.skip(f"{path.name} is not in the tree (see {CODECS.name}/SOURCES.md)")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA256[name], f"{path.name} is not the vendor's file"
    return JsCodec.from_file(path)


def failure(codec: JsCodec, data: bytes, fport: int) -> CodecError:
    with pytest.raises(CodecError) as caught:
        codec.decode_uplink(data, fport)
    assert caught.value.reason in REASONS
    assert "\n" not in str(caught.value)
    return caught.value


def test_milesight_gs524n_readme_sample() -> None:
    # gs-series/gs524n/README.md, "Example": 221E64001C40.
    assert vendor("milesight-gs524n").decode_uplink(bytes.fromhex("221E64001C40"), 1) == {
        "version": 2, "protocol": 2, "type": "smoke sensor", "battery": 100, "concentration": 0,
        "temperature": 28, "event": "testing alarm with normal battery",
    }


def test_dragino_dds75_lb_readings() -> None:
    # Dragino publishes no DDS75-LB sample in the decoder repository; these payloads follow the byte
    # layout its decoder reads on fPort 2 (BAT 2 bytes & 0x3FFF mV, distance 2 bytes mm, interrupt 1,
    # DS18B20 2 bytes signed /10, sensor flag 1), with field values from Dragino's manuals for the
    # sibling sensors (battery 0x0B45 = 2885 mV, DS18B20 0xFF3F = -19.3 °C).
    codec = vendor("dragino-dds75-lb")
    assert codec.decode_uplink(bytes.fromhex("0CE406A40000FA01"), 2) == {
        "Node_type": "DDS75-LB", "Bat": 3.3, "Distance": 1700, "Interrupt_flag": 0, "TempC_DS18B20": "25.00",
        "Sensor_flag": 1,
    }
    assert codec.decode_uplink(bytes.fromhex("0B450BEA01FF3F01"), 2) == {
        "Node_type": "DDS75-LB", "Bat": 2.885, "Distance": 3050, "Interrupt_flag": 1, "TempC_DS18B20": "-19.30",
        "Sensor_flag": 1,
    }
    # A port the decoder has no branch for: decodeUplink returns {data: undefined}.
    error = failure(codec, bytes.fromhex("0CE406A40000FA01"), 1)
    assert error.reason == "codec_error"
    assert str(error) == "codec dragino-dds75-lb returned no object (decodeUplink returned data that is undefined)"


def test_decode_uplink_gets_bytes_port_and_variables() -> None:
    codec = JsCodec(TEST_CODEC, name="test")
    assert codec.decode_uplink(b"\x00\x7f\xff", 1, {"calibration": "3.5"}) == {
        "bytes": [0, 127, 255], "fPort": 1, "variables": {"calibration": "3.5"},
    }
    assert codec.decode_uplink(b"", 1) == {"bytes": [], "fPort": 1, "variables": {}}


def test_v3_decode_and_decode_uplink_first() -> None:
    v3 = JsCodec("function Decode(fPort, bytes, variables) { return {port: fPort, n: bytes.length, v: variables}; }",
                 name="v3")
    assert v3.decode_uplink(b"\x01\x02", 7, {"k": "v"}) == {"port": 7, "n": 2, "v": {"k": "v"}}
    both = JsCodec("function Decode(p, b) { return {by: 'Decode'}; }\n"
                   "function decodeUplink(input) { return {data: {by: 'decodeUplink'}}; }", name="both")
    assert both.decode_uplink(b"\x01", 1) == {"by": "decodeUplink"}


def test_a_codec_that_throws() -> None:
    error = failure(JsCodec(TEST_CODEC, name="milesight-gs524n"), b"\x01", 4)
    assert error.reason == "codec_error"
    assert str(error) == "codec milesight-gs524n threw: TypeError: cannot read property 'battery' of null"
    thrown = failure(JsCodec("function decodeUplink(i) { throw new RangeError('bad\\nlength ' + i.bytes.length); }",
                             name="x"), b"\x01\x02", 1)
    assert str(thrown) == "codec x threw: RangeError: bad"


def test_errors_returned() -> None:
    error = failure(JsCodec(TEST_CODEC, name="test"), b"\x01", 5)
    assert error.reason == "codec_error"
    assert str(error) == "codec test returned errors: unknown frame type 0x7f; length 3"
    # An empty errors array is no error (ChirpStack reads it so too).
    codec = JsCodec("function decodeUplink(i) { return {data: {a: 1}, errors: [], warnings: ['w']}; }", name="t")
    assert codec.decode_uplink(b"", 1) == {"a": 1}


@pytest.mark.parametrize(("body", "what"), [
    ("return 5;", "decodeUplink returned number"),
    ("return;", "decodeUplink returned undefined"),
    ("return {data: [1, 2]};", "decodeUplink returned data that is an array"),
    ("return {data: null};", "decodeUplink returned data that is null"),
    ("return {data: 'x'};", "decodeUplink returned data that is string"),
    ("return {};", "decodeUplink returned data that is undefined"),
])
def test_no_object_returned(body: str, what: str) -> None:
    error = failure(JsCodec(f"function decodeUplink(input) {{ {body} }}", name="c"), b"\x01", 1)
    assert (error.reason, str(error)) == ("codec_error", f"codec c returned no object ({what})")
    v3 = failure(JsCodec("function Decode(fPort, bytes) {}", name="c"), b"\x01", 1)
    assert str(v3) == "codec c returned no object (Decode returned undefined)"


def test_a_loop_is_stopped_and_the_next_message_decodes() -> None:
    codec = JsCodec(TEST_CODEC, name="looper")
    t0 = time.monotonic()
    error = failure(codec, b"\x01", 2)
    assert time.monotonic() - t0 < 2.0
    assert (error.reason, str(error)) == ("codec_timeout", "codec looper ran past 100 ms")
    assert codec.decode_uplink(b"\x05", 1)["bytes"] == [5]


def test_a_memory_hog_is_stopped_and_the_next_message_decodes() -> None:
    # A time limit well past the ~100 ms the hog needs to reach 32 MB, so memory is what stops it.
    codec = JsCodec(TEST_CODEC, name="hog", time_limit_ms=2000)
    t0 = time.monotonic()
    error = failure(codec, b"\x01", 3)
    assert time.monotonic() - t0 < 2.0
    assert (error.reason, str(error)) == ("codec_memory", "codec hog used more than 32 MB")
    assert codec.decode_uplink(b"\x05", 1)["bytes"] == [5]
    # QuickJS's other word for it: an out-of-memory InternalError it could allocate.
    doubler = JsCodec("function decodeUplink(i) { var s = 'x'; while (true) s = s + s; }", name="d",
                      time_limit_ms=2000, memory_limit_mb=8)
    assert str(failure(doubler, b"", 1)) == "codec d used more than 8 MB"


def test_a_failed_run_leaves_no_state() -> None:
    codec = JsCodec("var seen = 0;\nfunction decodeUplink(i) { seen++; if (i.fPort === 9) throw new Error('no');"
                    " return {data: {seen: seen}}; }", name="s")
    assert codec.decode_uplink(b"", 1) == {"seen": 1}
    assert codec.decode_uplink(b"", 1) == {"seen": 2}
    failure(codec, b"", 9)
    assert codec.decode_uplink(b"", 1) == {"seen": 1}


@pytest.mark.parametrize(("source", "message"), [
    ("var x = 1;", "codec bad defines neither decodeUplink nor Decode"),
    ("var decodeUplink = 5;", "codec bad defines neither decodeUplink nor Decode"),
    ("function decodeUplink(input) { return {data: {}}; ",
     "codec bad does not load: SyntaxError: unexpected token in expression: ''"),
    ("throw new Error('needs Buffer');", "codec bad does not load: Error: needs Buffer"),
    ("while (true) {}", "codec bad does not load: ran past 100 ms"),
])
def test_a_codec_that_does_not_load(source: str, message: str) -> None:
    with pytest.raises(CodecError) as caught:
        JsCodec(source, name="bad")
    assert (caught.value.reason, str(caught.value)) == ("codec_load", message)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CodecError) as caught:
        JsCodec.from_file(tmp_path / "absent.js")
    assert caught.value.reason == "codec_load"
    assert str(caught.value).startswith("codec absent cannot be read: ")
    (tmp_path / "mine.js").write_text(TEST_CODEC, encoding="utf-8")
    assert JsCodec.from_file(tmp_path / "mine.js", time_limit_ms=50).name == "mine"


def test_used_from_other_threads() -> None:
    codec = JsCodec(TEST_CODEC, name="t")
    results: list[Any] = []

    def run() -> None:
        results.append(codec.decode_uplink(b"\x01", 1))
        try:
            codec.decode_uplink(b"\x01", 2)
        except CodecError as e:
            results.append(e.reason)
        results.append(codec.decode_uplink(b"\x02", 1)["bytes"])

    for _ in range(3):
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
    assert results == [{"bytes": [1], "fPort": 1, "variables": {}}, "codec_timeout", [2]] * 3
    # Made in a thread that has ended, used from this one.
    made: list[JsCodec] = []
    thread = threading.Thread(target=lambda: made.append(JsCodec(TEST_CODEC, name="t")))
    thread.start()
    thread.join()
    assert made[0].decode_uplink(b"\x03", 1)["bytes"] == [3]


def test_results_are_json_plain() -> None:
    # NaN and ±Infinity become None; a key whose value is undefined is dropped (undefined in an array
    # becomes None); a Date its ISO string; nested values come back as dict/list/str/int/float/bool/None.
    codec = JsCodec("function decodeUplink(i) { return {data: {nan: NaN, inf: -Infinity, u: undefined,"
                    " list: [1, undefined, 2.5, true, null, 'é'], when: new Date(0), nested: {n: 0x7fffffff}}}; }",
                    name="p")
    assert codec.decode_uplink(b"", 1) == {
        "nan": None, "inf": None, "list": [1, None, 2.5, True, None, "é"], "when": "1970-01-01T00:00:00.000Z",
        "nested": {"n": 2147483647},
    }


@pytest.mark.parametrize(("data", "message"), [
    ("var o = {}; o.self = o; return {data: o};", "threw: TypeError: circular reference"),
    ("return {data: {big: 1n}};", "threw: TypeError: bigint are forbidden in JSON.stringify"),
    ("return {data: {s: '\\ud800'}};", "returned a string that is not valid Unicode"),
])
def test_values_json_cannot_carry(data: str, message: str) -> None:
    error = failure(JsCodec(f"function decodeUplink(i) {{ {data} }}", name="j"), b"", 1)
    assert (error.reason, str(error)) == ("codec_error", f"codec j {message}")
