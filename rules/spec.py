"""Rule specs: the YAML rules file, validated by pydantic, with overrides per type, place or device."""

from __future__ import annotations

from functools import reduce
from operator import or_
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from kernel.alerting import Level
from kernel.devices import CATALOG, COMMON_FIELDS
from kernel.durations import parse_duration
from kernel.errors import ConfigError
from kernel.ids import DeviceType
from kernel.settings import locate_line, parse_yaml

Duration = Annotated[float, Field(ge=0)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Compare(_Spec):
    """One test of one field: exactly one of at_least, above, at_most, below, is, equals.

    `if_missing` is the result while the device has never reported the field (default: unknown),
    for optional flags whose absence means false, like a detector's `self_test`.
    """

    field: str
    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None
    below: float | None = None
    is_: bool | None = Field(default=None, alias="is")
    equals: str | None = None
    if_missing: bool | None = None

    @model_validator(mode="after")
    def _one_op(self) -> Compare:
        ops = [n for n in ("at_least", "above", "at_most", "below", "is_", "equals") if getattr(self, n) is not None]
        if len(ops) != 1:
            raise ValueError("a comparison needs exactly one of at_least, above, at_most, below, is, equals")
        return self


class AnyOf(_Spec):
    """True when any part is."""

    any: list[Condition] = Field(min_length=1)


class AllOf(_Spec):
    """True when every part is."""

    all: list[Condition] = Field(min_length=1)


class Not(_Spec):
    """True when the part is false (and its fields are known)."""

    not_: Condition = Field(alias="not")


def _condition_kind(value: Any) -> str:
    """Which condition a mapping is, by its key, so an error points inside the right one."""
    if isinstance(value, dict):
        return next((tag for key, tag in (("any", "AnyOf"), ("all", "AllOf"), ("not", "Not")) if key in value),
                    "Compare")
    return type(value).__name__


Condition = Annotated[
    Annotated[Compare, Tag("Compare")] | Annotated[AnyOf, Tag("AnyOf")] | Annotated[AllOf, Tag("AllOf")]
    | Annotated[Not, Tag("Not")],
    Discriminator(_condition_kind),
]


class Located(ValueError):
    """A validation problem at a place below the validated object (keys and list indexes)."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


class WhileFiring(_Spec):
    """Holds while any of `rules` fires for another device in the same building or community."""

    rules: list[str] = Field(min_length=1)
    within: Literal["building", "community"] = "community"


class LevelSpec(_Spec):
    """A level and what raises a place to it."""

    level: Level
    when: Condition
    for_: Duration = Field(default=0.0, alias="for")
    while_firing: WhileFiring | None = None

    @field_validator("for_", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)


class RelativeLevel(_Spec):
    """A level `steps` above another rule's current level for the same device, at least `at_least`."""

    above_rule: str
    steps: int = Field(default=1, ge=0, le=3)
    at_least: Level = Level.YELLOW


class _RuleBase(_Spec):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
    description: str = ""
    device_types: list[DeviceType] | Literal["all"] = "all"
    clear_for: Duration = 0.0
    reminder_every: Duration | None = None

    @field_validator("clear_for", "reminder_every", mode="before")
    @classmethod
    def _durations(cls, v: Any) -> float | None:
        return None if v is None else parse_duration(v)

    def applies_to(self, device_type: str) -> bool:
        """Whether the rule watches devices of this type."""
        return self.device_types == "all" or device_type in self.device_types

    # What the engine asks of every kind; a kind overrides what it has.
    def per_device(self) -> bool:
        """Whether a machine of this rule watches each device (not a group of them)."""
        return True

    def follows(self) -> str | None:
        """The rule whose transitions this one counts over a group (correlation)."""
        return None

    def while_rules(self) -> list[str]:
        """Rules whose firing elsewhere changes this rule's level (state rules' `while_firing`)."""
        return []

    def relative_to(self) -> str | None:
        """The rule whose level this rule's level is relative to (for the same device)."""
        return None


class StateRule(_RuleBase):
    """Levels from conditions on the latest readings, with `for` durations and hysteresis."""

    kind: Literal["state"] = "state"
    levels: list[LevelSpec] = Field(min_length=1)
    hysteresis: dict[str, float] = {}

    def while_rules(self) -> list[str]:
        """Rules named by the levels' `while_firing`."""
        return [ref for lv in self.levels if lv.while_firing for ref in lv.while_firing.rules]

    @model_validator(mode="after")
    def _ordered(self) -> StateRule:
        ranks = [(lv.level.rank, lv.for_) for lv in self.levels]
        if ranks != sorted(ranks):
            raise Located(("levels",), "levels must be listed from least to most serious")
        return self


class RateRule(_RuleBase):
    """A field rising by at least `rise` within `within` (in the readings' time)."""

    kind: Literal["rate"]
    field: str
    rise: float = Field(gt=0)
    within: Duration
    while_: Condition | None = Field(default=None, alias="while")
    level: Level | RelativeLevel
    hysteresis: float = Field(default=0.0, ge=0)

    @field_validator("within", mode="before")
    @classmethod
    def _within(cls, v: Any) -> float:
        return parse_duration(v)

    def relative_to(self) -> str | None:
        """The rule a relative level builds on."""
        return self.level.above_rule if isinstance(self.level, RelativeLevel) else None


class OfflineRule(_RuleBase):
    """No reading for `after_intervals` × the type's expected interval, or a status `offline`."""

    kind: Literal["offline"]
    after_intervals: float = Field(default=3.0, gt=0)
    level: Level = Level.BLUE
    level_by_type: dict[DeviceType, Level] = {}


class CorrelationRule(_RuleBase):
    """`source` firing for at least `at_least` devices of one building (or community) within `within`."""

    kind: Literal["correlation"]
    source: str
    group_by: Literal["building", "community"] = "building"
    at_least: int = Field(default=2, ge=2)
    within: Duration
    level: Level

    @field_validator("within", mode="before")
    @classmethod
    def _within(cls, v: Any) -> float:
        return parse_duration(v)

    def per_device(self) -> bool:
        """A correlation watches a building or community, not a device."""
        return False

    def follows(self) -> str | None:
        """The source rule."""
        return self.source


def _kind(value: Any) -> str:
    """A rule without `kind` is a state rule."""
    if isinstance(value, dict):
        return str(value.get("kind", "state"))
    return str(getattr(value, "kind", "state"))


# The rule kinds: kind -> spec model (rules.state.MACHINES holds each kind's machine factory).
RULE_KINDS: dict[str, type[_RuleBase]] = {
    "state": StateRule, "rate": RateRule, "offline": OfflineRule, "correlation": CorrelationRule,
}

Rule: Any = Annotated[
    reduce(or_, (Annotated[model, Tag(kind)] for kind, model in RULE_KINDS.items())),
    Discriminator(_kind, custom_error_type="rule_kind",
                  custom_error_message=f"kind is one of {', '.join(RULE_KINDS)} (state is the default)"),
]


class Match(_Spec):
    """Which devices an override applies to; every key given must match."""

    device_type: DeviceType | None = None
    community: str | None = None
    building: str | None = None
    device: str | None = None

    def specificity(self) -> int:
        """Broader overrides apply first, narrower ones win: type < community < building < device."""
        return ((self.device_type is not None) + 2 * (self.community is not None)
                + 4 * (self.building is not None) + 8 * (self.device is not None))


class Override(_Spec):
    """New values for some keys of one rule, for the matching devices."""

    rule: str
    match: Match = Match()
    set: dict[str, Any]


class RuleSet(_Spec):
    """A whole rules file."""

    # Each type's own interval from the catalog; a file's entries replace those of the types it names.
    expected_interval_s: dict[DeviceType, float] = Field(default_factory=lambda: {
        t: k.expected_interval_s for t, k in CATALOG.items()})
    # A latest value stands for this many expected intervals; a pending `for` expires after that.
    stale_after_intervals: float = Field(default=3.0, gt=0)
    rules: list[Rule] = []
    overrides: list[Override] = []

    @field_validator("expected_interval_s", mode="after")
    @classmethod
    def _catalog_intervals(cls, given: dict[DeviceType, float]) -> dict[DeviceType, float]:
        return {t: k.expected_interval_s for t, k in CATALOG.items()} | given

    def interval_s(self, device_type: str) -> float:
        """How often a device of this type reports when nothing happens (seconds)."""
        found = self.expected_interval_s.get(device_type)  # type: ignore[call-overload]
        return 60.0 if found is None else float(found)

    @model_validator(mode="after")
    def _fields_known(self) -> RuleSet:
        # A rule for named types may read only their fields; a rule for all types may read any.
        for n, r in enumerate(self.rules):
            if r.device_types == "all":
                continue
            known = set(COMMON_FIELDS).union(*(CATALOG[t].fields for t in r.device_types))
            for where, name in _fields_of(r):
                if name not in known:
                    types = ", ".join(r.device_types)
                    raise Located(("rules", n, *where),
                                  f"rule {r.id!r} reads field {name!r}, which no device of {types} reports; "
                                  f"their fields: {', '.join(sorted(known))}")
        return self

    @model_validator(mode="after")
    def _references(self) -> RuleSet:
        ids = [r.id for r in self.rules]
        for n, i in enumerate(ids):
            if i in ids[:n]:
                raise Located(("rules", n, "id"), f"rule id {i!r} appears twice")
        known = set(ids)
        for n, r in enumerate(self.rules):
            refs: list[tuple[tuple[str | int, ...], str]] = []
            if isinstance(r, CorrelationRule):
                refs = [(("source",), r.source)]
            elif isinstance(r, RateRule) and isinstance(r.level, RelativeLevel):
                refs = [(("level", "above_rule"), r.level.above_rule)]
            elif isinstance(r, StateRule):
                refs = [(("levels", k, "while_firing", "rules", j), x) for k, lv in enumerate(r.levels)
                        if lv.while_firing for j, x in enumerate(lv.while_firing.rules)]
            for where, ref in refs:
                if ref not in known:
                    raise Located(("rules", n, *where), f"rule {r.id!r} refers to rule {ref!r}, which is not defined")
        for n, o in enumerate(self.overrides):
            if o.rule not in known:
                raise Located(("overrides", n, "rule"), f"an override names rule {o.rule!r}, which is not defined")
        return self

    def rule(self, rule_id: str) -> StateRule | RateRule | OfflineRule | CorrelationRule:
        """A rule by id."""
        found: StateRule | RateRule | OfflineRule | CorrelationRule = next(r for r in self.rules if r.id == rule_id)
        return found


def _condition_fields(cond: Any, where: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], str]]:
    if isinstance(cond, Compare):
        return [((*where, "field"), cond.field)]
    if isinstance(cond, AnyOf | AllOf):
        parts = cond.any if isinstance(cond, AnyOf) else cond.all
        key = "any" if isinstance(cond, AnyOf) else "all"
        return [f for i, c in enumerate(parts) for f in _condition_fields(c, (*where, key, i))]
    if isinstance(cond, Not):
        return _condition_fields(cond.not_, (*where, "not"))
    return []


