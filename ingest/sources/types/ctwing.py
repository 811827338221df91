"""CTWing (China Telecom's AEP): `POST /ingest/ctwing/{source_id}?token=…` with one JSON message.

`messageType: dataReport` (and `eventReport`, which NB smoke detectors use for alarms) go through
the profile, with `payload.serviceData` holding the thing model's properties; a
`deviceOnlineOfflineReport` is the device's status (`eventType` 1 online, 0 offline). `timestamp`
is epoch milliseconds; `upPacketSN` is the device's counter, −1 when it has none. AEP documents no
signature for its pushes: the token in the URL (over HTTPS, with AEP's address allowlist) is what
proves a push. AEP wants a fast 200, retries up to three times and pauses a subscription after
repeated failures."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

import orjson

from ingest.sources import Message, SourceFormatError, register
from ingest.sources.push import PushAdapter, Verdict, body_digest
from kernel.sources.ctwing import CtwingConfig

READINGS = ("dataReport", "eventReport")


@register
class Ctwing(PushAdapter):
    """CTWing pushes; the address is AEP's `deviceId`."""

    type = "ctwing"

    def check(self, method: str, query: Mapping[str, str], body: bytes) -> Verdict:
        assert isinstance(self.config, CtwingConfig)
        token = query.get("token")
        if not token:
            return Verdict(401, "the push URL needs ?token= (set it in AEP's subscription)")
        if not hmac.compare_digest(token.encode(), self.config.token.encode()):
            return Verdict(403, "wrong token")
        if method != "POST":
            return Verdict(200, answer="")
        return Verdict(200)

    def read(self, topic: str, payload: bytes) -> list[Message]:
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise SourceFormatError("not_json", f"not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise SourceFormatError("not_object", "a CTWing push is a JSON object")
        address = body.get("deviceId")
        if not isinstance(address, str) or not address:
            raise SourceFormatError("bad_format", "a CTWing push names its deviceId")
        kind = body.get("messageType")
        if kind == "deviceOnlineOfflineReport":
            event = body.get("eventType")
            if event not in (0, 1):
                raise SourceFormatError("bad_status", "eventType of an online/offline report is 1 or 0")
            return [Message(address, online=event == 1)]
        if kind not in READINGS:
            return []  # command responses and other notices are not readings
        return [Message(address, body, ts=_ms(body.get("timestamp")), seq=_seq(body.get("upPacketSN")),
                        dedup=body_digest(payload))]


def _ms(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise SourceFormatError("bad_timestamp", "timestamp is epoch milliseconds")
    return value


def _seq(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None
