"""The one narrow interface through which the API (app/http) and the pages (app/web) reach the running
service: queries and actions over plain JSON-ready values, never the service's internals. An action
the service does not allow raises kernel.errors.Refused, with its reason."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from kernel.settings import Recipient, Scope, Settings
from kernel.site import Site

if TYPE_CHECKING:
    from app.drill_view import DrillView
    from app.resilience.card import Scorecard
    from app.resource_view import ResourceView
    from app.source_view import SourceView
    from app.whistle_view import WhistleView
    from rules.spec import RuleSet


@dataclass(frozen=True, slots=True)
class NotificationOut:
    """A committed notification: its id, recipient, and the notification object of docs/alerts.md."""

    event_id: str
    recipient: str
    community: str
    grid: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class AlertChange:
    """One committed change of one alert, numbered for the live stream's replay."""

    seq: int
    community: str
    grid: str
    data: bytes  # {"event": ..., "at": ..., "alert": {...}}


@dataclass(frozen=True, slots=True)
class SilenceOut:
    """A silence as the service keeps it."""

    id: str
    community: str | None
    building: str | None
    device_id: str | None
    rule: str | None
    starts_ns: int
    ends_ns: int
    reason: str
    created_by: str
    created_ns: int


@dataclass(frozen=True, slots=True)
class ActedBy:
    """Who takes an action, for the audit log: their role and the client address they call from."""

    role: str
    client: str | None


class ServiceView(Protocol):
    """What the HTTP layer may ask of and do to the running service."""

    settings: Settings
    site: Site
    whistles: WhistleView  # 吹哨报到: whistles and work orders
    sources: SourceView  # devices that report through other systems: pushes in, unregistered ones out
    resources: ResourceView  # shelters, supplies, door knocks (CONTRACT §13)
    resilience: Scorecard  # the communities' resilience scorecards (CONTRACT §13, docs/resilience.md)
    drills: DrillView | None  # drills (docs/drills.md); None where they are not run (a cluster)

    def now_ns(self) -> int:
        """The service clock."""
        ...

    @property
    def stopping(self) -> asyncio.Event:
        """Set once shutdown has begun."""
        ...

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Each part's state, and whether all are up."""
        ...

    def state_unwritable(self) -> str | None:
        """Why the state database cannot be written now (a full, read-only or failing disk), or None."""
        ...

    def ruleset(self) -> RuleSet:
        """The rules running now (what each rule measures, for the pages)."""
        ...

    def metrics_text(self) -> str:
        """Prometheus exposition text."""
        ...

    def devices(self, scope: Scope | None) -> list[dict[str, Any]]:
        """Every device's live state in scope."""
        ...

    def communities(self, scope: Scope | None) -> list[dict[str, Any]]:
        """Each community's live state in scope."""
        ...

    def rejections(self, scope: Scope | None, limit: int, reason: str | None) -> list[dict[str, Any]]:
        """Latest rejected messages in scope, newest first."""
        ...

    async def dead_letters(self, limit: int) -> list[dict[str, Any]]:
        """Points the reading store refused."""
        ...

    async def alerts(self, scope: Scope | None, *, status: str | None = None, level: str | None = None,
                     community: str | None = None, rule: str | None = None,
                     limit: int = 200) -> list[dict[str, Any]]:
        """Alerts in scope, newest first."""
        ...

    def open_alerts(self, scope: Scope | None) -> list[dict[str, Any]]:
        """Alerts not yet resolved in scope (from memory), with who acknowledged them and who was told."""
        ...

    async def alert(self, scope: Scope | None, alert_id: str) -> dict[str, Any] | None:
        """One alert with its history and notifications; None if absent or outside scope."""
        ...

    async def readings(self, scope: Scope | None, device_id: str, since_ns: int,
                       limit: int) -> list[tuple[int, dict[str, Any]]] | None:
        """A device's recent readings from the reading store; None if the device is unknown or outside scope
        (Refused, unavailable, when the store does not answer)."""
        ...

    async def acknowledge(self, alert_id: str, actor: str, note: str | None, by: ActedBy | None = None,
                          via: str = "api") -> dict[str, Any]:
        """Acknowledge an alert (Refused when its state does not allow it); `by` for the audit log,
        `via` says how, for 叫应's ledger."""
        ...

    async def ledger(self, scope: Scope | None, alert_id: str) -> list[dict[str, Any]] | None:
        """The 叫应 ledger of an alert (every call and channel); None if absent or outside scope."""
        ...

    async def call_of_send(self, event_id: str) -> tuple[str, str, str] | None:
        """(alert id, person, channel type) of one send of a call, or None."""
        ...

    def set_answer_link_maker(self, make: Callable[[str, str], str | None]) -> None:
        """How a call to a person links to the answer page (the SMS's link)."""
        ...

    async def resolve(self, alert_id: str, actor: str, note: str | None,
                      by: ActedBy | None = None) -> dict[str, Any]:
        """Resolve an alert."""
        ...

    async def hand_over(self, alert_id: str, actor: str, to: str, note: str | None,
                        by: ActedBy | None = None) -> dict[str, Any]:
        """Hand an alert over to another recipient, who is told of it."""
        ...

    def recipients(self) -> list[Recipient]:
        """Everybody who can be told of alerts."""
        ...

    def silences(self) -> list[SilenceOut]:
        """Every silence, newest first."""
        ...

    async def add_silence(self, silence: SilenceOut, by: ActedBy | None = None) -> SilenceOut:
        """Record a silence."""
        ...

    def find_silence(self, silence_id: str) -> SilenceOut | None:
        """One silence."""
        ...

    async def expire_silence(self, silence_id: str, actor: str, by: ActedBy | None = None) -> SilenceOut:
        """End a silence now."""
        ...

    async def audit(self, *, since_ns: int | None, actor: str | None, action: str | None, after: int | None,
                    limit: int) -> list[dict[str, Any]]:
        """Entries of the audit log matching every filter given, oldest first."""
        ...

    def subscribe_notifications(self, listener: Callable[[list[NotificationOut]], None]) -> Callable[[], None]:
        """Call listener with each batch of committed notifications; returns the unsubscribe function."""
        ...

    def subscribe_changes(self, listener: Callable[[list[AlertChange]], None]) -> Callable[[], None]:
        """Call listener with each batch of committed alert changes; returns the unsubscribe function."""
        ...

    def changes_after(self, seq: int) -> list[AlertChange] | None:
        """Changes after seq still in the replay buffer; None when some of them are no longer kept."""
        ...

    def last_change(self) -> int:
        """The newest change's number."""
        ...

    def set_link_maker(self, make: Callable[[str, str], str | None]) -> None:
        """How a notification to a recipient links to an alert's page."""
        ...