def _fields_of(rule: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """Every reading field a rule reads, with where in the rule it is named."""
    if isinstance(rule, StateRule):
        out = [f for k, lv in enumerate(rule.levels) for f in _condition_fields(lv.when, ("levels", k, "when"))]
        return out + [(("hysteresis", name), name) for name in rule.hysteresis]
    if isinstance(rule, RateRule):
        out = [(("field",), rule.field)]
        return out + (_condition_fields(rule.while_, ("while",)) if rule.while_ is not None else [])
    return []


_UNION_STEPS = frozenset({*RULE_KINDS, "Compare", "AnyOf", "AllOf", "Not"})


def parse_rules(text: str, *, source: str = "rules") -> RuleSet:
    """Parse and validate a rules file; ConfigError with file:line on any problem."""
    raw = parse_yaml(text, source)
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a rules file is a mapping with `rules:` (and optionally `overrides:`)")
    try:
        ruleset = RuleSet.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, Located):
            loc += cause.loc
        # Tagged-union and alias steps in pydantic's path are not keys of the file.
        keys = tuple(k for k in loc if not (isinstance(k, str) and (k in _UNION_STEPS or "[" in k)))
        line = locate_line(text, keys)
        where = f"{source}:{line}" if line else source
        path = ".".join(str(k) for k in keys) or "(top level)"
        raise ConfigError(f"{where}: {path}: {err['msg'].removeprefix('Value error, ')}") from None
    for i, o in enumerate(ruleset.overrides):
        try:
            apply_override(ruleset.rule(o.rule), o.set)
        except ValueError as exc:
            line = locate_line(text, ("overrides", i, "set"))
            raise ConfigError(f"{source}:{line}: overrides.{i}.set: {exc}") from None
    return ruleset


