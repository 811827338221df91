"""GET /api/v1/communities."""

# No `from __future__ import annotations`: FastAPI resolves the local dependency alias at definition time.
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from app.auth import Principal, TokenBook
from app.http.caller import bearer
from app.view import ServiceView


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


def router(view: ServiceView, tokens: TokenBook) -> APIRouter:
    """Communities' live state."""
    r = APIRouter(prefix="/api/v1")
    Caller = Annotated[Principal, Depends(bearer(tokens))]

    @r.get("/communities", response_model=list[CommunityOut], summary="Each community's live state")
    async def communities(who: Caller) -> list[dict[str, Any]]:
        return view.communities(who.scope)

    return r
