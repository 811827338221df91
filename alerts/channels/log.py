"""The log channel: the notification in the service's log (always delivers)."""

from __future__ import annotations

import logging

from alerts.channels import Outcome

log = logging.getLogger("cbrain.notify")


class LogChannel:
    """Writes the notification as one log line."""

    type = "log"

    async def send(self, event_id: str, payload: bytes) -> Outcome:
        """Log it."""
        log.info("notification %s: %s", event_id, payload.decode())
        return Outcome(True)
