"""Property-based fuzzing: topic and payload decoding and every configuration loader.

No exception escapes; every input is a valid result or a rejection with a reason (the decoder's
Rejection with one of its codes, the loaders' one-line ConfigError).
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import orjson
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.example_secrets import example_secrets_in
from device_sim.scenario import SHIPPED, Scenario, load_scenario
from ingest.decode import REASONS, Decoder, Rejection
from kernel.clock import ManualClock
from kernel.devices import CATALOG
from kernel.errors import ConfigError
from kernel.reading import Reading, StatusUpdate
from kernel.settings import Settings, parse_settings
from kernel.site import Site
from rules.spec import RuleSet, parse_rules, with_overrides

ROOT = Path(__file__).resolve().parents[2]
SITE_TEXT = (ROOT / "examples" / "site.yaml").read_text(encoding="utf-8")
RULES_TEXT = (ROOT / "rules" / "defaults.yaml").read_text(encoding="utf-8")
SCENARIO_TEXT = (SHIPPED / "kitchen-fire.yaml").read_text(encoding="utf-8")
NOW = 1_780_000_000 * 1_000_000_000
PREFIX = "cb"
DEVICE_TYPES = frozenset(t.value for t in CATALOG)

SETTINGS = parse_settings(SITE_TEXT, env={})
DECODER = Decoder(PREFIX, Site(SETTINGS), ManualClock(NOW), max_past_s=7 * 86400, max_future_s=300)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Each loader run validates a whole site or rules file and locates errors by composing the YAML again.
LOADERS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---- strategies ---------------------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
json_values = st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                           st.dictionaries(st.text(max_size=8), kids, max_size=4)),
                           max_leaves=12)
ids = st.one_of(st.from_regex(r"[a-z0-9][a-z0-9_-]{0,8}", fullmatch=True), st.text(max_size=10),
                st.sampled_from(["linfen-yicun", "sd-b01-0501", "unknown", "", "+", "#", "a/b"]))
segments = st.one_of(ids, st.sampled_from([*sorted(DEVICE_TYPES), "telemetry", "status", "alerts", "cb"]))
topics = st.one_of(
    st.text(max_size=60),
    st.builds(lambda parts: "/".join(parts), st.lists(segments, min_size=0, max_size=7)),
    st.builds(lambda c, t, d, k: f"{PREFIX}/{c}/{t}/{d}/{k}", ids, st.sampled_from(sorted(DEVICE_TYPES)), ids,
              st.sampled_from(["telemetry", "status", "Telemetry", ""])),
)
field_names = st.sampled_from(sorted({f for k in CATALOG.values() for f in k.payload.model_fields} | {"extra"}))
readings = st.dictionaries(field_names, json_values, max_size=6)
payloads = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda v: orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS) if _dumpable(v) else b"{}", json_values),
    st.builds(lambda r: orjson.dumps(r) if _dumpable(r) else b"{}", readings),
    st.sampled_from([b"online", b"offline", b"", b"null", b"[]", b'{"ts": 1e400}', b"\xff\xfe"]),
)

DEVICE_TYPES = frozenset(t.value for t in CATALOG)


def _dumpable(value: Any) -> bool:
    try:
        orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return True


def _paths(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into a YAML document (mappings and lists)."""
    out = [here]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*here, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*here, i))
    return out


