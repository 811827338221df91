"""The typed notification: serialised once, loaded from the outbox byte for byte, groups as docs/alerts.md says."""

from __future__ import annotations

import orjson

from kernel.alerting import Event
from notify.notification import Notification

ALERT = {"id": "a1", "rule": "smoke.alarm", "level": "orange", "status": "firing", "community": "yicun",
         "building": "b01", "grid": "g1", "device_id": "sd-1", "device_type": "smoke_detector", "value": 1.0,
         "started_at": "2026-11-21T03:00:00.000Z", "updated_at": "2026-11-21T03:00:00.000Z", "summary": "烟感报警"}


def test_the_payload_is_the_wire_object_serialised_once() -> None:
    n = Notification("e1", "a1", "worker-g1", Event.FIRED, dict(ALERT), 5, "https://x/a/a1")
    first = n.payload
    assert orjson.loads(first) == {"event_id": "e1", "event": "fired", "alert": ALERT, "recipient": "worker-g1",
                                   "link": "https://x/a/a1"}
    assert list(orjson.loads(first)) == ["event_id", "event", "alert", "recipient", "link"]
    n.body["summary"] = "changed later"
    assert n.payload is first, "the bytes are made once: what the outbox holds is what is sent"


def test_loaded_from_the_outbox_it_keeps_the_stored_bytes() -> None:
    stored = b'{"event_id":"e1","event":"resolved","alert":' + orjson.dumps(ALERT) + b',"recipient":"bureau"}'
    n = Notification.from_outbox("e1", "a1", "bureau", "resolved", memoryview(stored).tobytes(), 7)
    assert n.payload == stored and n.event is Event.RESOLVED and n.link is None
    assert (n.level, n.community, n.rule, n.created_ns) == ("orange", "yicun", "smoke.alarm", 7)


def test_a_group_lists_every_member_and_loads_back() -> None:
    members = [Notification(f"e{i}", f"a{i}", "committee-yicun", Event.FIRED, dict(ALERT, id=f"a{i}"), i)
               for i in range(3)]
    g = Notification.grouped("g1", members)
    body = orjson.loads(g.payload)
    assert list(body) == ["event_id", "event", "alert", "recipient", "group"]
    assert body["event_id"] == "g1" and body["alert"]["id"] == "a0"
    assert body["group"] == {"rule": "smoke.alarm", "community": "yicun", "count": 3,
                             "alerts": [m.body for m in members], "event_ids": ["e0", "e1", "e2"]}
    again = Notification.from_outbox("g1", "a0", "committee-yicun", "fired", g.payload, 0)
    assert again.group == g.group and again.payload == g.payload
