"""Tasmota: `tele/{topic}/SENSOR` every TelePeriod (ENERGY values are arrays, one per relay, on a
multi-channel strip) and `tele/{topic}/LWT` (`Online` / `Offline`); `Time` is local time."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from ingest.sources import Adapter, Message, SourceFormatError, kwh_to_wh, pick, register
from kernel.sources.tasmota import TasmotaConfig

FIELDS: dict[str, tuple[str, Any]] = {
    "Current": ("current_a", None),
    "Voltage": ("voltage_v", None),
    "Power": ("power_w", None),
    "Total": ("energy_wh", kwh_to_wh),
}


@register
class Tasmota(Adapter):
    """A Tasmota device's telemetry; its address is its `%topic%`."""

    type = "tasmota"

    def __init__(self, config: Any, *, timezone: str, addresses: list[str]) -> None:
        super().__init__(config, timezone=timezone, addresses=addresses)
        assert isinstance(config, TasmotaConfig)
        self.prefix = config.telemetry_prefix
        self._under = self.prefix + "/"
        self.zone = ZoneInfo(self.timezone)

    def subscriptions(self) -> list[str]:
        return [f"{self.prefix}/+/SENSOR", f"{self.prefix}/+/LWT"]

    def topic_trees(self) -> tuple[str, ...]:
        # telemetry, command results and commands, under Tasmota's default prefixes
        return (f"{self.prefix}/#", "stat/#", "cmnd/#")

    def owns(self, topic: str) -> bool:
        return topic.startswith(self._under) and topic.endswith(("/SENSOR", "/LWT"))

    def read(self, topic: str, payload: bytes) -> list[Message]:
        address, _, kind = topic[len(self._under):].rpartition("/")
        if kind == "LWT":
            if payload not in (b"Online", b"Offline"):
                raise SourceFormatError("bad_status", "a Tasmota LWT is Online or Offline")
            return [Message(address, online=payload == b"Online")]
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise SourceFormatError("not_json", f"not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise SourceFormatError("not_object", "a Tasmota SENSOR message is a JSON object")
        return [Message(address, body, ts=self._ms(body.get("Time")))]

    def _ms(self, text: Any) -> int | None:
        if text is None:
            return None
        if not isinstance(text, str):
            raise SourceFormatError("bad_timestamp", "Time is local time as text (2026-05-01T08:30:00)")
        try:
            local = datetime.fromisoformat(text)
        except ValueError:
            raise SourceFormatError("bad_timestamp", f"Time {text!r} is not a date and time") from None
        if local.tzinfo is None:
            local = local.replace(tzinfo=self.zone)
        return int(local.timestamp() * 1000)

    def fields(self, body: Any, port: int | None) -> dict[str, Any]:
        energy = body.get("ENERGY")
        return pick(energy, FIELDS, port) if isinstance(energy, dict) else {}
