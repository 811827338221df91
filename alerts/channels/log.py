"""The log channel: the notification in the service's log (always delivers)."""

from __future__ import annotations

import logging

from alerts.channels import ChannelContext, Outcome, register_factory
from kernel.channels.log import LogConfig

log = logging.getLogger("cbrain.notify")


class LogChannel:
    """Writes the notification as one log line."""

    type = "log"

    async def send(self, event_id: str, payload: bytes) -> Outcome:
        """Log it."""
        log.info("notification %s: %s", event_id, payload.decode())
        return Outcome(True)


def make_log(config: LogConfig, context: ChannelContext) -> LogChannel:
    """The log channel (it has no keys)."""
    return LogChannel()


register_factory("log", make_log)
