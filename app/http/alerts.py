"""GET /api/v1/alerts, one alert, and the actions on it (acknowledge, resolve, hand over)."""

# No `from __future__ import annotations`: FastAPI resolves the local dependency alias at definition time.
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from app.actions import Category, act, acted_by, check_community, note_with_category
from app.auth import Principal, TokenBook
from app.http.caller import bearer
from app.http.errors import CONFLICT, NOT_FOUND
from app.http.schemas import AlertDetailOut, AlertOut
from app.idempotency import ActionLedger
from app.view import ServiceView
from kernel.alerting import AlertStatus, Level


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
        return body | view.resources.on_hand(body) | view.resources.door_knocks(who, body)

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
