"""GET /api/v1/alerts, one alert, and the actions on it (acknowledge, resolve, hand over)."""

# No `from __future__ import annotations`: FastAPI resolves the local dependency alias at definition time.
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from app.auth import Principal, TokenBook
from app.http.caller import acted_by, bearer, check_community
from app.http.errors import CONFLICT, NOT_FOUND
from app.http.idempotency import ActionLedger
from app.http.schemas import AlertDetailOut, AlertOut
from app.view import ActedBy, ActionError, ServiceView
from kernel.alerting import AlertStatus, Level

Category = Literal["real", "false_alarm", "test", "device_fault"]
CATEGORIES: tuple[str, ...] = ("real", "false_alarm", "test", "device_fault")


def note_with_category(note: str | None, category: str | None) -> str | None:
    """The note as stored: a resolution's category goes first, in brackets ("[false_alarm] ...")."""
    if category is None:
        return note
    return f"[{category}] {note}" if note else f"[{category}]"


def split_category(note: str | None) -> tuple[str | None, str | None]:
    """The category and the note of a stored note."""
    if note and note.startswith("["):
        head, _, rest = note[1:].partition("]")
        if head in CATEGORIES:
            return head, rest.strip() or None
    return None, note


class ActionIn(BaseModel):
    """An acknowledgement or resolution."""

    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=2000)
    category: Category | None = None


class HandOverIn(BaseModel):
    """A hand over to another recipient of the same scope."""

    model_config = ConfigDict(extra="forbid")
    to: str = Field(min_length=1, max_length=64)
    note: str | None = Field(default=None, max_length=2000)


async def act(view: ServiceView, ledger: ActionLedger, who: Principal, alert_id: str, action: str,
              note: str | None, *, to: str | None = None, key: str | None = None,
              by: ActedBy | None = None, via: str = "api") -> dict[str, Any]:
    """Acknowledge, resolve or hand over an alert the caller may see (or, to acknowledge, was called for),
    once per idempotency key (`by`: the role and client address the audit log records; `via`: how, for
    叫应's ledger)."""
    if await view.alert(who.scope, alert_id) is None and not (action == "ack" and await called(view, who, alert_id)):
        raise HTTPException(404, "no such alert")  # the same answer as for an id that does not exist
    actor = who.recipient or who.role

    async def run() -> dict[str, Any]:
        if action == "resolve":
            return await view.resolve(alert_id, actor, note, by)
        if action == "handover":
            assert to is not None
            if not hand_over_allowed(view, who, alert_id, to):
                raise ActionError(422, f"{to!r} is not a recipient of this alert's scope")
            return await view.hand_over(alert_id, actor, to, note, by)
        return await view.acknowledge(alert_id, actor, note, by, via=via)

    try:
        return await ledger.run(f"{actor}|{alert_id}|{action}|{key}" if key else None, run)
    except ActionError as exc:
        raise HTTPException(exc.status, str(exc)) from None


async def called(view: ServiceView, who: Principal, alert_id: str) -> bool:
    """Whether 叫应 called the caller for this alert (a backup person of another grid may answer it)."""
    if who.recipient is None:
        return False
    return any(e["person"] == who.recipient for e in await view.ledger(None, alert_id) or [])


def hand_over_candidates(view: ServiceView, who: Principal, community: str, grid: str) -> list[Any]:
    """Recipients an alert at (community, grid) may be handed over to: those who cover it and are in the
    caller's scope (a grid worker hands over within their grid, a community within their community)."""
    out = []
    for r in view.recipients():
        if r.id == who.recipient:
            continue
        scope = r.scope if (r.scope.community or r.scope.grid) else None
        if not view.site.in_scope(scope, community, grid):
            continue  # they would not see it
        if who.scope is not None and (r.scope.community != who.scope.community
                                      or (who.scope.grid is not None and r.scope.grid != who.scope.grid)):
            continue
        out.append(r)
    return out


def hand_over_allowed(view: ServiceView, who: Principal, alert_id: str, to: str) -> bool:
    """Whether the caller may hand this (open) alert over to `to`."""
    found = next((a for a in view.open_alerts(who.scope) if a["id"] == alert_id), None)
    if found is None:
        return True  # the service answers that it is resolved
    return any(r.id == to for r in hand_over_candidates(view, who, found["community"], found["grid"]))


def router(view: ServiceView, tokens: TokenBook, ledger: ActionLedger | None = None) -> APIRouter:
    """Alerts and what people do with them."""
    r = APIRouter(prefix="/api/v1")
    Caller = Annotated[Principal, Depends(bearer(tokens))]
    actions = ledger or ActionLedger()
    Key = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]

    @r.get("/alerts", response_model=list[AlertOut],
           summary="Alerts, newest first (filters status, level, community, rule)")
    async def alerts(who: Caller, status: AlertStatus | None = None, level: Level | None = None,
                     community: str | None = None, rule: str | None = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
        check_community(who, community)
        return await view.alerts(who.scope, status=status.value if status else None,
                                 level=level.value if level else None, community=community, rule=rule, limit=limit)

    @r.get("/alerts/{alert_id}", response_model=AlertDetailOut, responses=NOT_FOUND,
           summary="One alert with its history and notifications")
    async def alert(who: Caller, alert_id: str) -> dict[str, Any]:
        body = await view.alert(who.scope, alert_id)
        if body is None:
            raise HTTPException(404, "no such alert")
        return body

    @r.post("/alerts/{alert_id}/ack", response_model=AlertOut, responses=NOT_FOUND | CONFLICT,
            summary="Acknowledge: escalation and reminders stop")
    async def ack(who: Caller, request: Request, alert_id: str, body: ActionIn | None = None,
                  key: Key = None) -> dict[str, Any]:
        return await act(view, actions, who, alert_id, "ack", body.note if body else None, key=key,
                         by=acted_by(who, request))

    @r.post("/alerts/{alert_id}/resolve", response_model=AlertOut, responses=NOT_FOUND | CONFLICT,
            summary="Resolve with a note (and a category)")
    async def resolve(who: Caller, request: Request, alert_id: str, body: ActionIn | None = None,
                      key: Key = None) -> dict[str, Any]:
        note = note_with_category(body.note, body.category) if body else None
        return await act(view, actions, who, alert_id, "resolve", note, key=key, by=acted_by(who, request))

    @r.post("/alerts/{alert_id}/handover", response_model=AlertOut, responses=NOT_FOUND | CONFLICT,
            summary="Hand over to another recipient of the same scope")
    async def handover(who: Caller, request: Request, alert_id: str, body: HandOverIn,
                       key: Key = None) -> dict[str, Any]:
        return await act(view, actions, who, alert_id, "handover", body.note, to=body.to, key=key,
                         by=acted_by(who, request))

    return r
