"""The partitions' view requests on the wire (app/cluster/view_serve.py answers them, app/cluster/calls.py
asks): core NATS request and reply on `{name}.view.p{N}`, JSON both ways.

    request  {"m": method, "a": {keyword arguments}}
    answer   {"ok": result} | {"refused": {"reason": ..., "message": ...}, "absent": bool} | {"error": "..."}

Only the methods named here cross. Scope, ActedBy and SilenceOut are written as plain objects and made
again on the other side; a refusal becomes the same kernel.errors.Refused (NotHere when the thing acted on
is not in that partition at all, so that the asker tries the others)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import orjson

from app.view import ActedBy, SilenceOut
from kernel.errors import Reason, Refused
from kernel.settings import Scope
from notify.store import SELECT_SENT_BETWEEN
from orders.store import (
    SELECT_EVENTS_OF,
    SELECT_ONE_WHISTLE,
    SELECT_ORDERS_OF,
    SELECT_ORDERS_SINCE,
    SELECT_WHISTLES_SINCE,
)

# Queries: what the live view of one partition answers.
QUERIES = frozenset({
    "alerts", "alert", "readings", "ledger", "audit", "dead_letters", "call_of_send",  # the state database's
    "devices", "communities", "open_alerts", "rejections", "silences", "find_silence",  # memory's
    "state_unwritable", "health",
    "whistles.select",  # 吹哨报到: one of the orders' queries, by name (WHISTLE_SELECTS)
})
# Actions on an alert: the partition that has the alert acts, the others answer NotHere.
ALERT_ACTIONS = frozenset({"acknowledge", "resolve", "hand_over"})
ACTIONS = ALERT_ACTIONS | {"add_silence", "expire_silence", "whistles.blow", "whistles.step", "whistles.confirm"}
METHODS = QUERIES | ACTIONS

# The orders' queries a partition runs for the cluster's WhistleView (never SQL from the wire).
WHISTLE_SELECTS = {
    "whistles_since": SELECT_WHISTLES_SINCE, "orders_since": SELECT_ORDERS_SINCE,
    "one_whistle": SELECT_ONE_WHISTLE, "orders_of": SELECT_ORDERS_OF, "events_of": SELECT_EVENTS_OF,
    "sent_between": SELECT_SENT_BETWEEN,
}

# An answer larger than this is refused by the partition (NATS's default max_payload is 1 MiB).
MAX_ANSWER_BYTES = 960 * 1024


class NotHere(Refused):
    """Refused because what is acted on is not in this partition: another one may have it."""


class PartitionGone(Exception):
    """A partition did not answer: nobody holds it now, or its holder did not answer in time."""

    def __init__(self, partition: int, why: str) -> None:
        super().__init__(f"partition {partition}: {why}")
        self.partition = partition


def subject(name: str, partition: int) -> str:
    """The subject a partition's view answers on."""
    return f"{name}.view.p{partition}"


# ---- arguments ----------------------------------------------------------------------------------

def encode_request(method: str, kwargs: dict[str, Any]) -> bytes:
    """A request's bytes."""
    return orjson.dumps({"m": method, "a": {k: _plain(k, v) for k, v in kwargs.items()}})


def _plain(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key == "scope" and isinstance(value, Scope):
        return value.model_dump(exclude_none=True)
    if key == "by" and isinstance(value, ActedBy):
        return {"role": value.role, "client": value.client}
    if key == "silence" and isinstance(value, SilenceOut):
        return asdict(value)
    return value


def decode_request(data: bytes) -> tuple[str, dict[str, Any]]:
    """(method, keyword arguments) of a request; ValueError for one that is not ours."""
    body = orjson.loads(data)
    if not isinstance(body, dict) or body.get("m") not in METHODS or not isinstance(body.get("a", {}), dict):
        raise ValueError(f"not a view request: {str(body)[:80]}")
    kwargs = dict(body.get("a", {}))
    if kwargs.get("scope") is not None:
        kwargs["scope"] = Scope.model_validate(kwargs["scope"])
    if kwargs.get("by") is not None:
        kwargs["by"] = ActedBy(str(kwargs["by"]["role"]), kwargs["by"].get("client"))
    if kwargs.get("silence") is not None:
        kwargs["silence"] = SilenceOut(**kwargs["silence"])
    return str(body["m"]), kwargs


# ---- answers ------------------------------------------------------------------------------------

def encode_result(value: Any) -> bytes:
    """A successful answer (dataclasses and tuples as JSON objects and arrays)."""
    return orjson.dumps({"ok": value})


def encode_refusal(exc: Refused) -> bytes:
    """A refusal, with whether the thing was absent from the partition."""
    return orjson.dumps({"refused": {"reason": exc.reason.value, "message": str(exc)},
                         "absent": isinstance(exc, NotHere)})


def encode_error(message: str) -> bytes:
    """A failure that is no refusal (a bug, an answer too large)."""
    return orjson.dumps({"error": message[:500]})


def decode_answer(partition: int, method: str, data: bytes) -> Any:
    """The result of an answer; raise the Refused (NotHere) it carries, PartitionGone for an error."""
    body = orjson.loads(data)
    if "ok" in body:
        return decode_result(method, body["ok"])
    if "refused" in body:
        r = body["refused"]
        kind = NotHere if body.get("absent") else Refused
        raise kind(Reason(r["reason"]), str(r["message"]))
    raise PartitionGone(partition, f"failed: {body.get('error', 'an answer of no known shape')}")


def decode_result(method: str, value: Any) -> Any:
    """A result as the live view returns it (tuples, SilenceOut)."""
    if value is None:
        return None
    if method == "readings":
        return [(int(ts), fields) for ts, fields in value]
    if method == "call_of_send":
        return (str(value[0]), str(value[1]), str(value[2]))
    if method == "health":
        return (bool(value[0]), value[1])
    if method == "silences":
        return [SilenceOut(**x) for x in value]
    if method in ("find_silence", "add_silence", "expire_silence"):
        return SilenceOut(**value)
    if method == "whistles.select":
        return [tuple(row) for row in value]
    return value
