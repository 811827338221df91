"""The notification object of docs/alerts.md, typed: built once from a message (kernel.outgoing),
serialised once at the edge (the outbox row, the HTTP body, the MQTT message), parsed once when
loaded from the outbox.

The bytes are kept with the object: what the outbox holds is exactly what every channel sends and
what the webhook signature is computed over, on the first attempt and after a restart alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from kernel.alerting import Event
from kernel.orders import OrderEvent
from kernel.outgoing import Message, Subject

_ALERT_EVENTS = frozenset(e.value for e in Event)


@dataclass(frozen=True, slots=True)
class Group:
    """A storm's members sent as one message: every alert and its own event id."""

    rule: str
    community: str
    alerts: tuple[dict[str, Any], ...]
    event_ids: tuple[str, ...]

    def wire(self) -> dict[str, Any]:
        """The `group` object of docs/alerts.md."""
        return {"rule": self.rule, "community": self.community, "count": len(self.alerts),
                "alerts": list(self.alerts), "event_ids": list(self.event_ids)}


# The keys of the notification object the fields below stand for.
_KNOWN = frozenset({"event_id", "event", "recipient", "link", "group", "call"})


@dataclass(slots=True)
class Notification:
    """One notification to one recipient (or a storm's group of them, sent as one message), about an
    alert, a 叫应 call or a work order (吹哨报到, docs/api.md: its `work_order` object where an alert's is)."""

    event_id: str
    subject_id: str  # the alert's id, or the work order's
    recipient: str  # the outbox's recipient: a 叫应 call's is one channel of its person (channel_key)
    event: Event | OrderEvent
    body: dict[str, Any]  # the `alert` object of docs/alerts.md, or the `work_order` object
    created_ns: int
    link: str | None = None
    group: Group | None = None
    # 叫应: the call this notification makes (docs/alerts.md, event `call`); None for every other event.
    call: dict[str, Any] | None = None
    subject: Subject = Subject.ALERT
    extra: dict[str, Any] = field(default_factory=dict)  # a work order's `step`, `note`, `link_token`
    _payload: bytes | None = field(default=None, repr=False, compare=False)

    def wire(self) -> dict[str, Any]:
        """The notification object of docs/alerts.md."""
        body: dict[str, Any] = {"event_id": self.event_id, "event": self.event.value, self.subject.key: self.body,
                                "recipient": self.recipient}
        if self.link is not None:
            body["link"] = self.link
        if self.group is not None:
            body["group"] = self.group.wire()
        if self.call is not None:
            body["call"] = self.call
        body.update(self.extra)
        return body

    @property
    def payload(self) -> bytes:
        """The JSON body, serialised on first use and the same bytes ever after."""
        if self._payload is None:
            self._payload = orjson.dumps(self.wire())
        return self._payload

    @property
    def level(self) -> str:
        """The level the notification says (a resolved alert's last level; a work order's grade)."""
        return str(self.body.get("level") or self.body.get("grade"))

    @property
    def community(self) -> str:
        """The subject's community."""
        return str(self.body["community"])

    @property
    def rule(self) -> str:
        """The alert's rule."""
        return str(self.body["rule"])

    @classmethod
    def from_message(cls, m: Message) -> Notification:
        """The notification a message describes, serialised now: its keys in the message's order."""
        wire = {"event_id": m.event_id, "event": m.event.value, m.subject.key: m.body, "recipient": m.recipient,
                **m.extra}
        recipient = m.recipient if m.channel is None else channel_key(m.recipient, m.channel)
        return cls._parsed(m.event_id, m.subject_id, recipient, m.event.value, wire, m.created_ns,
                           orjson.dumps(wire), m.subject)

    @classmethod
    def from_outbox(cls, event_id: str, subject_id: str, recipient: str, event: str, payload: bytes,
                    created_ns: int) -> Notification:
        """A notification as the outbox row keeps it, its stored bytes kept as they are."""
        body = orjson.loads(payload)
        subject = (Subject.WORK_ORDER if "work_order" in body else Subject.CALL if "call" in body
                   else Subject.ALERT)
        return cls._parsed(event_id, subject_id, recipient, event, body, created_ns, bytes(payload), subject)

    @classmethod
    def _parsed(cls, event_id: str, subject_id: str, recipient: str, event: str, body: dict[str, Any],
                created_ns: int, payload: bytes, subject: Subject) -> Notification:
        group = body.get("group")
        extra = {k: v for k, v in body.items() if k not in _KNOWN and k != subject.key}
        return cls(event_id, subject_id, recipient, Event(event) if event in _ALERT_EVENTS else OrderEvent(event),
                   body[subject.key], created_ns, body.get("link"),
                   None if group is None else Group(group["rule"], group["community"], tuple(group["alerts"]),
                                                    tuple(group["event_ids"])),
                   body.get("call"), subject, extra, payload)

    @classmethod
    def grouped(cls, group_id: str, members: list[Notification]) -> Notification:
        """One message standing for members of one rule in one community for one recipient."""
        first = members[0]
        group = Group(first.rule, first.community, tuple(m.body for m in members),
                      tuple(m.event_id for m in members))
        return cls(group_id, first.subject_id, first.recipient, first.event, first.body, first.created_ns,
                   group=group)


def channel_key(person: str, index: int) -> str:
    """The outbox recipient of a message on one channel of a person alone (a 叫应 call)."""
    return f"{person}#{index}"


def person_of(recipient_key: str) -> str:
    """The person an outbox recipient stands for (`person#index` for one channel, else the recipient itself)."""
    return recipient_key.split("#", 1)[0]
