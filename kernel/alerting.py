"""Alert levels and rule transitions (CONTRACT.md section 3): what the rule engine hands to alerts."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Level(StrEnum):
    """The national four-colour warning scale, least to most serious."""

    BLUE = "blue"  # IV 一般
    YELLOW = "yellow"  # III 较大
    ORANGE = "orange"  # II 重大
    RED = "red"  # I 特别重大

    @property
    def rank(self) -> int:
        """0 for blue up to 3 for red."""
        return _RANK[self]

    def above(self, steps: int = 1) -> Level:
        """The level `steps` higher, capped at red."""
        return LEVELS[min(len(LEVELS) - 1, self.rank + steps)]


LEVELS: tuple[Level, ...] = (Level.BLUE, Level.YELLOW, Level.ORANGE, Level.RED)
_RANK = {level: i for i, level in enumerate(LEVELS)}


class TransitionKind(StrEnum):
    """What happened to one rule's condition at one place."""

    FIRE = "fire"  # a new episode starts
    RAISE = "raise"  # the episode's level goes up
    LOWER = "lower"  # the episode's level goes down
    CLEAR = "clear"  # the episode ends


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of one episode of one rule at one place; `episode` is stable for the whole episode."""

    kind: TransitionKind
    rule: str
    episode: str
    level: Level | None  # the level after the transition; None when cleared
    previous: Level | None
    community: str
    building: str
    grid: str
    device_id: str  # for a rule over a building, the building's key ("building:b01")
    device_type: str
    value: float | None
    at_ns: int  # when it happened, in the readings' time where a reading caused it
    started_ns: int  # when the episode started
