"""The running service seen through ServiceView: the one place that knows the service's parts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson

from alerts.call_until_answered import SELECT_LEDGER, CallStage, ledger_rows
from alerts.manager import AlertManager, Silence, alert_payload
from alerts.runner import AlertEvent, AlertsRunner
from alerts.store import SELECT_ONE, alert_from_row, fingerprint, query_alerts
from app import audit
from app.change_log import ChangeLog
from app.resilience.card import Scorecard
from app.view import ActedBy, AlertChange, NotificationOut, SilenceOut
from app.view_scope import community_rows, rejection_in_scope
from ingest.device_book import DeviceBook
from ingest.rejections import RejectionLog
from ingest.state_thread import StateThread
from kernel.alerting import ROLES, Alert
from kernel.clock import Clock, rfc3339
from kernel.errors import Reason, Refused, StoreError
from kernel.metrics import Registry
from kernel.settings import Recipient, Scope, Settings
from kernel.site import Site
from kernel.writes import Write
from notify.notification import Notification, person_of
from notify.outbox import Outbox
from notify.store import SELECT_SENT
from rules.runner import RulesRunner
from rules.spec import RuleSet

# Alert changes kept for a live stream that reconnects (Last-Event-ID): minutes of a storm.


class LiveView:
    """ServiceView over the parts of one running service."""

    def __init__(self, *, settings: Settings, site: Site, clock: Clock, metrics: Registry, devices: DeviceBook,
                 rules: RulesRunner, manager: AlertManager, alerts: AlertsRunner, calls: CallStage, outbox: Outbox,
                 state: StateThread, rejections: RejectionLog, store: Any,
                 health: Callable[[], tuple[bool, dict[str, Any]]], stopping: asyncio.Event,
                 whistles: Any = None, sources: Any = None, resources: Any = None,
                 unwritable: Callable[[], str | None] | None = None, drills: Any = None) -> None:
        self.settings = settings
        self.drills = drills  # app.drill_view.DrillView
        self._calls, self._outbox = calls, outbox
        self.whistles = whistles  # app.whistle_view.WhistleView
        self.resources = resources  # app.resource_view.ResourceView
        self.resilience = Scorecard(settings, clock, resources, state.select, store)  # read from the same records
        self.sources = sources  # app.source_view.SourceView
        self._unwritable = unwritable
        self.site = site
        self._clock, self._metrics, self._devices, self._rules = clock, metrics, devices, rules
        self._manager, self._alerts, self._state, self._rejections = manager, alerts, state, rejections
        self._store, self._health, self._stopping = store, health, stopping
        self.changes = ChangeLog(clock)  # numbered for the live stream's replay
        self._recipients = {r.id: r for r in settings.recipients}
        alerts.event_listeners.append(self._on_events)
        self._audit_ready = False

    # ---- state ---------------------------------------------------------------------------------

    def now_ns(self) -> int:
        """The service clock."""
        return self._clock.now_ns()

    @property
    def stopping(self) -> asyncio.Event:
        """Set once shutdown has begun."""
        return self._stopping

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Each part's state, and whether all are up."""
        return self._health()

    def state_unwritable(self) -> str | None:
        """Why the state database cannot be written now (a full, read-only or failing disk), or None."""
        return self._unwritable() if self._unwritable is not None else None

    def metrics_text(self) -> str:
        """Prometheus exposition text."""
        return self._metrics.render()

    def ruleset(self) -> RuleSet:
        """The rules running now (what each rule measures, for the pages)."""
        return self._rules.engine.ruleset

    def devices(self, scope: Scope | None) -> list[dict[str, Any]]:
        """Every device's live state in scope, by community, type and id."""
        firing: dict[tuple[str, str], dict[str, str]] = {}
        for rule, community, device_id, level in self._rules.engine.firing_now():
            firing.setdefault((community, device_id), {})[rule] = level.value
        out = []
        for s in self._devices.devices.values():
            if not self.site.in_scope(scope, s.community, s.grid):
                continue
            out.append({
                "community": s.community, "device_type": s.device_type, "device_id": s.device_id,
                "building": s.building, "grid": s.grid,
                "registered": (s.community, s.device_id) in self.site.registered,
                "online": s.online, "status_at": rfc3339(s.status_ns), "last_seen": rfc3339(s.last_seen_ns),
                "last_ts": rfc3339(s.last_ts_ns), "last_reading": s.last_fields,
                "readings": s.readings, "duplicates": s.duplicates, "lost": s.lost,
                "firing": firing.get((s.community, s.device_id), {}),
            })
        out.sort(key=lambda d: (d["community"], d["device_type"], d["device_id"]))
        return out

    def communities(self, scope: Scope | None) -> list[dict[str, Any]]:
        """Each community's live state in scope."""
        return community_rows(self.site, scope, ((s.community, s.grid, s.device_type, s.online, s.last_seen_ns)
                                                 for s in self._devices.devices.values()), rfc3339)

    def rejections(self, scope: Scope | None, limit: int, reason: str | None) -> list[dict[str, Any]]:
        """Latest rejected messages in scope; messages no device can be placed by only the unscoped see."""
        out = []
        for r in self._rejections.latest(len(self._rejections)):
            if reason is not None and r.reason != reason:
                continue
            if scope is not None and not self._rejection_in_scope(scope, r.topic, r.source):
                continue
            out.append({"at": rfc3339(r.at_ns), "topic": r.topic, "reason": r.reason, "detail": r.detail,
                        "payload": r.payload_head, "source": r.source or None, "address": r.address or None})
            if len(out) >= limit:
                break
        return out

    def _rejection_in_scope(self, scope: Scope, topic: str, source_id: str) -> bool:
        return rejection_in_scope(self.settings, self.site, scope, topic, source_id)

    async def dead_letters(self, limit: int) -> list[dict[str, Any]]:
        """Points the reading store refused, with its reason."""
        out = []
        for at_ns, reason, points in await self._state.dead_letters(limit):
            for p in points:
                out.append({"at": rfc3339(at_ns), "reason": reason, "measurement": p.measurement,
                            "tags": p.tags, "fields": p.fields, "ts": rfc3339(p.ts_ns)})
        return out

    # ---- alerts --------------------------------------------------------------------------------

    async def alerts(self, scope: Scope | None, *, status: str | None = None, level: str | None = None,
                     community: str | None = None, rule: str | None = None,
                     limit: int = 200) -> list[dict[str, Any]]:
        """Alerts in scope from the alert store, newest first."""
        sql, params = query_alerts(status, level, community, rule, 10_000 if scope is not None else limit)
        rows = await self._state.select(sql, params)
        out = [alert_payload(a) for a, _e, _r in map(alert_from_row, rows)
               if self.site.in_scope(scope, a.community, a.grid)]
        return out[:limit]

    def open_alerts(self, scope: Scope | None) -> list[dict[str, Any]]:
        """Alerts not yet resolved in scope, with who acknowledged them and who was told."""
        return [alert_payload(a) | self._people(a) | {"told": sorted(self._manager.told.get(a.id, ()))}
                for a in self._manager.open.values() if self.site.in_scope(scope, a.community, a.grid)]

    @staticmethod
    def _people(a: Alert) -> dict[str, Any]:
        return {"fingerprint": fingerprint(a.rule, a.community, a.building, a.device_id),
                "tier": ROLES[a.tier], "acknowledged_by": a.acked_by, "acknowledged_at": rfc3339(a.acked_ns),
                "ack_note": a.ack_note, "resolved_by": a.resolved_by, "resolved_at": rfc3339(a.resolved_ns),
                "resolve_note": a.resolve_note}

    async def alert(self, scope: Scope | None, alert_id: str) -> dict[str, Any] | None:
        """One alert with its history and notifications; None if absent or outside scope."""
        rows = await self._state.select(SELECT_ONE, (alert_id,))
        if not rows:
            return None
        a, _e, _r = alert_from_row(rows[0])
        if not self.site.in_scope(scope, a.community, a.grid):
            return None
        body = alert_payload(a) | self._people(a)
        events = await self._state.select(
            "SELECT at_ns, event, level, actor, note FROM alert_events WHERE alert_id = ? ORDER BY seq", (alert_id,))
        sent = await self._state.select(SELECT_SENT, (alert_id,))
        body["history"] = [{"at": rfc3339(at), "event": ev, "level": lv, "actor": actor, "note": note}
                           for at, ev, lv, actor, note in events]
        body["notifications"] = [{"event_id": e, "recipient": r, "event": ev, "channel": ch, "status": st,
                                  "attempts": n, "last_error": err, "delivered_at": rfc3339(d),
                                  "created_at": rfc3339(c)} for e, r, ev, ch, st, n, err, d, c in sent]
        return body

    async def readings(self, scope: Scope | None, device_id: str, since_ns: int,
                       limit: int) -> list[tuple[int, dict[str, Any]]] | None:
        """A device's recent readings from the reading store; None if unknown or outside scope."""
        found = next((s for s in self._devices.devices.values()
                      if s.device_id == device_id and self.site.in_scope(scope, s.community, s.grid)), None)
        if found is None:
            return None
        recent = getattr(self._store, "recent", None)
        if recent is None:
            return []
        try:
            rows: list[tuple[int, dict[str, Any]]] = await recent(found.device_type, found.community, device_id,
                                                                   since_ns, limit)
        except StoreError as exc:
            raise Refused(Reason.UNAVAILABLE, f"the reading store does not answer: {exc}") from None
        return rows

    async def _act(self, run: Any) -> dict[str, Any]:
        a: Alert = await run
        return alert_payload(a)

    async def acknowledge(self, alert_id: str, actor: str, note: str | None, by: ActedBy | None = None,
                          via: str = "api") -> dict[str, Any]:
        """Acknowledge an alert (answering the actor's 叫应 calls, and logging who did)."""
        also = await self._alert_audit("acknowledge", alert_id, actor, note, by, None if via == "api" else {"via": via})
        return await self._act(self._alerts.acknowledge(alert_id, actor, note, also, via=via))

    async def ledger(self, scope: Scope | None, alert_id: str) -> list[dict[str, Any]] | None:
        """The 叫应 ledger of an alert; None if absent or outside scope."""
        rows = await self._state.select(SELECT_ONE, (alert_id,))
        if not rows:
            return None
        a, _e, _r = alert_from_row(rows[0])
        if not self.site.in_scope(scope, a.community, a.grid):
            return None
        sent = {e: (c, st, d, err) for e, _r, _ev, _ch, st, _n, err, d, c
                in await self._state.select(SELECT_SENT, (alert_id,))}
        return ledger_rows(await self._state.select(SELECT_LEDGER, (alert_id,)), sent)

    async def call_of_send(self, event_id: str) -> tuple[str, str, str] | None:
        """(alert id, person, channel type) of one send of a call."""
        rows = await self._state.select(
            "SELECT s.alert_id, c.person, s.channel_type FROM answer_sends s JOIN answer_calls c ON c.id = s.call_id "
            "WHERE s.event_id = ?", (event_id,))
        return (str(rows[0][0]), str(rows[0][1]), str(rows[0][2])) if rows else None

    def set_answer_link_maker(self, make: Callable[[str, str], str | None]) -> None:
        """How a call to a person links to the answer page."""
        self._calls.link_for = make

    async def resolve(self, alert_id: str, actor: str, note: str | None,
                      by: ActedBy | None = None) -> dict[str, Any]:
        """Resolve an alert (and log who did)."""
        also = await self._alert_audit("resolve", alert_id, actor, note, by)
        return await self._act(self._alerts.resolve(alert_id, actor, note, also))

    async def hand_over(self, alert_id: str, actor: str, to: str, note: str | None,
                        by: ActedBy | None = None) -> dict[str, Any]:
        """Hand an alert over to another recipient, who is told of it (and log who did)."""
        also = await self._alert_audit("handover", alert_id, actor, note, by, {"to": to})
        return await self._act(self._alerts.hand_over(alert_id, actor, to, note, also))

    # ---- audit log -----------------------------------------------------------------------------

    async def _audit_table(self) -> None:
        if not self._audit_ready:
            await self._state.script(audit.SCHEMA)
            self._audit_ready = True

    async def _audit_write(self, action: str, target: str, actor: str, note: str | None, by: ActedBy | None,
                           community: str | None, grid: str | None,
                           detail: dict[str, Any] | None = None) -> list[Write]:
        """The audit log's row of an action, to be committed with the action itself."""
        await self._audit_table()
        role = by.role if by is not None else (self._recipients[actor].role if actor in self._recipients else actor)
        row = audit.audit_row(self.now_ns(), actor, role, by.client if by is not None else None, action, target,
                              community, grid, note, detail)
        return [(audit.INSERT, [row])]

    async def _alert_audit(self, action: str, alert_id: str, actor: str, note: str | None, by: ActedBy | None,
                           detail: dict[str, Any] | None = None) -> list[Write]:
        a = self._manager.open.get(alert_id)
        return await self._audit_write(action, alert_id, actor, note, by, a.community if a else None,
                                       a.grid if a else None, detail)

    def _silence_place(self, x: SilenceOut) -> tuple[str | None, str | None]:
        """The community and grid a silence reaches (None where it reaches further)."""
        if x.community is None:
            return None, None
        if x.device_id is not None:
            return x.community, self.site.place(x.community, x.device_id).grid
        if x.building is not None:
            return x.community, self.site.grid_of(x.community, x.building)
        return x.community, None

    async def audit(self, *, since_ns: int | None, actor: str | None, action: str | None, after: int | None,
                    limit: int) -> list[dict[str, Any]]:
        """Entries of the audit log matching every filter given, oldest first."""
        await self._audit_table()
        sql, params = audit.query(since_ns=since_ns, actor=actor, action=action, after=after, limit=limit)
        return [audit.entry(row) for row in await self._state.select(sql, params)]

    def recipients(self) -> list[Recipient]:
        """Everybody who can be told of alerts."""
        return list(self._recipients.values())

    # ---- silences ------------------------------------------------------------------------------

    def silences(self) -> list[SilenceOut]:
        """Every silence, newest first."""
        found = sorted(self._manager.silences.values(), key=lambda x: x.created_ns, reverse=True)
        return [_silence_out(x) for x in found]

    def find_silence(self, silence_id: str) -> SilenceOut | None:
        """One silence."""
        x = self._manager.silences.get(silence_id)
        return None if x is None else _silence_out(x)

    async def add_silence(self, silence: SilenceOut, by: ActedBy | None = None) -> SilenceOut:
        """Record a silence (and log who did)."""
        x = Silence(silence.id, silence.community, silence.building, silence.device_id, silence.rule,
                    silence.starts_ns, silence.ends_ns, silence.reason, silence.created_by, silence.created_ns)
        also = await self._audit_write("silence", x.id, x.created_by, x.reason, by, *self._silence_place(silence),
                                       _silence_detail(silence))
        return _silence_out(await self._alerts.add_silence(x, also))

    async def expire_silence(self, silence_id: str, actor: str, by: ActedBy | None = None) -> SilenceOut:
        """End a silence now (and log who did)."""
        found = self.find_silence(silence_id)
        place = self._silence_place(found) if found is not None else (None, None)
        also = await self._audit_write("unsilence", silence_id, actor, None, by, *place,
                                       _silence_detail(found) if found is not None else None)
        return _silence_out(await self._alerts.expire_silence(silence_id, actor, also))

    # ---- live ----------------------------------------------------------------------------------

    def subscribe_notifications(self, listener: Callable[[list[NotificationOut]], None]) -> Callable[[], None]:
        """Call listener with each batch of committed notifications; returns the unsubscribe function."""
        def adapt(batch: list[Notification]) -> None:
            out = []
            for n in batch:  # an alert's, a call's or a work order's: its object says where
                recipient = person_of(n.recipient)
                if recipient != n.recipient and not n.recipient.endswith("#0"):
                    continue  # a 叫应 call goes out once per channel: the stream carries it once, as its person's
                out.append(NotificationOut(n.event_id, recipient, n.community, str(n.body["grid"]), n.payload))
            listener(out)

        self._outbox.listeners.append(adapt)

        def unsubscribe() -> None:
            self._outbox.listeners.remove(adapt)
        return unsubscribe

    def _on_events(self, events: list[AlertEvent]) -> None:
        self.changes.add((body["community"], body["grid"],
                          orjson.dumps({"event": event, "at": rfc3339(at), "alert": body}))
                         for body, event, at in events)

    def subscribe_changes(self, listener: Callable[[list[AlertChange]], None]) -> Callable[[], None]:
        """Call listener with each batch of committed alert changes; returns the unsubscribe function."""
        return self.changes.subscribe(listener)

    def changes_after(self, seq: int) -> list[AlertChange] | None:
        """Changes after seq still in the buffer; None when some of them are no longer kept."""
        return self.changes.after(seq)

    def last_change(self) -> int:
        """The newest change's number."""
        return self.changes.last()

    def set_link_maker(self, make: Callable[[str, str], str | None]) -> None:
        """How a notification to a recipient links to an alert's page."""
        self._manager.link_for = make


def _silence_detail(x: SilenceOut) -> dict[str, Any]:
    """What a silence mutes and for when, as the audit log keeps it."""
    return {k: v for k, v in (("community", x.community), ("building", x.building), ("device_id", x.device_id),
                              ("rule", x.rule), ("starts_at", rfc3339(x.starts_ns)),
                              ("ends_at", rfc3339(x.ends_ns))) if v is not None}


def _silence_out(x: Silence) -> SilenceOut:
    return SilenceOut(x.id, x.community, x.building, x.device_id, x.rule, x.starts_ns, x.ends_ns, x.reason,
                      x.created_by, x.created_ns)
