"""The messages of other systems' devices: routed to their source's adapter, matched to registered
devices, mapped to readings (a profile, a vendor codec, or the source's own table), then validated
as any reading is (ingest.decode)."""

from __future__ import annotations

import base64
import binascii
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import ingest.sources.types  # noqa: F401  (registers the adapters)
from ingest.decode import Rejection, payload_head
from ingest.lineproto import LineProtocolError, series_key
from ingest.sources import ADAPTERS, Adapter, Message, SourceFormatError
from ingest.sources.codec import CodecError, JsCodec
from ingest.sources.mapping import CompiledProfile
from ingest.sources.push import PushAdapter
from ingest.sources.unknown import UnknownDevices, Unregistered
from kernel.devices import CATALOG
from kernel.ids import DeviceType
from kernel.reading import Reading, StatusUpdate
from kernel.settings import Settings
from kernel.settings.profiles import Profile
from kernel.site import Place, Site

log = logging.getLogger("cbrain.sources")

Item = Reading | StatusUpdate | Rejection
# The readings' own identities (ChirpStack's deduplicationId, a push's digest) remembered per source.
DEDUP_WINDOW = 100_000
# A metered socket drawing at least this much is charging what is plugged in (its own standby
# draw is a few mA): how ebike.overcharge and ebike.heating know a charge is on without a profile.
CHARGING_A = 0.1
# Topics whose source is known (the adapters' `owns` is asked once per topic).
TOPIC_CACHE = 100_000


@dataclass(slots=True)
class SourceDevice:
    """A registered device of a source, ready to map: where it is and how its messages read."""

    community: str
    device_type: DeviceType
    device_id: str
    place: Place
    series: str
    port: int | None
    profile: CompiledProfile | None
    codec: JsCodec | None
    variables: dict[str, float | str]
    declared: frozenset[str] = field(default=frozenset())


# (topic, payload, now, device type, fields, place...) → a validated reading or why not: ingest.decode's.
MakeReading = Callable[[DeviceType, dict[str, object], str, bytes, int, str, str, Place, str], Reading | Rejection]


