"""The HTTP API (docs/api.md): health, metrics, and /api/v1 behind bearer tokens."""

# No `from __future__ import annotations`: FastAPI resolves the local dependency alias at definition time.
import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from alerts.manager import AlertError, Notification, Silence, alert_payload
from alerts.store import SELECT_ONE, alert_from_row, fingerprint, query_alerts
from app.auth import Principal, TokenBook
from kernel.alerting import ROLES, AlertStatus, Level
from kernel.clock import rfc3339
from kernel.ids import UNKNOWN, DeviceType
from kernel.topics import TopicError, parse_device_topic

if TYPE_CHECKING:
    from app.service import Service


class DeviceOut(BaseModel):
    """A device's live state."""

    community: str
    device_type: str
    device_id: str
    building: str
    grid: str
    registered: bool
    online: bool | None
    status_at: str | None
    last_seen: str | None
    last_ts: str | None
    last_reading: dict[str, float | bool | str]
    readings: int
    duplicates: int
    lost: int
    firing: dict[str, str]


class CommunityOut(BaseModel):
    """A community's live state."""

    id: str
    name: str
    devices: int
    online: int
    offline: int
    unknown: int
    by_type: dict[str, int]
    last_seen: str | None


class DeadLetterOut(BaseModel):
    """A point the reading store refused, kept with the store's reason."""

    at: str | None
    reason: str
    measurement: str
    tags: dict[str, str]
    fields: dict[str, float | bool | str]
    ts: str | None


class RejectionOut(BaseModel):
    """A rejected message."""

    at: str | None
    topic: str
    reason: str
    detail: str
    payload: str


