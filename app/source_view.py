"""What the HTTP layer asks of the sources (docs/devices.md, "Connecting the devices you have"): take a
platform's push once it proves itself, and list the devices heard from that nobody registered."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from ingest.sources.push import Pushes
from ingest.sources.reader import SourceReader
from ingest.sources.unknown import UnknownDevices, Unregistered
from kernel.clock import rfc3339
from kernel.ids import is_identifier
from kernel.settings import Scope
from kernel.site import Site

# How long a push may wait for its batch to be durable before it is answered 503 (the platform
# retries; a retry of a push that was made durable meanwhile is a duplicate and stored once).
PUSH_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class PushAnswer:
    """The HTTP answer to a push: its status and body text."""

    status: int
    text: str


class SourceView:
    """Pushes in, unregistered devices out."""

    def __init__(self, site: Site, reader: SourceReader | None, pushes: Pushes | None,
                 unknown: UnknownDevices) -> None:
        self.site = site
        self.reader = reader
        self.pushes = pushes
        self.unknown = unknown

    async def push(self, source_type: str, source_id: str, method: str, query: dict[str, str],
                   body: bytes) -> PushAnswer:
        """One request of a platform to `/ingest/{source_type}/{source_id}`."""
        adapter = self.reader.push_adapter(source_type, source_id) if self.reader is not None else None
        if adapter is None or self.pushes is None:
            return PushAnswer(404, f"no {source_type} source {source_id!r} in the site file")
        verdict = adapter.check(method, query, body)
        if verdict.status != 200:
            return PushAnswer(verdict.status, verdict.reason)
        if verdict.answer is not None:
            return PushAnswer(200, verdict.answer)
        if not await self.pushes.push(adapter.topic, body, PUSH_TIMEOUT_S):
            return PushAnswer(503, "not durable yet: push again")
        return PushAnswer(200, "ok")

    def unregistered(self, scope: Scope | None) -> list[dict[str, Any]]:
        """The addresses heard from without a registered device, in scope: a source naming its
        community shows them to that community; others only to whoever sees everything."""
        return [{"source": u.source, "source_type": u.source_type, "address": u.address, "port": u.port,
                 "community": u.community, "device_type": u.device_type,
                 "first_seen": rfc3339(u.first_seen_ns), "last_seen": rfc3339(u.last_seen_ns),
                 "messages": u.messages, "sample": u.sample, "devices_line": devices_line(u)}
                for u in self._in_scope(scope)]

    def unregistered_count(self, scope: Scope | None) -> int:
        """How many of those there are (for a page's heartbeat: no lines written)."""
        return sum(1 for _ in self._in_scope(scope))

    def _in_scope(self, scope: Scope | None) -> Iterator[Unregistered]:
        if scope is not None and scope.grid is not None:
            return  # an unplaced device is in no grid
        for u in self.unknown.latest():
            if scope is None or (u.community is not None and self.site.in_scope(scope, u.community, "")):
                yield u


def devices_line(u: Any) -> str:
    """The `devices:` entry an installer adds to register the address (ids to fill in are `?`, which
    YAML refuses until they are filled in)."""
    suggested = "".join(ch if ch.isalnum() else "-" for ch in u.address.lower()).strip("-")[:48]
    device_id = _text(suggested) if is_identifier(suggested) else "?"
    address = u.address.replace('"', '\\"')
    port = f", port: {u.port}" if u.port is not None else ""
    return (f'- {{id: {device_id}, type: {_text(u.device_type) if u.device_type else "?"}, '
            f'community: {_text(u.community) if u.community else "?"}, '
            f'building: ?, source: {_text(u.source)}, address: "{address}"{port}}}')


# What the site file's loader (yaml.safe_load) makes of a plain scalar: its resolver alone (regular
# expressions, well under a microsecond), not a parse (a hundred microseconds) for every line listed.
_RESOLVER = yaml.resolver.Resolver()
_STR = "tag:yaml.org,2002:str"


def _text(identifier: str) -> str:
    """An identifier (`[a-z0-9][a-z0-9_-]*`) written so YAML reads it back as that text: quoted when it
    would read as something else (a Zigbee IEEE address `0x00158d…` is a number, `1234` too, `on` a
    boolean, `2024-01-01` a date)."""
    plain = _RESOLVER.resolve(yaml.ScalarNode, identifier, (True, False)) == _STR  # type: ignore[no-untyped-call]
    return identifier if plain else f'"{identifier}"'
