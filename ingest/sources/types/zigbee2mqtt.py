"""Zigbee2MQTT: `{base_topic}/{friendly_name}` carries a device's state as JSON; availability on
`{base_topic}/{friendly_name}/availability` (`{"state": "online"}`, or the bare word in older hubs).
`…/set`, `…/get` and `{base_topic}/bridge/…` are the hub's own and not readings."""

from __future__ import annotations

from typing import Any

import orjson

from ingest.sources import Adapter, Message, SourceFormatError, kwh_to_wh, pick, register
from kernel.sources.zigbee2mqtt import Zigbee2MqttConfig

# Zigbee2MQTT's exposes (zigbee-herdsman-converters) → section 1.
FIELDS: dict[str, tuple[str, Any]] = {
    "smoke": ("alarm", None),
    "test": ("self_test", None),
    "tamper": ("tamper", None),
    "battery": ("battery_pct", None),
    "temperature": ("temperature_c", None),
    "water_leak": ("leak", None),
    "current": ("current_a", None),
    "voltage": ("voltage_v", None),
    "power": ("power_w", None),
    "energy": ("energy_wh", kwh_to_wh),
}
_NOT_READINGS = ("set", "get")


@register
class Zigbee2Mqtt(Adapter):
    """The JSON a Zigbee2MQTT hub publishes, read by its exposes' names."""

    type = "zigbee2mqtt"

    def __init__(self, config: Any, *, timezone: str, addresses: list[str]) -> None:
        super().__init__(config, timezone=timezone, addresses=addresses)
        assert isinstance(config, Zigbee2MqttConfig)
        self.base = config.base_topic.rstrip("/")
        self._under = self.base + "/"

    def subscriptions(self) -> list[str]:
        return [f"{self.base}/#"]

    def topic_trees(self) -> tuple[str, ...]:
        return (f"{self.base}/#",)

    def owns(self, topic: str) -> bool:
        return topic.startswith(self._under)

    def read(self, topic: str, payload: bytes) -> list[Message]:
        name = topic[len(self._under):]
        if not name or name.startswith("bridge/") or name == "bridge":
            return []
        last = name.rsplit("/", 1)[-1]
        if last in _NOT_READINGS and "/" in name:
            return []
        if last == "availability" and "/" in name:
            return [Message(name[: -len("/availability")], online=_availability(payload))]
        if not payload:
            return []  # a retained message cleared
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise SourceFormatError("not_json", f"not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise SourceFormatError("not_object", f"a Zigbee2MQTT state is a JSON object, not {type(body).__name__}")
        return [Message(name, body)]

    def fields(self, body: Any, port: int | None) -> dict[str, Any]:
        return pick(body, FIELDS, port)


def _availability(payload: bytes) -> bool:
    text = payload.strip()
    if text.startswith(b"{"):
        try:
            state = orjson.loads(text).get("state")
        except (orjson.JSONDecodeError, AttributeError):
            state = None
    else:
        state = text.decode("utf-8", "replace")
    if state not in ("online", "offline"):
        raise SourceFormatError("bad_status", 'availability is {"state": "online"} or "offline", or the bare word')
    return bool(state == "online")
