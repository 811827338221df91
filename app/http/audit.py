"""GET /api/v1/audit: who acknowledged, resolved, handed over or silenced what, moved a supply's stock,
counted a shelter's occupancy or recorded a door knock (admins only)."""

# No `from __future__ import annotations`: FastAPI resolves the local dependency alias at definition time.
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from app.auth import Principal, TokenBook
from app.http.caller import bearer
from app.view import ServiceView

LAST_NS = 2**63 - 1
Action = Literal["acknowledge", "resolve", "handover", "silence", "unsilence", "supply_movement",
                 "shelter_occupancy", "door_knock"]


class AuditEntryOut(BaseModel):
    """One action a person took, as the audit log keeps it."""

    seq: int
    at: str | None
    actor: str
    role: str
    client: str | None
    action: Action
    alert_id: str | None
    silence_id: str | None
    supply_id: str | None = None
    shelter_id: str | None = None
    community: str | None
    grid: str | None
    note: str | None
    detail: dict[str, Any]


class AuditPageOut(BaseModel):
    """A page of the audit log, oldest first; `next_after` is the `after` of the next page (None: no more)."""

    entries: list[AuditEntryOut]
    next_after: int | None


def router(view: ServiceView, tokens: TokenBook) -> APIRouter:
    """The audit log."""
    r = APIRouter(prefix="/api/v1")
    Caller = Annotated[Principal, Depends(bearer(tokens))]

    @r.get("/audit", response_model=AuditPageOut,
           summary="Who acknowledged, resolved, handed over or silenced what, oldest first (admin only)")
    async def audit(who: Caller, since: datetime | None = None,
                    actor: Annotated[str | None, Query(max_length=64)] = None, action: Action | None = None,
                    after: Annotated[int | None, Query(ge=0, le=2**62)] = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        if who.role != "admin":
            raise HTTPException(403, "the audit log is visible to admins only")
        if since is not None and since.tzinfo is None:
            raise HTTPException(422, "since needs a time zone (e.g. 2025-06-01T08:00:00Z or +08:00)")
        # Times are kept as nanoseconds since 1970 in 64 bits: one before 1970 matches everything, as 1970
        # does, and one after 2262 nothing, as 2262 does.
        since_ns = min(max(int(since.timestamp() * 1e9), 0), LAST_NS) if since is not None else None
        entries = await view.audit(since_ns=since_ns, actor=actor, action=action, after=after, limit=limit)
        return {"entries": entries, "next_after": entries[-1]["seq"] if len(entries) == limit else None}

    return r
