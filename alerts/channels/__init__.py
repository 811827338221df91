"""Channels: one module each. A channel sends one notification and says how it went."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt went: delivered, worth retrying (with the receiver's Retry-After), or refused."""

    ok: bool
    retryable: bool = False
    retry_after_s: float | None = None
    error: str | None = None


class Channel(Protocol):
    """Something that can carry a notification to a recipient."""

    type: str

    async def send(self, event_id: str, payload: bytes) -> Outcome: ...
