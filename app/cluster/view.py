"""The whole site seen from one instance of the cluster: ServiceView over every partition, wherever held.

    sync queries (devices, open alerts, silences, ...) ─► the partitions' latest digests (digests.py), scoped here
    async queries (alerts, one alert, readings, ...)   ─► the partitions concerned (calls.py), merged here
    actions (acknowledge, resolve, silences, ...)      ─► the partition that has the alert, which acts once
    live changes and notifications                     ─► every partition's forwards (feed.py), numbered here

Partitions held by this instance are asked directly (`attach`), the others over NATS. A partition nobody
holds at the moment (a takeover under way) leaves its part out of an answer: the sync queries keep its
last digest, the async ones go without it (`calls.last_missing`, and /health says so).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from app.cluster import metrics as merged_metrics
from app.cluster.calls import Calls
from app.cluster.digests import Digests
from app.cluster.feed import Feed
from app.cluster.sources import ClusterSourceView
from app.cluster.view_serve import PartitionServer, serve_partition
from app.cluster.view_site import SiteState
from app.cluster.whistles import ClusterWhistleView, LinkedBook
from app.config import load_ruleset
from app.drill_view import DrillView
from app.live_view import LiveView
from app.resilience.card import Scorecard
from app.resource_view import ResourceView
from app.source_view import SourceView
from app.view import ActedBy, AlertChange, NotificationOut, ServiceView, SilenceOut
from app.whistle_view import WhistleView
from kernel.clock import Clock
from kernel.metrics import Registry
from kernel.settings import Recipient, Scope, Settings
from kernel.site import Site
from resources.book import ResourceBook
from resources.catalog import Catalog

if TYPE_CHECKING:
    from rules.spec import RuleSet

# Audit entries are numbered across partitions as seq * AUDIT_SPACE + partition (partitions <= 1024).
AUDIT_SPACE = 1024
LEARNT = 10_000  # alerts whose partition is remembered beyond the open ones


class ClusterView(SiteState):
    """ServiceView of the whole site on one instance of the cluster."""

    def __init__(self, *, settings: Settings, site: Site, clock: Clock, nc: Any, js: Any,
                 partition_of: Callable[[str], int], health: Callable[[], dict[str, Any]],
                 stopping: asyncio.Event | None = None, cells: tuple[PartitionServer, ...] = (),
                 replicas: int = 1, calls: Calls | None = None) -> None:
        assert settings.cluster is not None
        c = settings.cluster
        self.calls = calls or Calls(nc, c.name, c.partitions)
        self.digests = Digests(js, c.name, replicas)
        super().__init__(settings, site, self.digests)
        self.feed = Feed(nc, c.name, clock)
        self._clock, self._partition_of, self._instance_health = clock, partition_of, health
        self._nc, self._js = nc, js
        self._stopping = stopping or asyncio.Event()
        self.whistles: WhistleView = ClusterWhistleView(settings, site, clock, self.calls, partition_of, self._books)
        self.sources: SourceView = ClusterSourceView(site, self.digests.all)
        # (refused in a cluster for now: ClusterInstance; what the pages read of it is the site file's)
        self.resources: ResourceView = ResourceView(settings, site, clock, ResourceBook(Catalog(settings)), None,
                                                    _no_select)
        self.resilience = Scorecard(settings, clock, self.resources, None)  # (refused: 503, not yet in a cluster)
        self.drills: DrillView | None = None  # drills run on one instance (docs/drills.md)
        self._link_maker: Callable[[str, str], str | None] | None = None
        self._answer_link_maker: Callable[[str, str], str | None] | None = None
        self._ruleset: RuleSet | None = None
        self._learnt: dict[str, int] = {}  # alert id -> partition, of alerts found
        self._metrics = self.registry = self._own_metrics()  # (the instance adds its own gauges to it)
        for server in cells:
            self.attach(server)

    # ---- life ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen to the partitions' forwards and watch their digests."""
        await self.feed.start()
        await self.digests.start()

    async def stop(self) -> None:
        """Stop listening."""
        await self.feed.stop()
        await self.digests.stop()

    async def serve(self, partition: int, view: LiveView, *, epoch: int | None = None,
                    after_action: Callable[[], Awaitable[None]] | None = None,
                    gate: Callable[[], bool] | None = None) -> PartitionServer:
        """A partition this instance now holds: serve its live view to the cluster and attach it (the
        instance calls this once the partition's service is ready, and `unserve` before it stops)."""
        assert self.settings.cluster is not None
        server = await serve_partition(self._nc, self.settings.cluster.name, partition, view,
                                       instance=self.settings.cluster.instance, epoch=epoch,
                                       after_action=after_action, gate=gate, replicas=self.digests.replicas,
                                       js=self._js)
        self.attach(server)
        return server

    async def unserve(self, partition: int) -> None:
        """A partition this instance gives up: detach it and stop serving it (before its service stops)."""
        server = self.calls.local.pop(partition, None)
        if server is not None:
            await server.stop()

    def attach(self, server: PartitionServer) -> None:
        """A partition now held (and served) by this instance: asked directly from now on, with the links."""
        self.calls.local[server.partition] = server
        if self._link_maker is not None:
            server.view.set_link_maker(self._link_maker)
        if self._answer_link_maker is not None:
            server.view.set_answer_link_maker(self._answer_link_maker)
        book = self.whistles.book
        if isinstance(book, LinkedBook):
            book.share()

    def detach(self, partition: int) -> None:
        """A partition no longer held here (asked over NATS from now on)."""
        self.calls.local.pop(partition, None)

    def _books(self) -> list[Any]:
        return [s.view.whistles.book for s in self.calls.local.values() if s.view.whistles is not None]

    # ---- state ---------------------------------------------------------------------------------

    def now_ns(self) -> int:
        """The service clock."""
        return self._clock.now_ns()

    @property
    def stopping(self) -> asyncio.Event:
        """Set once shutdown has begun."""
        return self._stopping

    def health(self) -> tuple[bool, dict[str, Any]]:
        """The instance's own state under `cluster`, and each partition's from its digest; ok while the
        instance's lease holds and every partition is served and ok."""
        cluster = self._instance_health()
        ok, parts = self.partition_health()
        ok = ok and cluster.get("lease", "held") != "lost"
        return ok, {"status": "ok" if ok else "degraded", "cluster": cluster, "partitions": parts,
                    "unanswered": list(self.calls.gaps)[:10]}

    def metrics_text(self) -> str:
        """This instance's metrics and those of the partitions it holds (labelled with their partition)."""
        return merged_metrics.merged(self._metrics.render(),
                                     {p: s.view.metrics_text() for p, s in sorted(self.calls.local.items())})

    def _own_metrics(self) -> Registry:
        m = Registry()
        m.gauge("cb_cluster_digest_age_seconds", "Age of each partition's latest digest", ["partition"],
                source=lambda: {(str(d.partition),): d.age_s() for d in self.digests.all()})
        m.gauge("cb_cluster_partition_served", "1 while a partition's holder serves it", ["partition"],
                source=lambda: {(str(p),): float(self.digests.serving(p) is not None) for p in self.calls.all()})
        m.gauge("cb_cluster_partitions_held_here", "Partitions this instance holds",
                source=lambda: float(len(self.calls.local)))
        m.gauge("cb_cluster_unanswered", "Partitions a query went without, since start",
                source=lambda: float(self.calls.unanswered))
        return m

    def ruleset(self) -> RuleSet:
        """The rules running now (a partition's held here, else the rules file's)."""
        for server in self.calls.local.values():
            return server.view.ruleset()
        if self._ruleset is None:
            self._ruleset = load_ruleset(self.settings)
        return self._ruleset

    def recipients(self) -> list[Recipient]:
        """Everybody who can be told of alerts."""
        return list(self.settings.recipients)

    # ---- alerts --------------------------------------------------------------------------------

    def _partitions_for(self, scope: Scope | None, community: str | None = None) -> list[int]:
        """The partitions a query in scope (about a community) can find anything in."""
        if community is not None:
            return [self._partition_of(community)]
        if scope is not None and scope.community is not None:
            return [self._partition_of(scope.community)]
        return self.calls.all()

    def _alert_partitions(self, alert_id: str, scope: Scope | None) -> list[int]:
        p = self.alert_index().get(alert_id, self._learnt.get(alert_id))
        return [p] if p is not None else self._partitions_for(scope)

    def _learn(self, alert_id: str, partition: int) -> None:
        if len(self._learnt) >= LEARNT:
            self._learnt.pop(next(iter(self._learnt)))
        self._learnt[alert_id] = partition

    async def _first(self, partitions: list[int], method: str, **kwargs: Any) -> tuple[int, Any] | None:
        """The first partition's answer that is not None."""
        answers = await self.calls.gather(partitions, method, **kwargs)
        return next(((p, a) for p, a in sorted(answers.items()) if a is not None), None)

    async def alerts(self, scope: Scope | None, *, status: str | None = None, level: str | None = None,
                     community: str | None = None, rule: str | None = None,
                     limit: int = 200) -> list[dict[str, Any]]:
        """Alerts in scope from every partition concerned, newest first."""
        answers = await self.calls.gather(self._partitions_for(scope, community), "alerts", scope=scope,
                                          status=status, level=level, community=community, rule=rule, limit=limit)
        out = [a for p in sorted(answers) for a in answers[p]]
        out.sort(key=lambda a: a.get("updated_at") or "", reverse=True)
        return out[:limit]

    async def alert(self, scope: Scope | None, alert_id: str) -> dict[str, Any] | None:
        """One alert with its history and notifications; None if absent or outside scope."""
        found = await self._first(self._alert_partitions(alert_id, scope), "alert", scope=scope, alert_id=alert_id)
        if found is None:
            return None
        self._learn(alert_id, found[0])
        body: dict[str, Any] = found[1]
        return body

    async def ledger(self, scope: Scope | None, alert_id: str) -> list[dict[str, Any]] | None:
        """The 叫应 ledger of an alert; None if absent or outside scope."""
        found = await self._first(self._alert_partitions(alert_id, scope), "ledger", scope=scope, alert_id=alert_id)
        if found is None:
            return None
        self._learn(alert_id, found[0])
        rows: list[dict[str, Any]] = found[1]
        return rows

    async def readings(self, scope: Scope | None, device_id: str, since_ns: int,
                       limit: int) -> list[tuple[int, dict[str, Any]]] | None:
        """A device's recent readings from its partition; None if unknown or outside scope."""
        known = next((d for d in self.devices(scope) if d["device_id"] == device_id), None)
        partitions = [self._partition_of(known["community"])] if known else self._partitions_for(scope)
        found = await self._first(partitions, "readings", scope=scope, device_id=device_id, since_ns=since_ns,
                                  limit=limit)
        return None if found is None else found[1]

    async def call_of_send(self, event_id: str) -> tuple[str, str, str] | None:
        """(alert id, person, channel type) of one send of a call."""
        found = await self._first(self.calls.all(), "call_of_send", event_id=event_id)
        return None if found is None else found[1]

    async def dead_letters(self, limit: int) -> list[dict[str, Any]]:
        """Points the reading stores refused, newest first: the newest `limit` batches of all partitions."""
        answers = await self.calls.gather(self.calls.all(), "dead_letters", limit=limit)
        points = [(p, x) for p in sorted(answers) for x in answers[p]]
        points.sort(key=lambda px: px[1].get("at") or "", reverse=True)
        batches: set[tuple[int, str, str]] = set()
        out = []
        for p, x in points:
            batch = (p, x.get("at") or "", x.get("reason") or "")
            if batch not in batches:
                if len(batches) >= limit:
                    break
                batches.add(batch)
            out.append(x)
        return out

    async def audit(self, *, since_ns: int | None, actor: str | None, action: str | None, after: int | None,
                    limit: int) -> list[dict[str, Any]]:
        """Entries of every partition's audit log matching every filter, numbered seq * AUDIT_SPACE + partition
        and in that order (each partition's oldest first), so that `after` pages through them all."""
        def local_after(p: int) -> dict[str, Any]:
            return {"after": None if after is None else (after - p) // AUDIT_SPACE}

        answers = await self.calls.gather(self.calls.all(), "audit", per=local_after, since_ns=since_ns,
                                          actor=actor, action=action, limit=limit)
        out = [e | {"seq": e["seq"] * AUDIT_SPACE + p} for p in answers for e in answers[p]]
        out.sort(key=lambda e: e["seq"])
        return out[:limit]

    # ---- actions -------------------------------------------------------------------------------

    async def _on_alert(self, method: str, alert_id: str, **kwargs: Any) -> dict[str, Any]:
        """An action on an alert, in its partition (asked of every partition when it is not known)."""
        partitions = self._alert_partitions(alert_id, None)
        if len(partitions) == 1:
            body: dict[str, Any] = await self.calls.act_in(partitions[0], method, alert_id=alert_id, **kwargs)
        else:
            body = await self.calls.act_somewhere(partitions, method, alert_id=alert_id, **kwargs)
        return body

    async def acknowledge(self, alert_id: str, actor: str, note: str | None, by: ActedBy | None = None,
                          via: str = "api") -> dict[str, Any]:
        """Acknowledge an alert wherever it is processed (Refused as its partition refuses it)."""
        return await self._on_alert("acknowledge", alert_id, actor=actor, note=note, by=by, via=via)

    async def resolve(self, alert_id: str, actor: str, note: str | None,
                      by: ActedBy | None = None) -> dict[str, Any]:
        """Resolve an alert wherever it is processed."""
        return await self._on_alert("resolve", alert_id, actor=actor, note=note, by=by)

    async def hand_over(self, alert_id: str, actor: str, to: str, note: str | None,
                        by: ActedBy | None = None) -> dict[str, Any]:
        """Hand an alert over to another recipient, wherever it is processed."""
        return await self._on_alert("hand_over", alert_id, actor=actor, to=to, note=note, by=by)

    async def add_silence(self, silence: SilenceOut, by: ActedBy | None = None) -> SilenceOut:
        """Record a silence in its community's partition; one of no community in every partition (those not
        held now miss it: more is told, never less)."""
        if silence.community is not None:
            made: SilenceOut = await self.calls.act_in(self._partition_of(silence.community), "add_silence",
                                                       silence=silence, by=by)
            return made
        done = await self.calls.act_everywhere(self.calls.all(), "add_silence", silence=silence, by=by)
        return done[0]  # type: ignore[no-any-return]

    async def expire_silence(self, silence_id: str, actor: str, by: ActedBy | None = None) -> SilenceOut:
        """End a silence now, in every partition that has it."""
        found = self.find_silence(silence_id)
        if found is not None and found.community is not None:
            ended: SilenceOut = await self.calls.act_in(self._partition_of(found.community), "expire_silence",
                                                        silence_id=silence_id, actor=actor, by=by)
            return ended
        holders = [d.partition for d in self.digests.all() if any(x.id == silence_id for x in d.silences)]
        done = await self.calls.act_everywhere(holders or self.calls.all(), "expire_silence", silence_id=silence_id,
                                               actor=actor, by=by)
        return min(done, key=lambda x: x.ends_ns)  # type: ignore[no-any-return]

    # ---- live ----------------------------------------------------------------------------------

    def subscribe_notifications(self, listener: Callable[[list[NotificationOut]], None]) -> Callable[[], None]:
        """Call listener with each batch of committed notifications of every partition."""
        return self.feed.subscribe_notifications(listener)

    def subscribe_changes(self, listener: Callable[[list[AlertChange]], None]) -> Callable[[], None]:
        """Call listener with each batch of committed alert changes of every partition (this instance's numbers)."""
        return self.feed.log.subscribe(listener)

    def changes_after(self, seq: int) -> list[AlertChange] | None:
        """Changes after seq still kept here; None when some of them are no longer kept."""
        return self.feed.log.after(seq)

    def last_change(self) -> int:
        """The newest change's number (this instance's)."""
        return self.feed.log.last()

    def set_link_maker(self, make: Callable[[str, str], str | None]) -> None:
        """How a notification links to an alert's page: for every partition held here, now and later."""
        self._link_maker = make
        for server in self.calls.local.values():
            server.view.set_link_maker(make)

    def set_answer_link_maker(self, make: Callable[[str, str], str | None]) -> None:
        """How a 叫应 call links to the answer page: for every partition held here, now and later."""
        self._answer_link_maker = make
        for server in self.calls.local.values():
            server.view.set_answer_link_maker(make)


def as_service_view(view: ClusterView) -> ServiceView:
    """The cluster's view where a ServiceView is expected (mypy checks it implements the protocol)."""
    return view


async def _no_select(*_args: object) -> list[tuple[object, ...]]:
    return []
