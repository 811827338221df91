"""The quick payload check against the pydantic models it stands in for (ingest.payload_check).

Soundness: whatever the check accepts, the model accepts with the same stored fields, ts, seq and
count of ignored fields. Completeness: whatever the model accepts (numbers within ±2**53), the
check accepts too, so the quick path is the one taken. And the decoder gives the same answer for
every message with the check as without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ingest.decode import Decoder
from ingest.payload_check import compile_check
from kernel.clock import ManualClock
from kernel.devices import CATALOG
from kernel.ids import DeviceType
from kernel.reading import MAX_SEQ, ReadingPayload
from kernel.settings import parse_settings
from kernel.site import Site

ROOT = Path(__file__).resolve().parents[2]
NOW = 1_780_000_000 * 1_000_000_000
SETTINGS = parse_settings((ROOT / "examples" / "site.yaml").read_text(encoding="utf-8"), env={})
QUICK = Decoder("cb", Site(SETTINGS), ManualClock(NOW), max_past_s=7 * 86400, max_future_s=300)
MODEL_ONLY = Decoder("cb", Site(SETTINGS), ManualClock(NOW), max_past_s=7 * 86400, max_future_s=300, quick=False)
TYPES = sorted(CATALOG, key=str)
PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

EDGES = [0, -0.0, 1, -1, 0.5, 1e-300, 100, 100.0000001, 99.99999, -40, -40.0000001, 150, 200, 200.5, 400,
         -300, -500, 2000, 10_000, 40_000, 40_001, 1e308, -1e308, 2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1,
         2**63, 10**20, -(10**20)]
numbers = st.one_of(st.sampled_from(EDGES), st.floats(allow_nan=False, allow_infinity=False),
                    st.integers(min_value=-2**70, max_value=2**70), st.floats(min_value=-600, max_value=2100))
values = st.one_of(numbers, st.booleans(), st.none(), st.text(max_size=12),
                   st.sampled_from(["car", "ebike", "debris", "other", "unknown", "Car", "2026-05-01T08:30:00+08:00"]),
                   st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def model_verdict(model: type[ReadingPayload], obj: dict[str, Any]) -> tuple[Any, ...] | None:
    try:
        body = model.model_validate(obj)
    except ValidationError:
        return None
    return body.measured(), body.ts, body.seq, len(body.model_extra or ())


@st.composite
def payloads(draw: st.DrawFn, valid_numbers: bool = False) -> tuple[DeviceType, dict[str, Any]]:
    device_type = draw(st.sampled_from(TYPES))
    model = CATALOG[device_type].payload
    names = sorted(model.model_fields)
    chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
    obj: dict[str, Any] = {}
    for name in chosen:
        if valid_numbers:
            obj[name] = draw(_plausible(model, name))
        else:
            obj[name] = draw(values)
    extras = draw(st.dictionaries(st.sampled_from(["extra", "firmware", "x", "level", "note"]), values, max_size=2))
    for k, v in extras.items():
        obj.setdefault(k, v)
    return device_type, obj


def _plausible(model: type[ReadingPayload], name: str) -> st.SearchStrategy[Any]:
    """Values of a field's own type, mostly in range: what a device sends."""
    annotation = str(model.model_fields[name].annotation)
    if name == "ts":
        return st.one_of(st.integers(min_value=0, max_value=2**45), st.just("2026-05-01T08:30:00+08:00"))
    if name == "seq":
        return st.one_of(st.integers(min_value=0, max_value=MAX_SEQ), st.sampled_from([-1, MAX_SEQ + 1]))
    if "bool" in annotation:
        return st.booleans()
    if "Literal" in annotation:
        return st.sampled_from(["car", "ebike", "debris", "other", "unknown", "bus"])
    return st.one_of(st.floats(min_value=-600, max_value=45_000),
                     st.integers(min_value=-(2**53), max_value=2**53), st.sampled_from(EDGES[:20]))


def test_every_catalog_type_has_a_quick_check() -> None:
    missing = [str(t) for t in TYPES if compile_check(CATALOG[t].payload) is None]
    assert not missing, f"no quick check for {missing}: readings of these types take the slower pydantic path"


@PROPERTY
@given(payloads())
def test_what_the_check_accepts_the_model_accepts_alike(case: tuple[DeviceType, dict[str, Any]]) -> None:
    device_type, obj = case
    model = CATALOG[device_type].payload
    check = compile_check(model)
    assert check is not None
    quick = check(obj)
    if quick is not None:
        assert quick == model_verdict(model, obj), obj


@PROPERTY
@given(payloads(valid_numbers=True))
def test_what_the_model_accepts_the_check_accepts(case: tuple[DeviceType, dict[str, Any]]) -> None:
    device_type, obj = case
    model = CATALOG[device_type].payload
    check = compile_check(model)
    assert check is not None
    verdict = model_verdict(model, obj)
    quick = check(obj)
    assert quick == verdict, obj


@PROPERTY
@given(payloads(), st.sampled_from(["cb/linfen-yicun/{t}/dev-1/telemetry", "cb/bench/{t}/sd-b01-0501/telemetry"]))
def test_the_decoder_answers_alike_with_and_without_the_check(case: tuple[DeviceType, dict[str, Any]],
                                                              topic: str) -> None:
    device_type, obj = case
    try:
        body = orjson.dumps(obj)
    except TypeError:  # an int beyond 64 bits: not JSON orjson writes; send it as text
        body = repr(obj).encode()
    t = topic.format(t=device_type)
    assert QUICK.decode(t, body) == MODEL_ONLY.decode(t, body)


@pytest.mark.parametrize("obj", [
    {"current_a": True},  # a bool is not a number
    {"current_a": "2"},
    {"current_a": 100.5},
    {"current_a": 2, "seq": -1},
    {"current_a": 2, "seq": MAX_SEQ + 1},
    {"current_a": 2, "charging": 1},
    {"current_a": 2, "power_w": 2**53 + 1},  # the model's to judge: exact as a float or not
    {"voltage_v": 220.0},  # current_a is required
    {"current_a": 2, "ts": 1.5},
    {"current_a": 2, "voltage_v": None},
])
def test_the_check_leaves_doubtful_payloads_to_the_model(obj: dict[str, Any]) -> None:
    check = compile_check(CATALOG[DeviceType("ebike_charger")].payload)
    assert check is not None
    assert check(obj) is None


def test_a_model_validator_still_decides() -> None:
    check = compile_check(CATALOG[DeviceType("smoke_detector")].payload)
    assert check is not None
    assert check({"temperature_c": 20.0}) is None  # neither obscuration_pct_m nor alarm
    assert check({"alarm": False, "extra": 1}) == ({"alarm": False}, None, None, 1)
