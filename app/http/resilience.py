"""GET /api/v1/communities/{community_id}/resilience: the live resilience scorecard (CONTRACT §13,
docs/resilience.md)."""

# No `from __future__ import annotations`: FastAPI resolves the local dependency alias at definition time.
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, ConfigDict

from app.auth import Principal, TokenBook
from app.http.caller import bearer
from app.http.errors import NOT_FOUND, UNAVAILABLE
from app.view import ServiceView


class IndicatorOut(BaseModel):
    """One indicator: its value (null without records, with the `reason`), unit, target and score (0–100);
    `better` says which way the value improves. Some carry more (`count`, and for the functionality curve
    the latest event's `curve` of [seconds since its start, Q])."""

    model_config = ConfigDict(extra="allow")
    id: str
    name: str
    value: float | None
    unit: str
    target: float
    score: float
    better: Literal["higher", "lower"]
    reason: str | None


class CategoryOut(BaseModel):
    """A category: the mean of its indicators' scores, and its rating."""

    id: str
    name: str
    score: float
    rating: Literal["low", "medium", "high"]
    indicators: list[IndicatorOut]


class OverallOut(BaseModel):
    """The mean of the categories' scores, and its rating (low < 50 ≤ medium < 80 ≤ high)."""

    score: float
    rating: Literal["low", "medium", "high"]


class ScorecardOut(BaseModel):
    """A community's resilience scorecard, computed from the service's own records when asked."""

    community: str
    as_of: str
    overall: OverallOut
    categories: list[CategoryOut]


def router(view: ServiceView, tokens: TokenBook) -> APIRouter:
    """The resilience scorecard of a community."""
    r = APIRouter(prefix="/api/v1")
    Caller = Annotated[Principal, Depends(bearer(tokens))]

    @r.get("/communities/{community_id}/resilience", response_model=ScorecardOut,
           responses=NOT_FOUND | UNAVAILABLE,
           summary="A community's resilience scorecard: categories, indicators, scores and ratings")
    async def resilience(who: Caller, community_id: Annotated[str, Path(max_length=64)],
                         lang: Literal["zh-CN", "en"] | None = None) -> dict[str, Any]:
        scope = who.scope
        if scope is not None and scope.community not in (None, community_id):
            raise HTTPException(404, "no such community")  # the same answer as for one that does not exist
        card = await view.resilience.card(community_id, lang)
        if card is None:
            raise HTTPException(404, "no such community")
        return card

    return r
