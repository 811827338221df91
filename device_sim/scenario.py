"""Scenario files: a timeline of what happens to which devices, and who must be told, by when.

A scenario plays in simulated time (`at: 2m` is two minutes after its start); `--speed` compresses
it through the readings' timestamps. An expectation is met when, between its `at` and `at + within`
(simulated), plus `latency` of wall-clock time for the service itself, exactly the recipients in
`told` received a notification of that rule, level, event and place (`count` alerts of them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from kernel.alerting import Event, Level
from kernel.durations import parse_duration
from kernel.errors import ConfigError
from kernel.ids import DeviceType
from kernel.orders import OrderEvent
from kernel.settings import Settings, locate_line, parse_yaml

SHIPPED = Path(__file__).resolve().parent / "scenarios"
SITE_ACTIONS = {"silence": "mute alerts (params: community, building, device_id, rule, duration, reason)",
                "ack": "acknowledge the firing alert of `rule` at the device (params: rule, note, and `by`: the "
                       "recipient who answers, with their token from the site file; the admin's when absent)",
                # 吹哨报到 (docs/response.md), through the API with an admin token.
                "whistle": "blow a whistle on the firing alert of `rule` at the device (params: rule, grade, "
                           "what, departments)",
                "report": "a summoned department signs, arrives or finishes (params: department, step, note)",
                "confirm": "confirm a finished work order and rate the department (params: department, rating, "
                           "note)"}
_SITE_PARAMS = {"silence": {"community", "building", "device_id", "rule", "duration", "reason"},
                "ack": {"rule", "note", "by"}, "whistle": {"rule", "grade", "what", "departments"},
                "report": {"department", "step", "note"}, "confirm": {"department", "rating", "note"}}
_SITE_NEEDS = {"ack": ("rule",), "whistle": ("rule", "departments"), "report": ("department", "step"),
               "confirm": ("department", "rating")}
FLEET_ACTIONS = {"offline": "the device drops off (its will, or its gateway, says offline) and stops reporting",
                 "online": "the device comes back and reports again"}
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _yaml11_keys(value: Any) -> Any:
    # YAML 1.1 reads an unquoted `on:` / `off:` key as a boolean; a behaviour's parameter means the word.
    if isinstance(value, dict):
        return {("on" if k else "off") if isinstance(k, bool) else k: v for k, v in value.items()}
    return value


class EventSpec(_Spec):
    """One thing that happens: a device behaviour, a device dropping off, or a person's action."""

    at: Duration
    device: Annotated[list[str], BeforeValidator(_as_list)] = Field(default_factory=list)
    do: str
    params: Annotated[dict[str, Any], BeforeValidator(_yaml11_keys)] = Field(default_factory=dict, alias="with")


class Place(_Spec):
    """Which notifications a line of `expect` or `allow` is about."""

    rule: str | None = None  # `work_order` for the notifications of 吹哨报到
    level: Level | None = None
    event: Annotated[list[Event | OrderEvent], BeforeValidator(_as_list)] = Field(default_factory=list)
    community: str | None = None
    building: str | None = None
    device: Annotated[list[str], BeforeValidator(_as_list)] = Field(default_factory=list)
    department: Annotated[list[str], BeforeValidator(_as_list)] = Field(default_factory=list)

    def matches(self, event: str, alert: dict[str, Any]) -> bool:
        """Whether a notification's event and alert fall under this line."""
        return ((self.rule is None or alert.get("rule") == self.rule)
                and (self.level is None or alert.get("level") == self.level.value)
                and (not self.event or event in self.event)
                and (self.community is None or alert.get("community") == self.community)
                and (self.building is None or alert.get("building") == self.building)
                and (not self.device or alert.get("device_id") in self.device)
                and (not self.department or alert.get("department") in self.department))

    def describe(self) -> str:
        """`smoke.alarm orange fired sd-b03-0101`: the line as a person reads it."""
        where = ",".join(self.device) or ",".join(self.department) or self.building or self.community or ""
        parts = [self.rule or "any rule", self.level.value if self.level else "",
                 "/".join(e.value for e in self.event), where]
        return " ".join(p for p in parts if p)


def _fired() -> list[Event | OrderEvent]:
    return [Event.FIRED]


class Expectation(Place):
    """Who must be told of what, by when."""

    name: str | None = None
    event: Annotated[list[Event | OrderEvent], BeforeValidator(_as_list)] = Field(default_factory=_fired)
    rule: str
    at: Duration
    within: Duration
    latency: Duration | None = None  # wall-clock allowance for the service; the scenario's when absent
    told: list[str]
    count: int = Field(default=1, ge=1)
    # With `told: []`: whether the service must have recorded such an alert (muted by a silence) or
    # none at all (a self-test); checked through the API. Unset: not checked.
    recorded: bool | None = None


class FaultsSpec(_Spec):
    """Transport faults of every device: lost, repeated and reordered readings, skewed clocks."""

    dropout: float = Field(default=0.0, ge=0, le=0.5)
    duplicate: float = Field(default=0.0, ge=0, le=0.5)
    reorder: float = Field(default=0.0, ge=0, le=0.5)
    skew: Duration = 0.0