def apply_override(rule: Any, values: dict[str, Any]) -> Any:
    """The rule with some keys replaced, validated again; ValueError with the reason otherwise."""
    if "id" in values or "kind" in values:
        raise ValueError("an override cannot change a rule's id or kind")
    data = rule.model_dump(by_alias=True) | values
    try:
        return type(rule).model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ValueError(f"{'.'.join(map(str, err['loc']))}: {err['msg'].removeprefix('Value error, ')}") from None


def with_overrides(ruleset: RuleSet, raw: list[dict[str, Any]], *, source: str) -> RuleSet:
    """The ruleset with more overrides (e.g. from the site file), after its own; ConfigError naming
    the override otherwise."""
    extra: list[Override] = []
    for i, item in enumerate(raw):
        try:
            o = Override.model_validate(item)
            if o.rule not in {r.id for r in ruleset.rules}:
                raise ValueError(f"rule {o.rule!r} is not defined")
            apply_override(ruleset.rule(o.rule), o.set)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ConfigError(f"{source}: rule_overrides.{i}.{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
        except ValueError as exc:
            raise ConfigError(f"{source}: rule_overrides.{i}: {exc}") from None
        extra.append(o)
    return ruleset.model_copy(update={"overrides": [*ruleset.overrides, *extra]}) if extra else ruleset
