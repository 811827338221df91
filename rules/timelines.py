"""Rule tests in YAML (`cbrain rules test`): a timeline of readings in, the expected transitions out.

    rules: defaults                 # or a rules file, relative to this file
    patch: {expected_interval_s: {ebike_charger: 600}}   # optional: top-level keys of the rules replaced
    # site: {communities: [...], devices: [...]}  # optional: the site, to place devices in buildings
    tests:
      - name: smoke builds up, then clears
        patch: {stale_after_intervals: 5}   # optional, for this test only (over the file's patch)
        steps:
          - {at: 0s, device: yicun/smoke_detector/sd-1, fields: {obscuration_pct_m: 6}}
          - {at: 30s, device: yicun/smoke_detector/sd-1, fields: {obscuration_pct_m: 3.5}}
          - {at: 40s, device: yicun/smoke_detector/sd-1, fields: {obscuration_pct_m: 9}, ts: -20s}  # late
          - {at: 2m, status: {device: yicun/smoke_detector/sd-1, online: false}}
          - {at: 3m, restart: true}          # a new engine from the saved state
          - {at: 4m, every: 1m, until: 10m}  # only let the clock run
        expect:
          - {at: 0s, fire: smoke.obscuration, level: yellow, device: sd-1}
          - {at: 90s, clear: smoke.obscuration, device: sd-1}
          - {at: 2m, fire: device.offline, level: yellow, device: sd-1}

`at` is the service clock from the start; a reading's `ts` defaults to its `at` (give `ts: -40s`
to make it measured 40 s before it arrives). `every: 30s, until: 8h` repeats a step at `at`,
`at` + 30 s, ... up to and including `until` (steps are played in time order; at equal times in
the order written). `until:` on a test lets the clock run on after the last step. Deadlines run
at their exact times between steps. Expectations list every transition, in order; a transition's
`at` is its own time (in reading time: a clear completing on the clock is dated when it completed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kernel.alerting import Level, Transition
from kernel.durations import parse_duration
from kernel.errors import ConfigError
from kernel.ids import DeviceType
from kernel.reading import Reading, StatusUpdate
from kernel.settings import Settings, locate_line
from kernel.site import Site
from rules.engine import Engine
from rules.spec import RuleSet, default_rules_text, parse_rules

START_NS = 1_777_600_000 * 1_000_000_000
KINDS = ("fire", "raise", "lower", "clear")


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StatusStep(_M):
    device: str
    online: bool


class Step(_M):
    """One moment of the timeline."""

    at: float
    device: str | None = None
    fields: dict[str, float | bool | str] | None = None
    ts: float = 0.0  # reading time relative to `at`
    status: StatusStep | None = None
    restart: bool = False
    every: float | None = None
    until: float | None = None

    @field_validator("at", "ts", mode="before")
    @classmethod
    def _d(cls, v: Any) -> float:
        if isinstance(v, str) and v.startswith("-"):
            return -parse_duration(v[1:])
        return parse_duration(v)

    @field_validator("every", "until", mode="before")
    @classmethod
    def _opt(cls, v: Any) -> float | None:
        return None if v is None else parse_duration(v)

    @model_validator(mode="after")
    def _reading(self) -> Step:
        if (self.device is None) != (self.fields is None):
            raise ValueError("a reading needs both device and fields")
        if (self.every is None) != (self.until is None):
            raise ValueError("a repeated step needs both every and until")
        if self.every is not None and self.every <= 0:
            raise ValueError("every must be more than 0")
        return self

    def times(self) -> list[float]:
        """When this step happens: once, or every `every` up to `until`."""
        if self.every is None or self.until is None:
            return [self.at]
        count = int((self.until - self.at) / self.every + 1e-9) + 1
        return [self.at + i * self.every for i in range(max(count, 0))]


class Expect(_M):
    """One expected transition: exactly one of fire, raise, lower, clear names the rule."""

    at: float
    fire: str | None = None
    raise_: str | None = Field(default=None, alias="raise")
    lower: str | None = None
    clear: str | None = None
    level: Level | None = None
    device: str

    @field_validator("at", mode="before")
    @classmethod
    def _d(cls, v: Any) -> float:
        return parse_duration(v)

    def kind_rule(self) -> tuple[str, str]:
        """(kind, rule) of this expectation."""
        given = [(k, r) for k, r in zip(KINDS, (self.fire, self.raise_, self.lower, self.clear), strict=True) if r]
        if len(given) != 1:
            raise ValueError("an expectation names exactly one of fire, raise, lower, clear")
        return given[0]


class Case(_M):
    """One test."""

    name: str
    patch: dict[str, Any] = {}  # like the file's `patch`, for this test only (over the file's)
    steps: list[Step]
    until: float | None = None
    expect: list[Expect]

    @field_validator("until", mode="before")
    @classmethod
    def _d(cls, v: Any) -> float | None:
        return None if v is None else parse_duration(v)


class TestFile(_M):
    """A file of rule tests."""

    rules: str = "defaults"
    patch: dict[str, Any] = {}  # top-level keys of the rules file replaced for these tests
    site: dict[str, Any] = {}
    tests: list[Case]


@dataclass
class Result:
    """The outcome of one test."""

    name: str
    passed: bool
    expected: list[str] = field(default_factory=list)
    got: list[str] = field(default_factory=list)


def load_rules(ref: str, base: Path, patch: dict[str, Any] | None = None) -> RuleSet:
    """`defaults`, or a rules file relative to base; `patch` replaces some of its top-level keys."""
    if ref == "defaults":
        text, source = default_rules_text(), "defaults.yaml"
    else:
        path = (base / ref).resolve()
        text, source = path.read_text(encoding="utf-8"), str(path)
    if patch:
        raw = yaml.safe_load(text)
        if isinstance(raw, dict):
            text, source = yaml.safe_dump({**raw, **patch}, allow_unicode=True, sort_keys=False), f"{source} (patched)"
    return parse_rules(text, source=source)


def load_tests(path: Path) -> TestFile:
    """Parse a test file; ConfigError with file:line on a problem."""
    text = path.read_text(encoding="utf-8")
    try:
        tf = TestFile.model_validate(yaml.safe_load(text))
        for case in tf.tests:
            for e in case.expect:
                e.kind_rule()
        return tf
    except ValidationError as exc:
        err = exc.errors()[0]
        line = locate_line(text, tuple(err["loc"]))
        raise ConfigError(f"{path}:{line or ''}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _fmt(kind: str, rule: str, level: str | None, device: str, at_s: float) -> str:
    lv = f" {level}" if level else ""
    return f"{_dur(at_s):>8} {kind:<5} {rule}{lv} @ {device}"


def _dur(s: float) -> str:
    if s == int(s) and s >= 60 and int(s) % 60 == 0:
        return f"{int(s) // 60}m" if int(s) % 3600 else f"{int(s) // 3600}h"
    return f"{s:g}s"


def run_case(case: Case, ruleset: RuleSet, site: Site) -> Result:
    """Play one timeline; compare transitions."""
    engine = Engine(ruleset, site, now_ns=START_NS)
    saved: dict[tuple[str, str, str], bytes] = {}
    got: list[Transition] = []

    def run_until(now: int) -> None:
        while (due := engine.next_deadline()) is not None and due <= now:
            got.extend(engine.on_tick(due))
        for row in engine.take_dirty():
            saved[row[:3]] = row[3]

    timeline = sorted(((at, i, step) for i, step in enumerate(case.steps) for at in step.times()),
                      key=lambda x: (x[0], x[1]))
    for at, _i, step in timeline:
        now = START_NS + round(at * 1e9)
        run_until(now)
        if step.restart:
            engine = Engine(ruleset, site, now_ns=now)
            engine.restore([(*k, v) for k, v in saved.items()], now)
        if step.device is not None:
            community, dtype, device_id = step.device.split("/")
            place = site.place(community, device_id)
            fields = {k: float(v) if type(v) is int else v for k, v in (step.fields or {}).items()}
            reading = Reading(community, DeviceType(dtype), device_id, now + round(step.ts * 1e9), fields,
                              building=place.building, grid=place.grid, received_ns=now)
            got.extend(engine.on_batch([reading], [], now))
        if step.status is not None:
            community, dtype, device_id = step.status.device.split("/")
            got.extend(engine.on_batch([], [StatusUpdate(community, DeviceType(dtype), device_id, step.status.online,
                                                         now)], now))
        run_until(now)
    if case.until is not None:
        run_until(START_NS + round(case.until * 1e9))
    expected = [_fmt(*e.kind_rule(), e.level.value if e.level else None, e.device, e.at) for e in case.expect]
    actual = [_fmt(t.kind.value, t.rule, t.level.value if t.level else None, t.device_id,
                   (t.at_ns - START_NS) / 1e9) for t in got]
    return Result(case.name, expected == actual, expected, actual)


def run_file(path: Path) -> list[Result]:
    """Every test of a file."""
    tf = load_tests(path)
    ruleset = load_rules(tf.rules, path.parent, tf.patch)
    raw_site = {"communities": [], **tf.site}
    try:
        site = Site(Settings.model_validate(raw_site))
    except ValidationError as exc:
        raise ConfigError(f"{path}: site: {exc.errors()[0]['msg']}") from None
    return [run_case(case, load_rules(tf.rules, path.parent, {**tf.patch, **case.patch}) if case.patch else ruleset,
                     site) for case in tf.tests]
