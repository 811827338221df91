"""ChirpStack v4: `{topic_prefix}/{application_id}/device/{dev_eui}/event/up` carries ChirpStack's JSON
encoding of its `UplinkEvent` (protobuf JSON: camelCase names, zero values left out, so an uplink
with frame counter 0 has no `fCnt`). `object` is the device profile's codec output; other events
(`join`, `status`, `ack`, `txack`, `log`, `location`, `integration`) are not readings."""

from __future__ import annotations

from typing import Any

import orjson

from ingest.sources import Adapter, Message, SourceFormatError, register
from kernel.sources.chirpstack import ChirpStackConfig


@register
class ChirpStack(Adapter):
    """LoRaWAN uplinks through ChirpStack's MQTT integration; the address is the DevEUI."""

    type = "chirpstack"

    def __init__(self, config: Any, *, timezone: str, addresses: list[str]) -> None:
        super().__init__(config, timezone=timezone, addresses=addresses)
        assert isinstance(config, ChirpStackConfig)
        app = config.application_id or "+"
        self.filter = f"{config.topic_prefix}/{app}/device/+/event/+"
        self._under = config.topic_prefix + "/"
        self.application_id = config.application_id

    def subscriptions(self) -> list[str]:
        return [self.filter]

    def topic_trees(self) -> tuple[str, ...]:
        return (self._under + "#",)

    def owns(self, topic: str) -> bool:
        if not topic.startswith(self._under):
            return False
        parts = topic[len(self._under):].split("/")
        return (len(parts) == 5 and parts[1] == "device" and parts[3] == "event"
                and (self.application_id is None or parts[0] == self.application_id))

    @staticmethod
    def key(address: str) -> str:
        return address.lower()

    def read(self, topic: str, payload: bytes) -> list[Message]:
        parts = topic[len(self._under):].split("/")
        if parts[4] != "up":
            return []
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise SourceFormatError("not_json", f"not JSON: {exc}") from None
        if not isinstance(event, dict):
            raise SourceFormatError("not_object", "an uplink event is a JSON object")
        info = event.get("deviceInfo")
        dev_eui = info.get("devEui") if isinstance(info, dict) else None
        address = dev_eui if isinstance(dev_eui, str) and dev_eui else parts[2]
        f_cnt = event.get("fCnt", 0)  # protobuf JSON leaves a zero out
        if isinstance(f_cnt, bool) or not isinstance(f_cnt, int) or f_cnt < 0:
            raise SourceFormatError("wrong_type", f"fCnt {f_cnt!r} is not a frame counter")
        when = event.get("time")
        if when is not None and not isinstance(when, str):
            raise SourceFormatError("bad_timestamp", "time is an RFC 3339 string")
        dedup = event.get("deduplicationId")
        return [Message(address, event, ts=when, seq=f_cnt, rssi_dbm=_strongest(event.get("rxInfo")),
                        dedup=dedup if isinstance(dedup, str) and dedup else None)]

    def fields(self, body: Any, port: int | None) -> dict[str, Any]:
        obj = body.get("object")
        if obj is None:
            raise SourceFormatError("no_object", "the uplink has no decoded object: give the device profile "
                                    "a codec in ChirpStack, or the device a profile with a codec here")
        if not isinstance(obj, dict):
            raise SourceFormatError("not_object", "the uplink's object is not a JSON object")
        return {k: v for k, v in obj.items() if k not in ("ts", "seq")}


def _strongest(rx: Any) -> float | None:
    if not isinstance(rx, list):
        return None
    values = [r.get("rssi") for r in rx if isinstance(r, dict)]
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return float(max(numbers)) if numbers else None
