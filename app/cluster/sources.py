"""The sources (devices that report through other systems) seen from any instance of a cluster: the
addresses heard from that nobody registered, as every partition's digest lists them. A carrier
platform's push is not taken by a cluster: its readings would have to enter the partitions' stream,
which only the NATS nodes' MQTT listeners feed; the platform is answered 503 and pushes again."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from app.cluster.digest import Digest
from app.source_view import PushAnswer, SourceView
from ingest.sources.unknown import UnknownDevices
from kernel.settings import Scope
from kernel.site import Site

NO_PUSHES = "this service runs as a cluster, which takes no platform pushes yet: point the platform at MQTT"


class ClusterSourceView(SourceView):
    """Pushes refused, unregistered devices of every partition."""

    def __init__(self, site: Site, digests: Callable[[], list[Digest]]) -> None:
        super().__init__(site, None, None, UnknownDevices())
        self._digests = digests

    async def push(self, source_type: str, source_id: str, method: str, query: dict[str, str],
                   body: bytes) -> PushAnswer:
        """A platform's push: not taken here (503, so that nothing it sends is lost)."""
        return PushAnswer(503, NO_PUSHES)

    def unregistered(self, scope: Scope | None) -> list[dict[str, Any]]:
        """The addresses heard from without a registered device, in scope, newest first."""
        found = list(self._rows(scope))
        found.sort(key=lambda u: u.get("last_seen") or "", reverse=True)
        return found

    def unregistered_count(self, scope: Scope | None) -> int:
        """How many of those there are."""
        return sum(1 for _ in self._rows(scope))

    def _rows(self, scope: Scope | None) -> Iterator[dict[str, Any]]:
        if scope is not None and scope.grid is not None:
            return  # an unplaced device is in no grid
        for d in self._digests():
            for u in d.unregistered:
                if scope is None or (u.get("community") is not None
                                     and self.site.in_scope(scope, u["community"], "")):
                    yield dict(u)
