"""Rule specs: the YAML rules file, validated by pydantic, with overrides per type, place or device.

Each rule's model is its kind's (rules.kinds); the checks across rules (ids unique, references
defined, fields reported by the rule's device types) ask each rule through the hooks of
rules.model.RuleBase."""

from __future__ import annotations

from functools import reduce
from importlib import resources
from operator import or_
from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from kernel.devices import CATALOG, COMMON_FIELDS
from kernel.errors import ConfigError
from kernel.ids import DeviceType
from kernel.settings import locate_line, parse_yaml
from rules.kinds import KINDS
from rules.model import CONDITION_TAGS, Located, RuleBase, Spec


def _kind(value: Any) -> str:
    """A rule without `kind` is a state rule."""
    if isinstance(value, dict):
        return str(value.get("kind", "state"))
    return str(getattr(value, "kind", "state"))


# The union of every registered kind's model, tagged by `kind`.
Rule: Any = Annotated[
    reduce(or_, (Annotated[entry.spec, Tag(name)] for name, entry in KINDS.items())),
    Discriminator(_kind, custom_error_type="rule_kind",
                  custom_error_message=f"kind is one of {', '.join(KINDS)} (state is the default)"),
]


class Match(Spec):
    """Which devices an override applies to; every key given must match."""

    device_type: DeviceType | None = None
    community: str | None = None
    building: str | None = None
    device: str | None = None

    def specificity(self) -> int:
        """Broader overrides apply first, narrower ones win: type < community < building < device."""
        return ((self.device_type is not None) + 2 * (self.community is not None)
                + 4 * (self.building is not None) + 8 * (self.device is not None))


class Override(Spec):
    """New values for some keys of one rule, for the matching devices."""

    rule: str
    match: Match = Match()
    set: dict[str, Any]


class RuleSet(Spec):
    """A whole rules file."""

    # Each type's own interval from the catalog; a file's entries replace those of the types it names.
    expected_interval_s: dict[DeviceType, float] = Field(default_factory=lambda: {
        t: k.expected_interval_s for t, k in CATALOG.items()})
    # A latest value stands for this many expected intervals; a pending `for` expires after that.
    stale_after_intervals: float = Field(default=3.0, gt=0)
    rules: list[Rule] = Field(default_factory=list)
    overrides: list[Override] = Field(default_factory=list)

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
            for where, name in r.fields():
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
            for where, ref in r.references():
                if ref not in known:
                    raise Located(("rules", n, *where), f"rule {r.id!r} refers to rule {ref!r}, which is not defined")
        for n, o in enumerate(self.overrides):
            if o.rule not in known:
                raise Located(("overrides", n, "rule"), f"an override names rule {o.rule!r}, which is not defined")
        return self

    def rule(self, rule_id: str) -> RuleBase:
        """A rule by id."""
        found: RuleBase = next(r for r in self.rules if r.id == rule_id)
        return found


_UNION_STEPS = frozenset({*KINDS, *CONDITION_TAGS})


def default_rules_text() -> str:
    """The built-in rules file."""
    return resources.files("rules").joinpath("defaults.yaml").read_text(encoding="utf-8")


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
