"""GET /api/v1/rejections and /api/v1/dead_letters."""

# No `from __future__ import annotations`: FastAPI resolves the local dependency alias at definition time.
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from app.auth import Principal, TokenBook
from app.http.caller import bearer
from app.view import ServiceView


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
    # A message of another system's device (docs/devices.md): the source and the address it came from.
    source: str | None = None
    address: str | None = None


def router(view: ServiceView, tokens: TokenBook) -> APIRouter:
    """What the service refused: messages, and points the store refused."""
    r = APIRouter(prefix="/api/v1")
    Caller = Annotated[Principal, Depends(bearer(tokens))]

    @r.get("/rejections", response_model=list[RejectionOut], summary="Latest rejected messages")
    async def rejections(who: Caller, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                         reason: str | None = None) -> list[dict[str, Any]]:
        return view.rejections(who.scope, limit, reason)

    @r.get("/dead_letters", response_model=list[DeadLetterOut],
           summary="Points the reading store refused (admin, bureau and street office)")
    async def dead_letters(who: Caller, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
        if who.scope is not None:
            raise HTTPException(403, "dead letters are visible to the admin, the bureau and the street office")
        return await view.dead_letters(limit)

    return r
