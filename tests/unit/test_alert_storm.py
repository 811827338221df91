"""A storm of alerts of one kind is grouped per recipient; every member stays durable in the outbox."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from kernel.alerting import Event
from kernel.clock import SystemClock
from kernel.metrics import Registry
from notify.channels import Outcome
from notify.deliver import Deliverer
from notify.notification import Notification
from notify.store import DELIVERED_OUTBOX


class Recorder:
    """A channel that records what it is asked to send (delivery logic only: no transport here)."""

    type = "webhook"

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def send(self, n: Notification) -> Outcome:
        self.sent.append((n.event_id, orjson.loads(n.payload)))
        return Outcome(True)


def notification(i: int, rule: str = "device.offline", event: Event = Event.FIRED) -> Notification:
    alert = {"id": f"a{i}", "rule": rule, "level": "blue", "community": "yicun", "summary": f"设备 {i} 离线"}
    eid = f"e{i}-{rule}"
    return Notification(eid, f"a{i}", "worker-g1", event, alert, 0)


async def deliver_all(d: Deliverer, notifications: list[Notification]) -> None:
    """Run the deliverer until it has sent everything (5 s at most)."""
    runner = asyncio.create_task(d.run())
    try:
        d.enqueue(notifications)
        for _ in range(100):
            if d.pending() == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        runner.cancel()


async def test_a_gateway_losing_its_devices_is_one_message_after_the_first_few() -> None:
    channel = Recorder()
    writes: list[Any] = []

    async def persist(w: list[Any]) -> None:
        writes.extend(w)

    d = Deliverer({"worker-g1": [channel]}, persist, SystemClock(), Registry(), storm_threshold=5,
                  storm_window_s=60, group_wait_s=0.2)
    await deliver_all(d, [notification(i) for i in range(200)] + [notification(999, rule="water.level")])
    singles = [body for _eid, body in channel.sent if "group" not in body]
    groups = [body for _eid, body in channel.sent if "group" in body]
    assert len(singles) == 6, "the first five of the storm and the other rule's alert go alone"
    assert [g["group"]["count"] for g in groups] == [100, 95], "a message lists at most MAX_GROUP alerts"
    assert groups[0]["group"]["rule"] == "device.offline"
    assert len({e for g in groups for e in g["group"]["event_ids"]}) == 195
    delivered = {row[-1] for stmt, rows in writes if stmt == DELIVERED_OUTBOX for row in rows}
    assert delivered == {f"e{i}-device.offline" for i in range(200)} | {"e999-water.level"}
    assert d.m_grouped.total() == 195


async def test_resolutions_and_a_quiet_rate_are_never_grouped() -> None:
    channel = Recorder()

    async def persist(_w: list[Any]) -> None:
        return None

    d = Deliverer({"worker-g1": [channel]}, persist, SystemClock(), Registry(), storm_threshold=5, group_wait_s=0.2)
    resolved = [notification(i, event=Event.RESOLVED) for i in range(20)]
    await deliver_all(d, resolved + [notification(i) for i in range(5)])
    assert len(channel.sent) == 25 and all("group" not in body for _e, body in channel.sent)
