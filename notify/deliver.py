"""Delivery: notifications from the outbox to their recipients' channels, until delivered.

Each notification tries the recipient's first channel, retrying with jittered backoff (or the
receiver's Retry-After) while the answer says a retry can help; a refusal, or retries past
`give_up_s`, records the failure and falls back to the next channel. Every outcome is written to
the outbox, so a restart goes on where delivery stood.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from kernel.backoff import Backoff
from kernel.clock import NS, Clock
from kernel.metrics import Registry
from kernel.writes import Write
from notify.channels import Channel, Outcome
from notify.notification import Notification
from notify.sender import SenderThread
from notify.store import DELIVERED_OUTBOX, UPDATE_OUTBOX
from notify.storm import GroupStage

log = logging.getLogger("cbrain.deliver")
# A storm's message lists at most this many alerts (a receiver or a chat robot must be able to take it).
MAX_GROUP = 100


@dataclass(slots=True)
class Pending:
    """A notification on its way (or, in a storm, a group of them sent as one)."""

    n: Notification
    channel: int = 0
    attempts: int = 0
    next_ns: int = 0
    since_ns: int | None = None  # when the current channel was first tried; its give-up time counts from there
    members: list[Notification] = field(default_factory=list)  # a group: n is its first member
    group_id: str | None = None
    storm_key: tuple[str, str, str] | None = None
    _group: Notification | None = None  # the group's message, built once it is sent

    def ids(self) -> list[str]:
        """The event ids this send stands for."""
        return [m.event_id for m in self.members] if self.members else [self.n.event_id]

    def message(self) -> Notification:
        """What to send: one notification, or the group with every member listed."""
        if not self.members or self.group_id is None:
            return self.n
        if self._group is None or self._group.group is None or len(self._group.group.event_ids) != len(self.members):
            self._group = Notification.grouped(self.group_id, self.members)
        return self._group


class Deliverer:
    """Sends due notifications, at most `concurrency` at a time; each send on `sender`'s loop when
    one is set (notify.sender), else on this one."""

    def __init__(self, channels: dict[str, list[Channel]], persist: Callable[[list[Write]], Awaitable[None]],
                 clock: Clock, metrics: Registry, *, give_up_s: float = 3600.0, retry_min_s: float = 1.0,
                 retry_max_s: float = 60.0, concurrency: int = 16, storm_threshold: int = 5,
                 storm_window_s: float = 60.0, group_wait_s: float = 5.0) -> None:
        # A storm: `storm_threshold` new alerts of one rule in one community for one recipient within
        # `storm_window_s`. Past it, further ones wait up to `group_wait_s` and go as one message.
        self.storm_threshold, self.storm_window_ns = storm_threshold, int(storm_window_s * NS)
        self.group_wait_ns = int(group_wait_s * NS)
        self.grouping = GroupStage(storm_threshold, self.storm_window_ns)
        self._forming: dict[tuple[str, str, str], Pending] = {}
        self.channels = channels
        self.persist = persist
        self.clock = clock
        self.give_up_ns = int(give_up_s * NS)
        self.retry_min_s, self.retry_max_s = retry_min_s, retry_max_s
        self.backoff = Backoff(retry_min_s, retry_max_s)
        self._heap: list[tuple[int, int, Pending]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self.concurrency = concurrency
        self._tasks: set[asyncio.Task[None]] = set()
        self.in_flight = 0
        self.sender: SenderThread | None = None
        self.m_delivered = metrics.counter("cb_notifications_delivered_total", "Notifications delivered, by channel",
                                           ["channel"])
        self.m_failed = metrics.counter("cb_notifications_failed_total",
                                        "Notifications a channel refused or gave up on, by channel", ["channel"])
        self.m_retries = metrics.counter("cb_notifications_retries_total", "Delivery attempts retried, by channel",
                                         ["channel"])
        self.m_lost = metrics.counter("cb_notifications_undeliverable_total",
                                      "Notifications every channel of the recipient failed")
        self.m_grouped = metrics.counter("cb_notifications_grouped_total",
                                         "Notifications sent inside a storm's grouped message")
        metrics.gauge("cb_notifications_pending", "Notifications waiting for delivery",
                      source=lambda: float(self.pending()))

    def pending(self) -> int:
        """Notifications waiting or being sent (each member of a forming group counted)."""
        return sum(max(1, len(p.members)) for _, _, p in self._heap) + self.in_flight

    def enqueue(self, notifications: list[Notification]) -> None:
        """Committed notifications: send them now, or, in a storm, group them."""
        now = self.clock.now_ns()
        for n, key in self.grouping.exec(notifications, now):
            if key is None:
                if self.in_flight < self.concurrency:
                    self._launch(Pending(n, next_ns=now))  # (not one turn of the loop later: at once)
                else:
                    self._push(Pending(n, next_ns=now))
                continue
            group = self._forming.get(key)
            if group is None:
                group = Pending(n, next_ns=now + self.group_wait_ns, members=[], group_id=uuid.uuid4().hex,
                                storm_key=key)
                self._forming[key] = group
                self._push(group)
            group.members.append(n)
            if len(group.members) >= MAX_GROUP:
                del self._forming[key]  # full: it goes at its time, and later ones form the next group
        self._wake.set()

    def restore(self, pending: list[Pending]) -> None:
        """Notifications the outbox still holds after a restart."""
        for p in pending:
            self._push(p)
        self._wake.set()

    def _push(self, p: Pending) -> None:
        heapq.heappush(self._heap, (p.next_ns, next(self._seq), p))

    async def run(self) -> None:
        """Send notifications as they fall due."""
        while True:
            now = self.clock.now_ns()
            while self._heap and self._heap[0][0] <= now and self.in_flight < self.concurrency:
                _, _, p = heapq.heappop(self._heap)
                if p.storm_key is not None and self._forming.get(p.storm_key) is p:
                    del self._forming[p.storm_key]  # closed: later ones of the storm form the next group
                self._launch(p)
            # (all slots taken: an attempt's end wakes this loop)
            wait = (self._heap[0][0] - now) / NS if self._heap and self.in_flight < self.concurrency else None
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    def _launch(self, p: Pending) -> None:
        """One attempt, its send handed to the sender thread before this loop runs again: under load
        each turn of the loop waits behind a piece of ingest, and an alert's notification went
        through two of them (the run loop's, the attempt task's) before it left."""
        self.in_flight += 1
        try:
            sending = self._send(p)
        except Exception as exc:  # (a fault of ours: the attempt's task records it, as any other)
            sending = _raise(exc)
        task = asyncio.create_task(self._attempt(p, sending), name=f"deliver-{p.n.event_id[:8]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _send(self, p: Pending) -> Awaitable[Outcome] | None:
        """The send of an attempt, started on the sender's loop when there is one; None: no channel left."""
        channels = self.channels.get(p.n.recipient, [])
        if p.channel >= len(channels):
            return None
        if p.since_ns is None:
            # A fallback channel restored after a restart (its start is not stored) gets its whole give-up time.
            p.since_ns = p.n.created_ns if p.channel == 0 else self.clock.now_ns()
        send = channels[p.channel].send(p.message())
        return self.sender.submit(send) if self.sender is not None else send

    async def _attempt(self, p: Pending, sending: Awaitable[Outcome] | None) -> None:
        try:
            await self._attempt_inner(p, sending)
        except Exception:  # a fault of ours: keep the notification and try again later
            log.exception("delivering %s failed unexpectedly", p.n.event_id)
            p.next_ns = self.clock.now_ns() + int(self.retry_max_s * NS)
            self._push(p)
        finally:
            self.in_flight -= 1
            self._wake.set()

    async def _attempt_inner(self, p: Pending, sending: Awaitable[Outcome] | None) -> None:
        if sending is None:
            await self._final(p, "failed", "the recipient has no channel left")
            return
        channels = self.channels[p.n.recipient]
        channel = channels[p.channel]
        outcome: Outcome = await sending
        now = self.clock.now_ns()
        if outcome.ok:
            self.m_delivered.inc(len(p.ids()), channel.type)
            if p.members and p.group_id is not None:
                self.m_grouped.inc(len(p.members))
            # last_error stays: a delivery on a fallback channel keeps the refusal of the one before.
            await self.persist([(DELIVERED_OUTBOX, [(p.channel, p.attempts + 1, now, now, i) for i in p.ids()])])
            return
        p.attempts += 1
        if outcome.retryable and now - (p.since_ns or now) < self.give_up_ns:  # (set by _send)
            self.m_retries.inc(1, channel.type)
            delay = max(outcome.retry_after_s or 0.0, self.backoff.delay(p.attempts - 1))
            p.next_ns = now + int(delay * NS)
            await self.persist([(UPDATE_OUTBOX, [(p.channel, "pending", p.attempts, p.next_ns, outcome.error, None, i)
                                                 for i in p.ids()])])
            self._push(p)
            return
        self.m_failed.inc(1, channel.type)
        log.warning("notification %s to %s: %s %s; %s", p.n.event_id, p.n.recipient, channel.type, outcome.error,
                    "trying the next channel" if p.channel + 1 < len(channels) else "no channel left")
        p.channel, p.attempts, p.next_ns, p.since_ns = p.channel + 1, 0, now, now
        if p.channel < len(channels):
            await self.persist([(UPDATE_OUTBOX, [(p.channel, "pending", 0, now, outcome.error, None, i)
                                                 for i in p.ids()])])
            self._push(p)
        else:
            await self._final(p, "failed", outcome.error)

    async def _final(self, p: Pending, status: str, error: str | None) -> None:
        self.m_lost.inc(len(p.ids()))
        log.error("notification %s to %s could not be delivered: %s", p.n.event_id, p.n.recipient, error)
        await self.persist([(UPDATE_OUTBOX, [(p.channel, status, p.attempts, self.clock.now_ns(), error, None, i)
                                             for i in p.ids()])])


async def _raise(exc: Exception) -> Outcome:
    raise exc
