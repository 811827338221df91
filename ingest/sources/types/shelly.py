"""Shelly Gen2/Gen3: `{prefix}/status/switch:N` (with "Generic status update over MQTT" on) and
`{prefix}/online` (`true` / `false`). A switch's `aenergy.total` is already in Wh."""

from __future__ import annotations

from typing import Any

import orjson

from ingest.sources import Adapter, Message, SourceFormatError, register

_STATUS = "/status/"
_SWITCH = "/status/switch:"


@register
class Shelly(Adapter):
    """A Shelly's switch status; its address is the device's MQTT prefix, its port the switch id + 1."""

    type = "shelly"

    def subscriptions(self) -> list[str]:
        # A Shelly's prefix is its own (its device id unless changed): one filter pair per device.
        out: list[str] = []
        for a in sorted(set(self.addresses)):
            out += [f"{a}/status/+", f"{a}/online"]
        return out

    def topic_trees(self) -> tuple[str, ...]:
        return tuple(f"{a}/#" for a in sorted(set(self.addresses)))

    def owns(self, topic: str) -> bool:
        if topic.endswith("/online"):
            return topic[: -len("/online")] in self._known
        address, found, _ = topic.partition(_STATUS)
        return bool(found) and address in self._known

    @property
    def _known(self) -> set[str]:
        return set(self.addresses)

    def read(self, topic: str, payload: bytes) -> list[Message]:
        if topic.endswith("/online"):
            if payload not in (b"true", b"false"):
                raise SourceFormatError("bad_status", "a Shelly's online topic is true or false")
            return [Message(topic[: -len("/online")], online=payload == b"true")]
        address, is_switch, switch = topic.partition(_SWITCH)
        if not is_switch:
            return []  # sys, wifi, cloud, input:N…: the device's other components are not readings
        if not switch.isdigit():
            raise SourceFormatError("bad_topic", f"switch id {switch!r} is not a number")
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise SourceFormatError("not_json", f"not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise SourceFormatError("not_object", "a Shelly switch status is a JSON object")
        return [Message(address, body, port=int(switch) + 1)]

    def fields(self, body: Any, port: int | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, name in (("current", "current_a"), ("voltage", "voltage_v"), ("apower", "power_w")):
            if body.get(key) is not None:
                out[name] = body[key]
        energy = body.get("aenergy")
        if isinstance(energy, dict) and energy.get("total") is not None:
            out["energy_wh"] = energy["total"]
        # (temperature.tC is the relay's own, not the battery's: a profile may map it where it helps)
        return out
