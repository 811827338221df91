"""The log channel: the notification in the service's log (always delivers)."""

from __future__ import annotations

import logging

from kernel.channels.log import LogConfig
from notify.channels import ChannelContext, Outcome, register_factory
from notify.notification import Notification

log = logging.getLogger("cbrain.notify")


class LogChannel:
    """Writes the notification as one log line."""

    type = "log"

    async def send(self, n: Notification) -> Outcome:
        """Log it."""
        log.info("notification %s: %s", n.event_id, n.payload.decode())
        return Outcome(True)


def make_log(config: LogConfig, context: ChannelContext) -> LogChannel:
    """The log channel (it has no keys)."""
    return LogChannel()


register_factory("log", make_log)