def _mutate(doc: Any, data: st.DataObject, count: int) -> Any:
    """The document with up to count nodes replaced, deleted, or given an unknown key."""
    doc = copy.deepcopy(doc)
    for _ in range(count):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = data.draw(st.sampled_from(["replace", "delete", "extra"]))
        if action == "replace":
            parent[path[-1]] = data.draw(json_values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[data.draw(st.text(max_size=8))] = data.draw(json_values)
    return doc


def _text(doc: Any, data: st.DataObject) -> str:
    try:
        return yaml.safe_dump(doc, allow_unicode=True)
    except (yaml.YAMLError, ValueError):
        return data.draw(st.text(max_size=200))


def _one_line(exc: ConfigError) -> None:
    message = str(exc)
    assert message and "\n" not in message, message


# ---- the decoder --------------------------------------------------------------------------------


@FUZZ
@given(topics, payloads)
def test_decode_never_raises_and_rejects_with_a_reason(topic: str, payload: bytes) -> None:
    """Any topic and payload: a reading, a status, None (service topics, empty status) or a rejection."""
    out = DECODER.decode(topic, payload)
    if isinstance(out, Rejection):
        assert out.reason in REASONS
        assert out.detail
        assert out.topic == topic
    elif isinstance(out, Reading):
        assert topic.startswith(f"{PREFIX}/{out.community}/{out.device_type}/{out.device_id}/")
        assert all(isinstance(k, str) for k in out.fields)
    elif isinstance(out, StatusUpdate):
        assert payload in (b"online", b"offline")
    else:
        assert out is None


@FUZZ
@given(st.sampled_from(sorted(DEVICE_TYPES)), readings)
def test_decode_of_well_addressed_readings(device_type: str, body: dict[str, Any]) -> None:
    """Readings on valid topics with the contract's field names and any values."""
    if not _dumpable(body):
        return
    out = DECODER.decode(f"{PREFIX}/linfen-yicun/{device_type}/dev-1/telemetry", orjson.dumps(body))
    assert isinstance(out, Reading | Rejection)
    if isinstance(out, Rejection):
        assert out.reason in REASONS and out.detail


# ---- the configuration loaders ------------------------------------------------------------------


@LOADERS
@given(st.data())
def test_parse_settings_accepts_or_names_the_problem(data: st.DataObject) -> None:
    """Mutations of the example site, and arbitrary text: Settings or a one-line ConfigError."""
    base = yaml.safe_load(SITE_TEXT)
    kind = data.draw(st.sampled_from(["mutated", "mutated", "text"]))
    text = (_text(_mutate(base, data, data.draw(st.integers(1, 4))), data) if kind == "mutated"
            else data.draw(st.text(max_size=300)))
    try:
        result = parse_settings(text, source="site.yaml", env={})
    except ConfigError as exc:
        _one_line(exc)
        return
    assert isinstance(result, Settings)
    example_secrets_in(result, set())  # the start-up check reads whatever the model holds


@LOADERS
@given(st.data())
def test_parse_rules_accepts_or_names_the_problem(data: st.DataObject) -> None:
    """Mutations of the built-in rules, and arbitrary text: a RuleSet or a one-line ConfigError."""
    base = yaml.safe_load(RULES_TEXT)
    kind = data.draw(st.sampled_from(["mutated", "mutated", "text"]))
    text = (_text(_mutate(base, data, data.draw(st.integers(1, 3))), data) if kind == "mutated"
            else data.draw(st.text(max_size=300)))
    try:
        result = parse_rules(text, source="rules.yaml")
    except ConfigError as exc:
        _one_line(exc)
        return
    assert isinstance(result, RuleSet)


OVERRIDE_BASE = [{"rule": "water.level", "match": {"community": "linfen-ercun", "device": "wl-garage"},
                  "set": {"levels": [{"level": "yellow", "when": {"field": "level_cm", "at_least": 5}},
                                     {"level": "orange", "when": {"field": "level_cm", "at_least": 15}}]}},
                 {"rule": "smoke.alarm", "set": {"clear_for": "1m"}}]
BUILT_IN = parse_rules(RULES_TEXT, source="rules.yaml")


@LOADERS
@given(st.data())
def test_site_rule_overrides_apply_or_name_the_problem(data: st.DataObject) -> None:
    """The site file's rule_overrides, mutated: the rules with them, or a one-line ConfigError."""
    raw = _mutate(OVERRIDE_BASE, data, data.draw(st.integers(1, 4)))
    if not isinstance(raw, list):
        return
    try:
        result = with_overrides(BUILT_IN, raw, source="site.yaml")
    except ConfigError as exc:
        _one_line(exc)
        return
    assert isinstance(result, RuleSet)


@LOADERS
@given(st.data())
def test_load_scenario_accepts_or_names_the_problem(data: st.DataObject) -> None:
    """Mutations of a shipped scenario, and arbitrary text: a Scenario or a one-line ConfigError."""
    base = yaml.safe_load(SCENARIO_TEXT)
    kind = data.draw(st.sampled_from(["mutated", "mutated", "text"]))
    text = (_text(_mutate(base, data, data.draw(st.integers(1, 3))), data) if kind == "mutated"
            else data.draw(st.text(max_size=300)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scenario.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            result = load_scenario(path)
        except ConfigError as exc:
            _one_line(exc)
            return
    assert isinstance(result, Scenario)
