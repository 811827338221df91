"""Shelters, supplies and door knocks in the API (CONTRACT §13, docs/resources.md): the supplies and their
ledger (movements, stock counts, the ledger as a spreadsheet), the shelters and their occupancy, a red
alert's door knocks."""

# No `from __future__ import annotations`: FastAPI resolves the local dependency alias at definition time.
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.actions import check_community
from app.auth import Principal, TokenBook
from app.http.caller import bearer
from app.http.errors import CONFLICT, NOT_FOUND
from app.idempotency import ActionLedger
from app.resource_export import ledger_file
from app.view import ServiceView
from kernel.resources import Movement


class MovementIn(BaseModel):
    """A movement of a supply's stock: how many in (+) or out (-) and why; for a stock count, the delta
    or the `quantity` counted (the service works out the delta)."""

    model_config = ConfigDict(extra="forbid")
    delta: int | None = Field(default=None, strict=True, ge=-1_000_000, le=1_000_000)
    quantity: int | None = Field(default=None, strict=True, ge=0, le=10_000_000)
    reason: Movement
    note: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _delta_or_count(self) -> "MovementIn":
        if self.quantity is not None and self.reason is not Movement.COUNT:
            raise ValueError("quantity is for a stock count (reason count); other movements give delta")
        if (self.delta is None) == (self.quantity is None):
            raise ValueError("give delta (or, for a stock count, the quantity counted)")
        return self


class OccupancyIn(BaseModel):
    """How many people are in a shelter now."""

    model_config = ConfigDict(extra="forbid")
    count: int = Field(strict=True, ge=0, le=1_000_000)


class KnockIn(BaseModel):
    """A door knock's outcome, with a note."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["reached", "not_reached"]
    note: str | None = Field(default=None, max_length=500)


def _client(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


def router(view: ServiceView, tokens: TokenBook, ledger: ActionLedger | None = None) -> APIRouter:
    """Supplies, shelters and door knocks."""
    r = APIRouter(prefix="/api/v1")
    Caller = Annotated[Principal, Depends(bearer(tokens))]
    actions = ledger or ActionLedger()
    Key = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
    res = view.resources

    @r.get("/supplies", summary="Emergency supplies in scope, with their stock (filters community, kind, "
           "expiring_within_days)")
    async def supplies(who: Caller, community: str | None = None, kind: str | None = None,
                       expiring_within_days: Annotated[int, Query(ge=0, le=3660)] | None = None
                       ) -> list[dict[str, Any]]:
        check_community(who, community)
        return res.supplies(who.scope, community=community, kind=kind, expiring_within_days=expiring_within_days)

    @r.get("/supplies/ledger", summary="The supplies' ledger, oldest first, as JSON, CSV or Excel")
    async def movements(who: Caller, community: str | None = None, supply: str | None = None,
                        since: datetime | None = None, format: Literal["json", "csv", "xlsx"] = "json",
                        lang: Literal["zh-CN", "en"] | None = None) -> Any:
        check_community(who, community)
        if since is not None and since.tzinfo is None:
            raise HTTPException(422, "since needs a time zone (e.g. 2025-06-01T08:00:00Z or +08:00)")
        # (nanoseconds since 1970 in 64 bits, as the audit log's `since`: earlier is everything)
        since_ns = min(max(int(since.timestamp() * 1e9), 0), 2**63 - 1) if since is not None else None
        rows = await res.movements(who.scope, community=community, supply_id=supply, since_ns=since_ns)
        if format == "json":
            return rows
        body, media, headers = ledger_file(rows, format, lang or view.settings.locale)
        return Response(body, media_type=media, headers=headers)

    @r.post("/supplies/{supply_id}/movements", responses=NOT_FOUND | CONFLICT,
            summary="Move a supply's stock (used, restocked, count, expired): the keeper, the keeper's "
            "community, the street office, admins")
    async def move(who: Caller, request: Request, supply_id: str, body: MovementIn, key: Key = None
                   ) -> dict[str, Any]:
        async def run() -> dict[str, Any]:
            delta = body.delta
            if body.quantity is not None:
                supply = next((s for s in res.supplies(who.scope) if s["id"] == supply_id), None)
                if supply is None:
                    raise HTTPException(404, "no such supply")
                delta = body.quantity - supply["quantity"]
                if delta == 0:
                    return supply  # (counted what the ledger says: nothing moves)
            assert delta is not None
            return await res.move(who, supply_id, delta, body.reason.value, body.note, _client(request))
        return await actions.run(f"{who.recipient or who.role}|move|{supply_id}|{key}" if key else None, run)

    @r.get("/shelters", summary="Shelters in scope, with their occupancy")
    async def shelters(who: Caller, community: str | None = None) -> list[dict[str, Any]]:
        check_community(who, community)
        return res.shelters(who.scope, community=community)

    @r.get("/shelters/capacity", summary="Each community's shelter capacity against its residents and the "
           "15 % norm")
    async def capacity(who: Caller) -> list[dict[str, Any]]:
        return [res.capacity(c) for c in view.site.communities
                if who.scope is None or who.scope.community in (None, c)]

    @r.post("/shelters/{shelter_id}/occupancy", responses=NOT_FOUND,
            summary="How many people are in a shelter now: its manager, its community, the street office")
    async def occupy(who: Caller, request: Request, shelter_id: str, body: OccupancyIn) -> dict[str, Any]:
        return await res.occupy(who, shelter_id, body.count, _client(request))

    @r.post("/alerts/{alert_id}/door-knocks/{vulnerable_id}", responses=NOT_FOUND,
            summary="Record a door knock of a red alert (reached or not reached, a note): the grid worker of "
            "the building's grid, its community, admins")
    async def knock(who: Caller, request: Request, alert_id: str, vulnerable_id: str, body: KnockIn
                    ) -> dict[str, Any]:
        alert = await view.alert(who.scope, alert_id)
        if alert is None:
            raise HTTPException(404, "no such alert")
        return await res.knock(who, alert, vulnerable_id, body.status, body.note, _client(request))

    return r
