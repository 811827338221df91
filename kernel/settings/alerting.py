"""How alerts are routed, inhibited and answered (叫应)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from kernel.ids import Identifier
from kernel.settings.base import _Model

RouteKey = Literal["level", "rule", "device_type", "community", "grid", "building"]
TierName = Literal["grid_worker", "community", "street_office", "bureau"]


class RouteSettings(_Model):
    """A node of the routing tree: alerts matching every key of `match` (values listed) take this
    route. Options not given are inherited from the parent; the root carries the defaults of docs/alerts.md."""

    name: str | None = None
    match: dict[RouteKey, list[str]] = {}
    # Also tell these recipients (by id), at every tier.
    recipients: list[Identifier] = []
    # Escalate no higher than this tier.
    max_tier: TierName | None = None
    ack_timeout_s: dict[Literal["blue", "yellow", "orange", "red"], float] | None = None
    # Go on to the next sibling route after matching this one.
    continue_: bool = Field(default=False, alias="continue")
    routes: list[RouteSettings] = []


class InhibitSettings(_Model):
    """While an alert of a `source` rule fires, alerts of `target` rules at the same `equal` places
    say nothing to the recipients the source already tells."""

    source: list[str] = Field(min_length=1)
    target: list[str] = Field(min_length=1)
    equal: list[Literal["community", "building", "grid", "device_id"]] = ["community", "building"]


class AnswerSettings(_Model):
    """叫应, call until answered (docs/response.md): alerts at or above `min_level` must be answered by
    every duty called, within the level's deadline; unanswered, the B person, then the next tier's duties."""

    min_level: Literal["blue", "yellow", "orange", "red"] = "orange"
    deadline_s: dict[Literal["blue", "yellow", "orange", "red"], float] = {"red": 300.0, "orange": 600.0,
                                                                          "yellow": 900.0, "blue": 1800.0}
    # A roster verified longer ago than this is reported to its community (rule service.roster_stale).
    roster_max_age_days: int = Field(default=365, ge=1)
    # The key a called person presses in the voice call to answer.
    voice_answer_key: str = Field(default="1", pattern=r"^[0-9*#]$")
    # The secret part of the voice provider's callback URL (POST /api/v1/answer/voice/{secret});
    # none: no voice callback is taken.
    voice_callback_secret: str | None = Field(default=None, min_length=16)

    @field_validator("deadline_s")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        for level, seconds in value.items():
            if seconds <= 0:
                raise ValueError(f"the deadline of {level} must be more than 0 seconds")
        return value


class AlertSettings(_Model):
    """Delivery of notifications."""

    # Keep retrying a channel this long before falling back to the recipient's next channel.
    give_up_s: float = Field(default=3600.0, gt=0)
    retry_min_s: float = Field(default=1.0, gt=0)
    retry_max_s: float = Field(default=60.0, gt=0)
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    # Acknowledgement deadlines per level (docs/alerts.md): re-send and escalate one tier up after them.
    ack_timeout_s: dict[Literal["blue", "yellow", "orange", "red"], float] = {
        "red": 120.0, "orange": 300.0, "yellow": 900.0, "blue": 3600.0}
    # A storm: more than storm_threshold new alerts of one rule in one community for one recipient
    # within storm_window_s; further ones wait up to group_wait_s and go as one message with the list.
    storm_threshold: int = Field(default=5, ge=0)
    storm_window_s: float = Field(default=60.0, gt=0)
    group_wait_s: float = Field(default=5.0, ge=0)
    # The routing tree below the default route (docs/alerts.md, routing tree).
    routes: list[RouteSettings] = []
    # A building's red smoke.multi speaks for its detectors' own alarms.
    inhibit: list[InhibitSettings] = [InhibitSettings(source=["smoke.multi"],
                                                      target=["smoke.alarm", "smoke.obscuration"])]
    # 叫应: call the duty roster until somebody answers.
    answer: AnswerSettings = AnswerSettings()