def build_api(service: "Service") -> FastAPI:
    """The FastAPI application of one service."""
    app = FastAPI(title="community brain", version="0.1.0",
                  description="Real-time IoT monitoring for residential communities (社区大脑).")
    tokens = TokenBook(service.settings)
    site = service.site

    def caller(request: Request) -> Principal:
        return tokens.principal(request)

    Caller = Annotated[Principal, Depends(caller)]

    def check_community(who: Principal, community: str | None) -> None:
        if community is not None and who.scope is not None and who.scope.community not in (None, community):
            raise HTTPException(403, f"community {community!r} is outside your scope")

    @app.get("/health", summary="State of broker, store and channels; 503 while a part is down")
    async def health() -> JSONResponse:
        ok, body = service.health()
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(service.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/api/v1/devices", response_model=list[DeviceOut], summary="Every device's live state")
    async def devices(who: Caller, community: str | None = None, device_type: DeviceType | None = None,
                building: str | None = None, grid: str | None = None,
                online: bool | None = None) -> list[dict[str, Any]]:
        check_community(who, community)
        out = []
        firing: dict[tuple[str, str], dict[str, str]] = {}
        for rule, community_, device_id, level in service.rules.engine.firing_now():
            firing.setdefault((community_, device_id), {})[rule] = level.value
        for s in service.devices.devices.values():
            if not site.in_scope(who.scope, s.community, s.grid):
                continue
            if ((community and s.community != community) or (device_type and s.device_type != device_type.value)
                    or (building and s.building != building) or (grid and s.grid != grid)
                    or (online is not None and s.online is not online)):
                continue
            out.append({
                "community": s.community, "device_type": s.device_type, "device_id": s.device_id,
                "building": s.building, "grid": s.grid,
                "registered": (s.community, s.device_id) in site.registered,
                "online": s.online, "status_at": rfc3339(s.status_ns), "last_seen": rfc3339(s.last_seen_ns),
                "last_ts": rfc3339(s.last_ts_ns), "last_reading": s.last_fields,
                "readings": s.readings, "duplicates": s.duplicates, "lost": s.lost,
                "firing": firing.get((s.community, s.device_id), {}),
            })
        out.sort(key=lambda d: (d["community"], d["device_type"], d["device_id"]))
        return out

    @app.get("/api/v1/communities", response_model=list[CommunityOut], summary="Each community's live state")
    async def communities(who: Caller) -> list[dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        for c in site.communities.values():
            rows[c.id] = _community_row(c.id, c.name)
        for s in service.devices.devices.values():
            if not site.in_scope(who.scope, s.community, s.grid):
                continue
            row = rows.setdefault(s.community, _community_row(s.community, s.community))
            row["devices"] += 1
            row["online" if s.online else "offline" if s.online is False else "unknown"] += 1
            row["by_type"][s.device_type] = row["by_type"].get(s.device_type, 0) + 1
            if s.last_seen_ns and (row["_seen"] is None or s.last_seen_ns > row["_seen"]):
                row["_seen"] = s.last_seen_ns
        visible = [r for r in rows.values() if site.in_scope(who.scope, r["id"], UNKNOWN)
                   or (who.scope is not None and who.scope.community == r["id"])]
        for r in visible:
            r["last_seen"] = rfc3339(r.pop("_seen"))
        return sorted(visible, key=lambda r: r["id"])

    @app.get("/api/v1/rejections", response_model=list[RejectionOut], summary="Latest rejected messages")
    async def rejections(who: Caller, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                   reason: str | None = None) -> list[dict[str, Any]]:
        out = []
        for r in service.rejections.latest(len(service.rejections)):
            if reason is not None and r.reason != reason:
                continue
            if who.scope is not None and not _rejection_in_scope(service, who, r.topic):
                continue
            out.append({"at": rfc3339(r.at_ns), "topic": r.topic, "reason": r.reason, "detail": r.detail,
                        "payload": r.payload_head})
            if len(out) >= limit:
                break
        return out

    @app.get("/api/v1/dead_letters", response_model=list[DeadLetterOut],
             summary="Points the reading store refused (admin, bureau and street office)")
    async def dead_letters(who: Caller, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
        if who.scope is not None:
            raise HTTPException(403, "dead letters are visible to the admin, the bureau and the street office")
        out = []
        for at_ns, reason, points in await service.pipeline.dead_letters(limit):
            for p in points:
                out.append({"at": rfc3339(at_ns), "reason": reason, "measurement": p.measurement,
                            "tags": p.tags, "fields": p.fields, "ts": rfc3339(p.ts_ns)})
        return out

    def alert_visible(who: Principal, community: str, grid: str) -> bool:
        return site.in_scope(who.scope, community, grid)

    @app.get("/api/v1/alerts", summary="Alerts, newest first (filters status, level, community, rule)")
    async def alerts(who: Caller, status: AlertStatus | None = None, level: Level | None = None,
                     community: str | None = None, rule: str | None = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
        check_community(who, community)
        sql, params = query_alerts(status.value if status else None, level.value if level else None, community,
                                   rule, 10_000 if who.scope is not None else limit)
        rows = await service.pipeline.state_select(sql, params)
        out = [alert_payload(a) for a, _e, _r in map(alert_from_row, rows) if alert_visible(who, a.community, a.grid)]
        return out[:limit]

    async def visible_alert(who: Principal, alert_id: str) -> dict[str, Any]:
        rows = await service.pipeline.state_select(SELECT_ONE, (alert_id,))
        if not rows:
            raise HTTPException(404, "no such alert")
        a, _e, _r = alert_from_row(rows[0])
        if not alert_visible(who, a.community, a.grid):
            raise HTTPException(404, "no such alert")  # the same answer as for an id that does not exist
        return alert_payload(a) | {"fingerprint": fingerprint(a.rule, a.community, a.building, a.device_id),
                                   "tier": ROLES[a.tier], "acknowledged_by": a.acked_by,
                                   "acknowledged_at": rfc3339(a.acked_ns), "ack_note": a.ack_note,
                                   "resolved_by": a.resolved_by, "resolved_at": rfc3339(a.resolved_ns),
                                   "resolve_note": a.resolve_note}

    @app.get("/api/v1/alerts/{alert_id}", summary="One alert with its history and notifications")
    async def alert(who: Caller, alert_id: str) -> dict[str, Any]:
        body = await visible_alert(who, alert_id)
        events = await service.pipeline.state_select(
            "SELECT at_ns, event, level, actor, note FROM alert_events WHERE alert_id = ? ORDER BY seq", (alert_id,))
        sent = await service.pipeline.state_select(
            "SELECT event_id, recipient, event, channel, status, attempts, last_error, delivered_ns, created_ns "
            "FROM outbox WHERE alert_id = ? ORDER BY created_ns, recipient", (alert_id,))
        body["history"] = [{"at": rfc3339(at), "event": ev, "level": lv, "actor": actor, "note": note}
                           for at, ev, lv, actor, note in events]
        body["notifications"] = [{"event_id": e, "recipient": r, "event": ev, "channel": ch, "status": st,
                                  "attempts": n, "last_error": err, "delivered_at": rfc3339(d),
                                  "created_at": rfc3339(c)} for e, r, ev, ch, st, n, err, d, c in sent]
        return body

    class ActionIn(BaseModel):
        """An acknowledgement or resolution."""

        model_config = ConfigDict(extra="forbid")
        note: str | None = Field(default=None, max_length=2000)

    async def act(who: Principal, alert_id: str, body: ActionIn | None, resolve: bool) -> dict[str, Any]:
        await visible_alert(who, alert_id)
        actor = who.recipient or who.role
        try:
            if resolve:
                a = await service.alerts.resolve(alert_id, actor, body.note if body else None)
            else:
                a = await service.alerts.acknowledge(alert_id, actor, body.note if body else None)
        except AlertError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        return alert_payload(a)

    @app.post("/api/v1/alerts/{alert_id}/ack", summary="Acknowledge: escalation and reminders stop")
    async def ack(who: Caller, alert_id: str, body: ActionIn | None = None) -> dict[str, Any]:
        return await act(who, alert_id, body, resolve=False)

    @app.post("/api/v1/alerts/{alert_id}/resolve", summary="Resolve with a note")
    async def resolve(who: Caller, alert_id: str, body: ActionIn | None = None) -> dict[str, Any]:
        return await act(who, alert_id, body, resolve=True)

    class SilenceIn(BaseModel):
        """Mute alerts matching every given key, from starts_at (default now) for duration_s or until ends_at."""

        model_config = ConfigDict(extra="forbid")
        community: str | None = None
        building: str | None = None
        device_id: str | None = None
        rule: str | None = None
        starts_at: datetime | None = None
        ends_at: datetime | None = None
        duration_s: float | None = Field(default=None, gt=0, le=30 * 86400)
        reason: str = Field(min_length=1, max_length=500)

    def silence_out(x: Silence) -> dict[str, Any]:
        return {"id": x.id, "community": x.community, "building": x.building, "device_id": x.device_id,
                "rule": x.rule, "starts_at": rfc3339(x.starts_ns), "ends_at": rfc3339(x.ends_ns), "reason": x.reason,
                "created_by": x.created_by, "created_at": rfc3339(x.created_ns)}

    def silence_in_scope(who: Principal, x: Silence | SilenceIn) -> bool:
        if who.scope is None:
            return True
        if x.community is None or x.community != who.scope.community:
            return False
        if who.scope.grid is None:
            return True
        if x.device_id is not None:
            return site.place(x.community, x.device_id).grid == who.scope.grid
        return x.building is not None and site.grid_of(x.community, x.building) == who.scope.grid

    @app.post("/api/v1/silences", status_code=201, summary="Mute a device, building, community or rule for a while")
    async def create_silence(who: Caller, body: SilenceIn) -> dict[str, Any]:
        if not any((body.community, body.building, body.device_id, body.rule)):
            raise HTTPException(422, "a silence needs at least one of community, building, device_id, rule")
        if (body.ends_at is None) == (body.duration_s is None):
            raise HTTPException(422, "give exactly one of ends_at and duration_s")
        if not silence_in_scope(who, body):
            raise HTTPException(403, "the silence would reach outside your scope")
        now = service.clock.now_ns()
        starts = int(body.starts_at.timestamp() * 1e9) if body.starts_at else now
        ends = int(body.ends_at.timestamp() * 1e9) if body.ends_at else starts + int((body.duration_s or 0) * 1e9)
        if ends <= max(starts, now):
            raise HTTPException(422, "the silence would end before it starts or in the past")
        x = Silence(uuid.uuid4().hex[:16], body.community, body.building, body.device_id, body.rule, starts, ends,
                    body.reason, who.recipient or who.role, now)
        return silence_out(await service.alerts.add_silence(x))

    @app.get("/api/v1/silences", summary="Silences in your scope, newest first (include_expired for the past ones)")
    async def silences(who: Caller, include_expired: bool = False) -> list[dict[str, Any]]:
        now = service.clock.now_ns()
        found = sorted(service.alert_manager.silences.values(), key=lambda x: x.created_ns, reverse=True)
        return [silence_out(x) for x in found if silence_in_scope(who, x) and (include_expired or x.ends_ns > now)]

    @app.delete("/api/v1/silences/{silence_id}", summary="End a silence now")
    async def end_silence(who: Caller, silence_id: str) -> dict[str, Any]:
        x = service.alert_manager.silences.get(silence_id)
        if x is None or not silence_in_scope(who, x):
            raise HTTPException(404, "no such silence")
        try:
            return silence_out(await service.alerts.expire_silence(silence_id, who.recipient or who.role))
        except AlertError as exc:
            raise HTTPException(exc.status, str(exc)) from None

    @app.get("/api/v1/events", summary="Server-Sent Events: notifications as they are committed")
    async def events(who: Caller, request: Request) -> StreamingResponse:
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1000)

        def listener(notifications: list[Notification]) -> None:
            for n in notifications:
                if who.recipient is not None and n.recipient != who.recipient:
                    continue
                body = orjson.loads(n.payload)
                if not alert_visible(who, body["alert"]["community"], body["alert"]["grid"]):
                    continue
                if queue.full():
                    queue.get_nowait()  # a reader that falls behind loses the oldest, not the service
                queue.put_nowait(b"id: " + n.event_id.encode() + b"\nevent: notification\ndata: " + n.payload
                                 + b"\n\n")

        service.alert_manager.listeners.append(listener)

        async def stream() -> AsyncIterator[bytes]:
            try:
                yield b": connected\n\n"
                stopping = asyncio.ensure_future(service.stopping.wait())
                try:
                    while not await request.is_disconnected() and not stopping.done():
                        got = asyncio.ensure_future(queue.get())
                        done, _ = await asyncio.wait({got, stopping}, timeout=15,
                                                     return_when=asyncio.FIRST_COMPLETED)
                        if got in done:
                            yield got.result()
                        else:
                            got.cancel()
                            if not done:
                                yield b": keep-alive\n\n"
                finally:
                    stopping.cancel()
            finally:
                service.alert_manager.listeners.remove(listener)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app


def _community_row(cid: str, name: str) -> dict[str, Any]:
    return {"id": cid, "name": name, "devices": 0, "online": 0, "offline": 0, "unknown": 0,
            "by_type": {}, "_seen": None}


def _rejection_in_scope(service: "Service", who: Principal, topic: str) -> bool:
    """A scoped caller sees rejections of devices in its scope; unplaceable topics only admins see."""
    try:
        where = parse_device_topic(service.settings.mqtt.prefix, topic)
        community, device_id = where.community, where.device_id
    except TopicError:
        parts = topic.split("/")
        if len(parts) < 4:
            return False
        community, device_id = parts[1], parts[3]
    place = service.site.place(community, device_id)
    return service.site.in_scope(who.scope, place.community, place.grid)
