"""What alerts and work orders hand to delivery: one outgoing message to one recipient.

A package says what to tell whom (a `Message`); delivery (notify/) owns how: the notification
object's bytes, the outbox table, the channels. A change posts its messages to an `Outbox`, which
returns the outbox rows to commit in the change's own transaction and what to call once that
commit is durable, so nothing is sent that a crash could forget and nothing is forgotten.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from kernel.alerting import Event
from kernel.orders import OrderEvent
from kernel.writes import Write


class Subject(StrEnum):
    """What a message is about."""

    ALERT = "alert"
    WORK_ORDER = "work_order"  # 吹哨报到
    CALL = "call"  # 叫应: one person called about an alert, on one of their channels

    @property
    def key(self) -> str:
        """The key of the notification object the subject's object goes under (docs/alerts.md)."""
        return "work_order" if self is Subject.WORK_ORDER else "alert"


@dataclass(frozen=True, slots=True)
class Message:
    """One notification to one recipient, as the package that decided it describes it."""

    event_id: str
    subject: Subject
    subject_id: str  # the alert's id, or the work order's
    recipient: str  # the recipient the notification names
    event: Event | OrderEvent
    body: dict[str, Any]  # the subject's object: the `alert` or the `work_order` object
    created_ns: int
    # The notification object's further keys, in the order they are written (link, call, step, note...).
    extra: dict[str, Any] = field(default_factory=dict)
    channel: int | None = None  # one channel of the recipient alone (by index); None: each in turn


@dataclass(frozen=True, slots=True)
class Posting:
    """Messages posted to the outbox: the rows to commit, and what to call once they are committed."""

    writes: list[Write]
    deliver: Callable[[], None]


class Outbox(Protocol):
    """Where messages wait, durably, for delivery."""

    def post(self, messages: Sequence[Message]) -> Posting:
        """The outbox rows of these messages (for the caller's transaction) and their release."""
        ...

    async def told(self, subject_ids: Sequence[str], events: Iterable[str]) -> list[tuple[str, str]]:
        """(subject id, recipient) of every message of these events ever posted about these subjects."""
        ...
