"""OneNET (China Mobile): data push to `/ingest/onenet/{source_id}`.

Before it pushes, OneNET checks the URL with `GET ?msg=…&nonce=…&signature=…` and expects `msg`
back; each push is a `POST` of `{"msg": …, "nonce": …, "signature": …}` (older pushes say
`msg_signature`), where signature = Base64(MD5(token + nonce + msg)) over `msg` as the exact text
received: a JSON string holding one message, or an array of them when pushes are batched. OneNET
Studio messages name the device by `deviceName` (properties in `data.params.<id>.value`), the
older platform's by `dev_id`; `time` or `at` (epoch ms) is when it was measured. A `lifeCycle`
message (Studio) or `type: 2` (older) is the device's status."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

import orjson

from ingest.sources import Message, SourceFormatError, register
from ingest.sources.push import PushAdapter, Verdict, body_digest
from kernel.sources.onenet import OnenetConfig, signature


@register
class Onenet(PushAdapter):
    """OneNET pushes; the address is `deviceName` (Studio) or `dev_id`."""

    type = "onenet"

    def check(self, method: str, query: Mapping[str, str], body: bytes) -> Verdict:
        assert isinstance(self.config, OnenetConfig)
        if method == "GET":
            msg, nonce, sig = query.get("msg"), query.get("nonce"), query.get("signature")
            answer: str | None = msg
        else:
            try:
                envelope = orjson.loads(body)
            except orjson.JSONDecodeError:
                return Verdict(400, "a OneNET push is a JSON object with msg, nonce and signature")
            if not isinstance(envelope, dict):
                return Verdict(400, "a OneNET push is a JSON object with msg, nonce and signature")
            msg, nonce = envelope.get("msg"), envelope.get("nonce")
            sig = envelope.get("signature", envelope.get("msg_signature"))
            if msg is not None and not isinstance(msg, str):
                msg = orjson.dumps(msg).decode()  # (a push whose msg is not a string cannot be verified)
            answer = None
        if not (isinstance(msg, str) and isinstance(nonce, str) and isinstance(sig, str) and sig):
            return Verdict(401, "a OneNET push carries msg, nonce and signature")
        # A Base64 signature in a URL may have had its '+' decoded to a space.
        given = sig.replace(" ", "+").encode("ascii", "replace")
        if not hmac.compare_digest(given, signature(self.config.token, nonce, msg).encode("ascii")):
            return Verdict(403, "the signature does not match the push token")
        return Verdict(200, answer=answer)

    def read(self, topic: str, payload: bytes) -> list[Message]:
        try:
            envelope = orjson.loads(payload)
            text = envelope["msg"]
            msg = orjson.loads(text) if isinstance(text, str) else text
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise SourceFormatError("not_json", f"msg is not a JSON message: {exc}") from None
        items = msg if isinstance(msg, list) else [msg]
        out: list[Message] = []
        for item in items:
            if not isinstance(item, dict):
                raise SourceFormatError("not_object", "a OneNET message is a JSON object")
            # A retried push may come with a new nonce and signature: the message is its identity.
            out.append(_message(item, text.encode() if len(items) == 1 and isinstance(text, str)
                                else orjson.dumps(item)))
        return out


def _message(item: dict[str, Any], raw: bytes) -> Message:
    address = item.get("deviceName", item.get("dev_id"))
    if isinstance(address, int) and not isinstance(address, bool):
        address = str(address)
    if not isinstance(address, str) or not address:
        raise SourceFormatError("bad_format", "a OneNET message names its deviceName (or dev_id)")
    status = _status(item)
    if status is not None:
        return Message(address, online=status)
    when = item.get("time", item.get("at"))
    if when is not None and (isinstance(when, bool) or not isinstance(when, int)):
        raise SourceFormatError("bad_timestamp", "time (or at) is epoch milliseconds")
    return Message(address, item, ts=when, dedup=body_digest(raw))


def _status(item: dict[str, Any]) -> bool | None:
    """The device's status in a life-cycle message, or None for a message that is not one."""
    if item.get("messageType") == "lifeCycle":
        data = item.get("data")
        value = data.get("status") if isinstance(data, dict) else item.get("status")
    elif item.get("type") == 2:
        value = item.get("status")
    else:
        return None
    if value in (1, "online"):
        return True
    if value in (0, "offline"):
        return False
    raise SourceFormatError("bad_status", "a life-cycle message's status is 1 (online) or 0 (offline)")