class SourceReader:
    """Decodes every source's messages (Decoder.sources)."""

    def __init__(self, settings: Settings, site: Site, make_reading: MakeReading,
                 unknown: UnknownDevices | None = None, codecs: dict[str, JsCodec] | None = None) -> None:
        self.make_reading = make_reading
        self.unknown = unknown if unknown is not None else UnknownDevices()
        self.on_duplicate: Callable[[], None] | None = None
        profiles = self._profiles = settings.all_profiles()
        compiled = {pid: CompiledProfile(p) for pid, p in profiles.items()}
        used = {d.profile for d in settings.devices if d.profile} | {s.profile for s in settings.sources if s.profile}
        self.codecs = codecs if codecs is not None else load_codecs(profiles[pid] for pid in sorted(used))
        addresses: dict[str, list[str]] = {s.id: [] for s in settings.sources}
        for d in settings.devices:
            if d.source is not None and d.address is not None:
                addresses[d.source].append(d.address)
        self.adapters: list[Adapter] = [ADAPTERS[s.type](s, timezone=settings.timezone, addresses=addresses[s.id])
                                        for s in settings.sources]
        self._by_id = {a.config.id: a for a in self.adapters}
        self.devices: dict[tuple[str, str], list[SourceDevice]] = {}
        for d in settings.devices:
            if d.source is None or d.address is None:
                continue
            adapter = self._by_id[d.source]
            pid = d.profile or adapter.config.profile
            place = site.place(d.community, d.id)
            try:
                series = series_key(d.type.value, {"community": d.community, "device_id": d.id,
                                                   "building": place.building, "grid": place.grid})
            except LineProtocolError:
                series = ""
            profile = compiled[pid] if pid is not None else None
            codec = self.codecs.get(pid) if pid is not None else None
            self.devices.setdefault((d.source, adapter.key(d.address)), []).append(SourceDevice(
                d.community, d.type, d.id, place, series, d.port, profile, codec, dict(d.vars),
                CATALOG[d.type].declared))
        self._routes: dict[str, Adapter | None] = {}
        self._seen: dict[str, OrderedDict[str, None]] = {a.config.id: OrderedDict() for a in self.adapters}

    def subscriptions(self) -> list[str]:
        """The MQTT filters of every source on the service's broker."""
        return [t for a in self.adapters for t in a.subscriptions()]

    def push_adapter(self, source_type: str, source_id: str) -> PushAdapter | None:
        """The push source of that type and id, or None."""
        found = self._by_id.get(source_id)
        return found if isinstance(found, PushAdapter) and found.type == source_type else None

    def route(self, topic: str) -> Adapter | None:
        """The source a topic belongs to, or None."""
        if topic in self._routes:
            return self._routes[topic]
        found = next((a for a in self.adapters if a.owns(topic)), None)
        if len(self._routes) >= TOPIC_CACHE:
            self._routes.clear()
        self._routes[topic] = found
        return found

    def decode(self, topic: str, payload: bytes, now: int) -> list[Item] | None:
        """The items a source's message carries; None when no source owns the topic."""
        adapter = self.route(topic)
        if adapter is None:
            return None
        source = adapter.config.id
        try:
            messages = adapter.read(topic, payload)
        except SourceFormatError as exc:
            return [Rejection(exc.reason, str(exc), topic, payload_head(payload), now, source)]
        out: list[Item] = []
        for m in messages:
            devices = self.devices.get((source, adapter.key(m.address)))
            if not devices:
                out.append(self._unknown(adapter, m, topic, payload, now))
                continue
            if m.online is not None:
                out += [StatusUpdate(d.community, d.device_type, d.device_id, m.online, now) for d in devices
                        if m.port is None or (d.port or 1) == m.port]
                continue
            if m.dedup is not None and self._repeated(source, m.dedup):
                if self.on_duplicate is not None:
                    self.on_duplicate()
                continue
            mapped = [self._reading(adapter, d, m, topic, payload, now) for d in devices
                      if m.port is None or (d.port or 1) == m.port]
            out += mapped or [self._unknown(adapter, m, topic, payload, now)]
        return out

    def _repeated(self, source: str, identity: str) -> bool:
        seen = self._seen[source]
        if identity in seen:
            return True
        seen[identity] = None
        if len(seen) > DEDUP_WINDOW:
            seen.popitem(last=False)
        return False

    def _reading(self, adapter: Adapter, d: SourceDevice, m: Message, topic: str, payload: bytes,
                 now: int) -> Reading | Rejection:
        try:
            body = self.decoded(d, m.body)
            if d.profile is not None:
                found = d.profile.fields(body, d.port, d.variables)
            else:
                found = {k: v for k, v in adapter.fields(body, d.port).items() if k in d.declared}
                if "charging" in d.declared and "charging" not in found and isinstance(found.get("current_a"),
                                                                                        int | float):
                    found["charging"] = found["current_a"] >= CHARGING_A
        except SourceFormatError as exc:
            return Rejection(exc.reason, str(exc), topic, payload_head(payload), now, adapter.config.id, m.address)
        except CodecError as exc:
            return Rejection(exc.reason, str(exc), topic, payload_head(payload), now, adapter.config.id, m.address)
        if m.ts is not None and "ts" not in found:
            found["ts"] = m.ts
        if m.seq is not None and "seq" not in found:
            found["seq"] = m.seq
        if m.rssi_dbm is not None and "rssi_dbm" not in found:
            found["rssi_dbm"] = m.rssi_dbm
        made = self.make_reading(d.device_type, found, topic, payload, now, d.community, d.device_id, d.place,
                                 d.series)
        if isinstance(made, Rejection):
            made.source, made.address = adapter.config.id, m.address
        return made

    @staticmethod
    def decoded(d: SourceDevice, body: Any) -> Any:
        """The body with a vendor codec's output as its `object` (a LoRaWAN uplink's bytes decoded)."""
        if d.codec is None or not isinstance(body, dict):
            return body
        data = body.get("data")
        if not isinstance(data, str):
            raise SourceFormatError("bad_format", "the uplink has no data for the profile's codec")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise SourceFormatError("bad_format", "the uplink's data is not Base64") from None
        port = body.get("fPort", 0)
        variables = {k: str(v) for k, v in d.variables.items()}
        return {**body, "object": d.codec.decode_uplink(raw, port if isinstance(port, int) else 0, variables)}

    def _unknown(self, adapter: Adapter, m: Message, topic: str, payload: bytes, now: int) -> Rejection:
        head = payload_head(payload)
        config = adapter.config
        profile = config.profile
        address = m.address if m.port is None else f"{m.address} port {m.port}"
        self.unknown.heard(Unregistered(config.id, config.type, m.address, m.port, config.community,
                                        self._profile_type(profile), now, now, 1, head))
        return Rejection("unknown_device", f"no device of source {config.id!r} has address {address!r}: "
                         "register it under devices with this source and address", topic, head, now,
                         config.id, address)

    def _profile_type(self, profile: str | None) -> str | None:
        found = self._profiles.get(profile) if profile is not None else None
        return found.device_type.value if found is not None else None


def load_codecs(profiles: Iterable[Profile]) -> dict[str, JsCodec]:
    """Each profile's vendor codec, compiled once (CodecError names a codec that does not load)."""
    out: dict[str, JsCodec] = {}
    for p in profiles:
        if p.codec is not None:
            out[p.id] = JsCodec.from_file(p.codec)
    return out
