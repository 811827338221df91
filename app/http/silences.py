"""POST, GET and DELETE /api/v1/silences."""

# No `from __future__ import annotations`: FastAPI resolves the local dependency alias at definition time.
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from app.actions import acted_by
from app.auth import Principal, TokenBook
from app.http.caller import bearer
from app.http.errors import NOT_FOUND
from app.http.schemas import SilenceAnswer
from app.view import ServiceView, SilenceOut
from kernel.clock import rfc3339

LAST_NS = 2**63 - 1


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


def silence_out(x: SilenceOut) -> dict[str, Any]:
    """A silence as the API answers it."""
    return {"id": x.id, "community": x.community, "building": x.building, "device_id": x.device_id,
            "rule": x.rule, "starts_at": rfc3339(x.starts_ns), "ends_at": rfc3339(x.ends_ns), "reason": x.reason,
            "created_by": x.created_by, "created_at": rfc3339(x.created_ns)}


def router(view: ServiceView, tokens: TokenBook) -> APIRouter:
    """Silences: mute a place or a rule for a while."""
    r = APIRouter(prefix="/api/v1")
    Caller = Annotated[Principal, Depends(bearer(tokens))]
    site = view.site

    def in_scope(who: Principal, x: SilenceOut | SilenceIn) -> bool:
        if who.scope is None:
            return True
        if x.community is None or x.community != who.scope.community:
            return False
        if who.scope.grid is None:
            return True
        if x.device_id is not None:
            return site.place(x.community, x.device_id).grid == who.scope.grid
        return x.building is not None and site.grid_of(x.community, x.building) == who.scope.grid

    @r.post("/silences", status_code=201, response_model=SilenceAnswer,
            summary="Mute a device, building, community or rule for a while")
    async def create_silence(who: Caller, request: Request, body: SilenceIn) -> dict[str, Any]:
        if not any((body.community, body.building, body.device_id, body.rule)):
            raise HTTPException(422, "a silence needs at least one of community, building, device_id, rule")
        if (body.ends_at is None) == (body.duration_s is None):
            raise HTTPException(422, "give exactly one of ends_at and duration_s")
        if not in_scope(who, body):
            raise HTTPException(403, "the silence would reach outside your scope")
        now = view.now_ns()
        starts = int(body.starts_at.timestamp() * 1e9) if body.starts_at else now
        ends = int(body.ends_at.timestamp() * 1e9) if body.ends_at else starts + int((body.duration_s or 0) * 1e9)
        if not (0 <= starts <= LAST_NS and 0 <= ends <= LAST_NS):
            # Kept as nanoseconds since 1970 in 64 bits.
            raise HTTPException(422, "starts_at and ends_at must lie between 1970 and 2262")
        if ends <= max(starts, now):
            raise HTTPException(422, "the silence would end before it starts or in the past")
        x = SilenceOut(uuid.uuid4().hex[:16], body.community, body.building, body.device_id, body.rule, starts, ends,
                       body.reason, who.recipient or who.role, now)
        return silence_out(await view.add_silence(x, acted_by(who, request)))

    @r.get("/silences", response_model=list[SilenceAnswer],
           summary="Silences in your scope, newest first (include_expired for the past ones)")
    async def silences(who: Caller, include_expired: bool = False) -> list[dict[str, Any]]:
        now = view.now_ns()
        return [silence_out(x) for x in view.silences()
                if in_scope(who, x) and (include_expired or x.ends_ns > now)]

    @r.delete("/silences/{silence_id}", response_model=SilenceAnswer, responses=NOT_FOUND,
              summary="End a silence now")
    async def end_silence(who: Caller, request: Request, silence_id: str) -> dict[str, Any]:
        x = view.find_silence(silence_id)
        if x is None or not in_scope(who, x):
            raise HTTPException(404, "no such silence")
        return silence_out(await view.expire_silence(silence_id, who.recipient or who.role, acted_by(who, request)))

    return r
