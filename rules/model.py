"""What every rule spec is built of: conditions on a device's latest values, durations, and the
keys and hooks every rule kind has (rules.kinds adds each kind's own)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from kernel.alerting import Measure
from kernel.durations import parse_duration
from kernel.ids import DeviceType

Duration = Annotated[float, Field(ge=0)]
# Where in a rule something is named: keys and list indexes below the rule.
Where = tuple[str | int, ...]
Named = list[tuple[Where, str]]


class Spec(BaseModel):
    """A part of a rules file: unknown keys are errors, and it never changes once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Compare(Spec):
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

    def fields(self, where: Where = ()) -> Named:
        """The field it reads, with where it is named."""
        return [((*where, "field"), self.field)]


class AnyOf(Spec):
    """True when any part is."""

    any: list[Condition] = Field(min_length=1)

    def fields(self, where: Where = ()) -> Named:
        """The fields its parts read."""
        return [f for i, c in enumerate(self.any) for f in c.fields((*where, "any", i))]


class AllOf(Spec):
    """True when every part is."""

    all: list[Condition] = Field(min_length=1)

    def fields(self, where: Where = ()) -> Named:
        """The fields its parts read."""
        return [f for i, c in enumerate(self.all) for f in c.fields((*where, "all", i))]


class Not(Spec):
    """True when the part is false (and its fields are known)."""

    not_: Condition = Field(alias="not")

    def fields(self, where: Where = ()) -> Named:
        """The fields its part reads."""
        return self.not_.fields((*where, "not"))


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
CONDITION_TAGS = frozenset({"Compare", "AnyOf", "AllOf", "Not"})


class Located(ValueError):
    """A validation problem at a place below the validated object (keys and list indexes)."""

    def __init__(self, loc: Where, message: str) -> None:
        super().__init__(message)
        self.loc = loc


class RuleBase(Spec):
    """The keys every rule has, and what the engine and the rules file's checks ask of every kind.

    A kind (a module of rules.kinds) adds its keys with a `kind: Literal["name"]` and overrides the
    hooks it has."""

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

    def per_device(self) -> bool:
        """Whether a machine of this rule watches each device (not a group of them)."""
        return True

    def follows(self) -> str | None:
        """The rule whose transitions this one counts over a group (correlation)."""
        return None

    def grouped_by(self) -> Literal["building", "community"] | None:
        """For a rule that follows another over a group: whether a group is a building or a community."""
        return None

    def while_rules(self) -> list[str]:
        """Rules whose firing elsewhere changes this rule's level (state rules' `while_firing`)."""
        return []

    def relative_to(self) -> str | None:
        """The rule whose level this rule's level is relative to (for the same device)."""
        return None

    def references(self) -> Named:
        """Every other rule this one names, with where in the rule it is named (checked to exist)."""
        return []

    def measure(self) -> Measure | None:
        """What an alert of this rule measures (its value's field, and window), for its summary."""
        return None

    def fields(self) -> Named:
        """Every reading field this rule reads, with where in the rule it is named (checked against
        the fields its device types report)."""
        return []
