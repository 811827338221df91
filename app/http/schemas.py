"""What the alert and silence routes answer, as /openapi.json documents it (docs/alerts.md has the alert object).

Each model allows fields it does not name, so a field added to the alert object reaches clients before it is
described here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from kernel.alerting import AlertStatus, Level


class AlertOut(BaseModel):
    """The alert object."""

    model_config = ConfigDict(extra="allow")
    id: str
    rule: str
    level: Level
    status: AlertStatus
    community: str
    building: str
    grid: str
    device_id: str
    device_type: str
    value: float | None
    started_at: str | None
    updated_at: str | None
    summary: str


class HistoryOut(BaseModel):
    """One event of an alert's life."""

    model_config = ConfigDict(extra="allow")
    at: str | None
    event: str
    level: str
    actor: str | None
    note: str | None


class NotificationStateOut(BaseModel):
    """One notification of an alert and how its delivery went."""

    model_config = ConfigDict(extra="allow")
    event_id: str
    recipient: str
    event: str
    channel: int
    status: str
    attempts: int
    last_error: str | None
    delivered_at: str | None
    created_at: str | None


class AlertDetailOut(AlertOut):
    """One alert with who took it on, its history and its notifications."""

    fingerprint: str
    tier: str
    acknowledged_by: str | None
    acknowledged_at: str | None
    ack_note: str | None
    resolved_by: str | None
    resolved_at: str | None
    resolve_note: str | None
    history: list[HistoryOut]
    notifications: list[NotificationStateOut]
    # An orange or red building alert: what is on hand (CONTRACT §13); a red one's door knocks, each to
    # those who may see the residents, the counts to everyone who sees the alert.
    incident: str | None = None
    shelters: list[dict[str, Any]] | None = None
    supplies: list[dict[str, Any]] | None = None
    door_knocks: list[dict[str, Any]] | None = None
    door_knocks_summary: dict[str, Any] | None = None


class SilenceAnswer(BaseModel):
    """A silence: what it mutes, when, why and who set it."""

    model_config = ConfigDict(extra="allow")
    id: str
    community: str | None
    building: str | None
    device_id: str | None
    rule: str | None
    starts_at: str | None
    ends_at: str | None
    reason: str
    created_by: str
    created_at: str | None
