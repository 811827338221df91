"""A partition's digest: what every instance's pages and API read of a partition without asking it.

The holder of a partition puts it into the key-value bucket `{name}-views`, key `p{N}`, whenever an
alert changes or an action is taken, and at least every second: the partition's in-memory state that
the view answers at once (devices, communities, open alerts, latest rejections, silences, the state
database's writability, health). Every instance watches the bucket and answers those queries from the
latest digests, for the whole site.

The value is zlib-compressed JSON, bounded (a page needs the open alerts and the devices' counts above
all): past MAX_BYTES the devices' last readings go first, then old rejections, then alerts beyond the
most serious OPEN_ALERTS_AT_MOST, then the devices; what was left out is named in `truncated`.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from app.view import SilenceOut

MAGIC = b"CBV1"
MAX_BYTES = 768 * 1024
REJECTIONS = 100
UNREGISTERED = 50
SILENCES = 500  # every silence in force, and the newest past ones up to this many in all
OPEN_ALERTS_AT_MOST = 1000  # when the digest would be too large
DEVICE_KEYS = ("community", "device_type", "device_id", "building", "grid", "registered", "online", "status_at",
               "last_seen", "last_ts", "last_reading", "readings", "duplicates", "lost", "firing")
LEVEL_ORDER = {"red": 0, "orange": 1, "yellow": 2, "blue": 3}


@dataclass(slots=True)
class Digest:
    """One partition's digest as an instance read it."""

    partition: int
    instance: str | None
    epoch: int | None
    at_ms: int
    stopped: bool
    health_ok: bool
    health: dict[str, Any]
    unwritable: str | None
    device_rows: list[list[Any]]
    open_alerts: list[dict[str, Any]]
    rejections: list[dict[str, Any]]
    silences: list[SilenceOut]
    unregistered: list[dict[str, Any]]
    truncated: list[str] = field(default_factory=list)
    size: int = 0
    received: float | None = None  # monotonic, when this instance took it

    def devices(self) -> list[dict[str, Any]]:
        """The partition's devices, as LiveView.devices answers them."""
        return [dict(zip(DEVICE_KEYS, row, strict=True)) for row in self.device_rows]

    def age_s(self) -> float:
        """Seconds since it came (since its holder made it, by the wall clock, if it was in the bucket when
        this instance began watching: instances' clocks may differ, the time it came does not)."""
        if self.received is not None:
            return max(0.0, time.monotonic() - self.received)
        return max(0.0, time.time() - self.at_ms / 1000)


def device_rows(view: Any) -> list[list[Any]]:
    """The devices of a partition's live view as the digest keeps them (rows of DEVICE_KEYS)."""
    return [[d[k] for k in DEVICE_KEYS] for d in view.devices(None)]


def build(view: Any, *, partition: int, instance: str | None, epoch: int | None, stopped: bool = False,
          devices: list[list[Any]] | None = None) -> bytes:
    """The digest of a partition's live view (app.live_view.LiveView), packed; `devices` the device rows
    when they were just made (the costliest part: a few milliseconds a thousand devices)."""
    ok, health = view.health()
    sources = getattr(view, "sources", None)
    doc: dict[str, Any] = {
        "partition": partition, "instance": instance, "epoch": epoch, "at_ms": int(time.time() * 1000),
        "stopped": stopped, "health_ok": ok, "health": health, "unwritable": view.state_unwritable(),
        "devices": devices if devices is not None else device_rows(view),
        "open_alerts": view.open_alerts(None),
        "rejections": view.rejections(None, REJECTIONS, None),
        "silences": [asdict(x) for x in _kept_silences(view.silences(), view.now_ns())],
        "unregistered": sources.unregistered(None)[:UNREGISTERED] if sources is not None else [],
        "truncated": [],
    }
    return pack(doc)


def _kept_silences(silences: list[SilenceOut], now_ns: int) -> list[SilenceOut]:
    """Every silence in force, then the newest others up to SILENCES in all (newest first)."""
    past_room = max(0, SILENCES - sum(1 for x in silences if x.ends_ns > now_ns))
    kept = []
    for x in silences:
        if x.ends_ns > now_ns:
            kept.append(x)
        elif past_room:
            kept.append(x)
            past_room -= 1
    return kept


def pack(doc: dict[str, Any]) -> bytes:
    """The digest's bytes, within MAX_BYTES (what had to go is named in `truncated`)."""
    for shrink in (_as_is, _without_readings, _fewer_alerts, _without_devices):
        shrink(doc)
        packed = MAGIC + zlib.compress(orjson.dumps(doc), 1)
        if len(packed) <= MAX_BYTES:
            return packed
    return packed


def _as_is(doc: dict[str, Any]) -> None:
    return None


def _without_readings(doc: dict[str, Any]) -> None:
    at = DEVICE_KEYS.index("last_reading")
    doc["devices"] = [[*row[:at], None, *row[at + 1:]] for row in doc["devices"]]
    doc["truncated"].append("devices.last_reading")


def _fewer_alerts(doc: dict[str, Any]) -> None:
    alerts = sorted(doc["open_alerts"], key=lambda a: a.get("started_at") or "", reverse=True)
    alerts.sort(key=lambda a: LEVEL_ORDER.get(a.get("level", ""), 9))
    if len(alerts) > OPEN_ALERTS_AT_MOST:
        doc["truncated"].append(f"open_alerts: the {OPEN_ALERTS_AT_MOST} most serious of {len(alerts)}")
    doc["open_alerts"] = alerts[:OPEN_ALERTS_AT_MOST]
    doc["rejections"] = doc["rejections"][:10]
    doc["unregistered"] = []
    doc["truncated"] += ["rejections", "unregistered"]


def _without_devices(doc: dict[str, Any]) -> None:
    doc["devices"] = []
    doc["truncated"].append("devices")


def parse(data: bytes) -> Digest:
    """A digest from the bucket (ValueError if it is not one)."""
    if not data.startswith(MAGIC):
        raise ValueError("not a partition digest")
    d = orjson.loads(zlib.decompress(data[len(MAGIC):]))
    return Digest(int(d["partition"]), d.get("instance"), d.get("epoch"), int(d["at_ms"]), bool(d.get("stopped")),
                  bool(d["health_ok"]), d.get("health") or {}, d.get("unwritable"), d.get("devices") or [],
                  d.get("open_alerts") or [], d.get("rejections") or [],
                  [SilenceOut(**x) for x in d.get("silences") or []], d.get("unregistered") or [],
                  list(d.get("truncated") or []), len(data))


async def views_bucket(js: Any, name: str, replicas: int) -> Any:
    """The key-value bucket of the partitions' digests (made on first use; in memory: every holder
    publishes its digest again within a second)."""
    from nats.js.api import KeyValueConfig, StorageType
    from nats.js.errors import NotFoundError

    try:
        return await js.key_value(f"{name}-views")
    except NotFoundError:
        return await js.create_key_value(KeyValueConfig(bucket=f"{name}-views", history=1, replicas=replicas,
                                                        storage=StorageType.MEMORY))
