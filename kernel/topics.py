"""MQTT topics of docs/devices.md: parsing and building."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from kernel.ids import DeviceType, device_types, is_identifier


class TopicKind(StrEnum):
    """What a device topic carries."""

    TELEMETRY = "telemetry"
    STATUS = "status"


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    """A parsed device topic."""

    community: str
    device_type: DeviceType
    device_id: str
    kind: TopicKind


class TopicError(ValueError):
    """A topic outside the contract; `reason` is a stable code, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def telemetry_topic(prefix: str, community: str, device_type: str, device_id: str) -> str:
    """Topic a device publishes its readings to."""
    return f"{prefix}/{community}/{device_type}/{device_id}/telemetry"


def status_topic(prefix: str, community: str, device_type: str, device_id: str) -> str:
    """Retained topic carrying `online` / `offline`."""
    return f"{prefix}/{community}/{device_type}/{device_id}/status"


def alerts_topic(prefix: str, community: str) -> str:
    """Topic the service publishes a community's alert notifications to."""
    return f"{prefix}/{community}/alerts"


def subscriptions(prefix: str, communities: list[str] | None = None) -> list[str]:
    """Filters the ingest subscribes to: everything under the prefix, so bad topics are seen and counted;
    or, for an instance that serves only some communities, everything under each of them."""
    if communities:
        return [f"{prefix}/{c}/#" for c in communities]
    return [f"{prefix}/#"]


def is_service_topic(prefix: str, topic: str) -> bool:
    """Topics the service itself publishes under the prefix (not device input)."""
    rest = topic[len(prefix) + 1 :] if topic.startswith(prefix + "/") else ""
    parts = rest.split("/")
    return len(parts) == 2 and parts[1] == "alerts"


@lru_cache(maxsize=65536)
def parse_device_topic(prefix: str, topic: str) -> DeviceTopic:
    """Parse `{prefix}/{community}/{device_type}/{device_id}/{telemetry|status}` or raise TopicError."""
    if not topic.startswith(prefix + "/"):
        raise TopicError("bad_topic", f"topic is not under the prefix {prefix!r}")
    parts = topic[len(prefix) + 1 :].split("/")
    if len(parts) != 4:
        raise TopicError(
            "bad_topic", f"expected {prefix}/{{community}}/{{device_type}}/{{device_id}}/{{kind}}, "
            f"got {len(parts)} levels after the prefix"
        )
    community, device_type, device_id, kind = parts
    if not is_identifier(community):
        raise TopicError("bad_topic", f"community {community!r} is not a valid identifier")
    dtype = DeviceType.lookup(device_type)
    if dtype is None:
        raise TopicError("unknown_device_type", f"device type {device_type!r} is not one of "
                         f"{', '.join(sorted(device_types()))}")
    if not is_identifier(device_id):
        raise TopicError("bad_topic", f"device id {device_id!r} is not a valid identifier")
    if kind not in ("telemetry", "status"):
        raise TopicError("bad_topic", f"last level must be telemetry or status, got {kind!r}")
    return DeviceTopic(community, dtype, device_id, TopicKind(kind))