class ScenarioSpec(_Spec):
    """A scenario file."""

    name: str
    title: str
    description: str = ""
    site: str | None = None
    duration: Duration
    speed: float = Field(default=1.0, gt=0, le=10_000)
    time_of_day: str | None = None
    devices: Literal["all"] | list[str] = "all"
    faults: FaultsSpec = FaultsSpec()
    latency: Duration = 2.0
    events: list[EventSpec] = Field(default_factory=list)
    expect: list[Expectation] = Field(min_length=1)
    allow: list[Place] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError("a scenario name is lower case letters, digits, - and _")
        return v

    @field_validator("time_of_day")
    @classmethod
    def _time_of_day(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^([01]\d|2[0-3]):[0-5]\d$", v):
            raise ValueError("time_of_day is HH:MM, e.g. 23:30")
        return v


@dataclass(frozen=True, slots=True)
class Scenario:
    """A loaded scenario with the file it came from."""

    spec: ScenarioSpec
    path: Path

    @property
    def site_path(self) -> Path | None:
        """The site file the scenario names, relative to the scenario file."""
        return (self.path.parent / self.spec.site).resolve() if self.spec.site else None


def find_scenario(name: str) -> Path:
    """A scenario file by path, or a shipped scenario by name."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"{name}: no such scenario file")
        return path
    shipped = SHIPPED / f"{name}.yaml"
    if not shipped.is_file():
        raise ConfigError(f"no scenario {name!r}; shipped: {', '.join(shipped_names())}")
    return shipped


def shipped_names() -> list[str]:
    """The names of the scenarios that come with the simulator."""
    return sorted(p.stem for p in SHIPPED.glob("*.yaml") if p.name != "site.yaml")


def load_scenario(path: Path) -> Scenario:
    """Parse and validate a scenario file; ConfigError with file:line on any problem."""
    text = path.read_text(encoding="utf-8")
    raw = parse_yaml(text, str(path))
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a scenario is a mapping with name, title, duration, events and expect")
    try:
        spec = ScenarioSpec.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(k for k in err["loc"] if not (isinstance(k, str) and k.startswith("function-")))
        line = locate_line(text, loc)
        where = f"{path}:{line}" if line else str(path)
        raise ConfigError(f"{where}: {'.'.join(map(str, loc))}: {err['msg'].removeprefix('Value error, ')}") from None
    return Scenario(spec, path)


def check_against_site(scenario: Scenario, settings: Settings, behaviours: dict[DeviceType, dict[str, str]],
                       probe: Any) -> None:
    """Every device, recipient and action the scenario names exists in the site; ConfigError otherwise.

    `probe(device_type, behaviour, params)` starts the behaviour on a throwaway model, so a bad
    parameter is found before anything is published."""
    spec, text = scenario.spec, scenario.path.read_text(encoding="utf-8")
    devices = {d.id: d for d in settings.devices}
    recipients = {r.id for r in settings.recipients}

    def fail(loc: tuple[Any, ...], message: str) -> None:
        line = locate_line(text, loc)
        raise ConfigError(f"{scenario.path}:{line or '?'}: {'.'.join(map(str, loc))}: {message}")

    if spec.devices != "all":
        for i, d in enumerate(spec.devices):
            if d not in devices:
                fail(("devices", i), f"device {d!r} is not in the site file")
    for i, ev in enumerate(spec.events):
        if ev.do in SITE_ACTIONS:
            unknown = sorted(set(ev.params) - _SITE_PARAMS[ev.do])
            if unknown:
                fail(("events", i, "with"), f"`{ev.do}` takes {', '.join(sorted(_SITE_PARAMS[ev.do]))}, "
                     f"not {', '.join(unknown)}")
            missing = [k for k in _SITE_NEEDS.get(ev.do, ()) if k not in ev.params]
            if missing:
                fail(("events", i, "with"), f"`{ev.do}` needs the {', '.join(missing)}")
            named = ev.params.get("departments", []) if ev.do == "whistle" else (
                [ev.params["department"]] if "department" in ev.params else [])
            for d in named if isinstance(named, list) else [named]:
                if d not in {x.id for x in settings.departments}:
                    fail(("events", i, "with"), f"department {d!r} is not in the site file")
            if ev.do == "silence" and "duration" in ev.params:
                try:
                    parse_duration(ev.params["duration"])
                except ValueError as exc:
                    fail(("events", i, "with", "duration"), str(exc))
            continue
        if not ev.device:
            fail(("events", i, "device"), f"`{ev.do}` needs a device")
        for d in ev.device:
            if d not in devices:
                fail(("events", i, "device"), f"device {d!r} is not in the site file")
            if spec.devices != "all" and d not in spec.devices:
                fail(("events", i, "device"), f"device {d!r} is not among the scenario's devices")
            if ev.do in FLEET_ACTIONS:
                continue
            dtype = devices[d].type
            if ev.do not in behaviours.get(dtype, {}):
                known = ", ".join(sorted({*behaviours.get(dtype, {}), *FLEET_ACTIONS}))
                fail(("events", i, "do"), f"a {dtype.value} cannot `{ev.do}` (it can: {known})")
            try:
                probe(dtype, ev.do, ev.params)
            except ValueError as exc:
                fail(("events", i, "with"), str(exc))
        if ev.at > spec.duration:
            fail(("events", i, "at"), "after the end of the scenario (duration)")
    for i, x in enumerate(spec.expect):
        for r in x.told:
            if r not in recipients:
                fail(("expect", i, "told"), f"recipient {r!r} is not in the site file")
        for d in x.device:
            if d not in devices:
                fail(("expect", i, "device"), f"device {d!r} is not in the site file")
        for d in x.department:
            if d not in {x.id for x in settings.departments}:
                fail(("expect", i, "department"), f"department {d!r} is not in the site file")
