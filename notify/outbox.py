"""The outbox: every notification, durable before it is sent, as a table of the state database.

Alerts and work orders post their messages (kernel.outgoing) here: `post` turns them into
notifications, serialised once, and their rows, which the poster commits in the same transaction
as the change that made them; once that commit is durable the notifications go to the listeners
(metrics, the live stream) and to the deliverer. The deliverer records every outcome in the same
rows, so a restart resumes what is still pending. Nobody else writes this table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import orjson

from kernel.outgoing import Message, Posting
from kernel.writes import Row, Write
from notify.deliver import Deliverer, Pending
from notify.notification import Notification, channel_key
from notify.store import INSERT_OUTBOX, SCHEMA, SELECT_PENDING, SELECT_TOLD

Select = Callable[..., Awaitable[list[Row]]]
Listener = Callable[[list[Notification]], None]


def outbox_row(n: Notification) -> Row:
    """The INSERT_OUTBOX row of a notification."""
    return (n.event_id, n.subject_id, n.recipient, n.event.value, n.payload, n.created_ns, n.created_ns)


class Outbox:
    """kernel.outgoing.Outbox over the state database: rows to commit, then delivery."""

    def __init__(self, deliverer: Deliverer, select: Select) -> None:
        self.deliverer = deliverer
        self.select = select
        # Told of every committed notification, before delivery (metrics, the API's event stream).
        self.listeners: list[Listener] = []

    def post(self, messages: Sequence[Message]) -> Posting:
        """The rows of these messages for the poster's transaction, and their delivery once it is committed."""
        notifications = [Notification.from_message(m) for m in messages]
        writes: list[Write] = [(INSERT_OUTBOX, [outbox_row(n) for n in notifications])] if notifications else []
        return Posting(writes, lambda: self.committed(notifications))

    def committed(self, notifications: list[Notification]) -> None:
        """These notifications are durable: tell the listeners, then deliver them."""
        if not notifications:
            return
        for listener in self.listeners:
            listener(notifications)
        self.deliverer.enqueue(notifications)

    async def told(self, subject_ids: Sequence[str], events: Iterable[str]) -> list[tuple[str, str]]:
        """(subject id, recipient) of every notification of these events about these subjects."""
        rows = await self.select(SELECT_TOLD, (orjson.dumps(list(subject_ids)).decode(),
                                               orjson.dumps(list(events)).decode()))
        return [(str(s), str(r)) for s, r in rows]

    async def recover(self, script: Callable[[str], Awaitable[None]]) -> int:
        """Create the table; hand what is still pending to the deliverer. How many were pending."""
        await script(SCHEMA)
        pending = [Pending(Notification.from_outbox(event_id, subject_id, recipient, event, payload, created),
                           channel=channel, attempts=attempts, next_ns=next_ns)
                   for event_id, subject_id, recipient, event, payload, channel, attempts, created, next_ns
                   in await self.select(SELECT_PENDING)]
        self.deliverer.restore(pending)
        return len(pending)


def per_channel(channels: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Each recipient's channels one by one under channel_key: a 叫应 call goes on all of them at once, and
    a channel that fails does not fall back to the next (that one has its own send)."""
    return {channel_key(rid, i): [ch] for rid, chs in channels.items() for i, ch in enumerate(chs)}
