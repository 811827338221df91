"""吹哨报到 in the API (docs/api.md): blow a whistle, list and read whistles, the whistle-blower's
confirmation and rating, and the stats (`router`); the departments' work orders through their signed
links (`order_router`)."""

# No `from __future__ import annotations`: FastAPI resolves the local dependency alias at definition time.
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from app.actions import WhistleIn, actor_of, check_community, place_of_whistle
from app.auth import Principal, TokenBook
from app.http.caller import bearer
from app.http.errors import NOT_FOUND, error
from app.idempotency import ActionLedger
from app.links import OrderLinks
from app.view import ServiceView


class StepIn(BaseModel):
    """A department's step, with a note."""

    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=2000)


class ConfirmIn(BaseModel):
    """The whistle-blower's confirmation: a rating from 1 to 5, and a note."""

    model_config = ConfigDict(extra="forbid")
    rating: int = Field(ge=1, le=5, strict=True)
    note: str | None = Field(default=None, max_length=2000)


# A step already taken, or taken out of order (sign, arrive, done, then confirm).
STEP_CONFLICT: dict[int | str, dict[str, Any]] = {409: error("The work order's state does not allow the step")}


def router(view: ServiceView, tokens: TokenBook, links: OrderLinks, ledger: ActionLedger | None = None) -> APIRouter:
    """Whistles: blow, list, stats, one whistle, and the whistle-blower's confirmation."""
    r = APIRouter(prefix="/api/v1")
    Caller = Annotated[Principal, Depends(bearer(tokens))]
    actions = ledger or ActionLedger()
    Key = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]

    @r.post("/whistles", summary="Blow a whistle: one work order per department summoned", responses=NOT_FOUND)
    async def blow(who: Caller, body: WhistleIn, key: Key = None) -> dict[str, Any]:
        if not view.whistles.may_blow(who.role):
            raise HTTPException(403, f"a {who.role} token cannot blow a whistle (grid workers and communities can)")
        community, grid, where = await place_of_whistle(view, who, body)

        async def run() -> dict[str, Any]:
            return await view.whistles.blow(grade=body.grade, what=body.what, where=where, community=community,
                                            grid=grid, alert_id=body.alert_id, blower=actor_of(who),
                                            departments=list(body.departments))
        return await actions.run(f"{actor_of(who)}|whistle|{key}" if key else None, run)

    @r.get("/whistles", summary="Whistles in scope, newest first (status open, done, closed or overdue)")
    async def whistles(who: Caller, status: Literal["open", "done", "closed", "overdue"] | None = None,
                       community: str | None = None,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
        check_community(who, community)
        return await view.whistles.whistles(who.scope, status=status, community=community, limit=limit)

    @r.get("/whistles/stats", summary="Open, overdue and closed work orders, response times and ratings")
    async def stats(who: Caller, days: Annotated[float, Query(gt=0, le=3660)] | None = None) -> dict[str, Any]:
        since = view.now_ns() - int(days * 86400 * 1e9) if days is not None else None
        return await view.whistles.stats(who.scope, since)

    @r.get("/whistles/{whistle_id}", summary="One whistle with its work orders, their trail and notifications",
           responses=NOT_FOUND)
    async def whistle(who: Caller, whistle_id: str) -> dict[str, Any]:
        body = await view.whistles.whistle(who.scope, whistle_id)
        if body is None:
            raise HTTPException(404, "no such whistle")
        if who.role == "admin":  # an operator (or a scenario) may act for a department
            for o in body["orders"]:
                o["link_token"] = links.make(o["id"], "admin")[0]
        return body

    @r.post("/whistles/{whistle_id}/orders/{department}/confirm",
            summary="The whistle-blower confirms a finished work order and rates the department (1-5)",
            responses=NOT_FOUND | STEP_CONFLICT)
    async def confirm(who: Caller, whistle_id: str, department: str, body: ConfirmIn,
                      key: Key = None) -> dict[str, Any]:
        if await view.whistles.whistle(who.scope, whistle_id) is None:
            raise HTTPException(404, "no such whistle")

        async def run() -> dict[str, Any]:
            return await view.whistles.confirm(whistle_id, department, actor_of(who), body.rating, body.note)
        return await actions.run(f"{actor_of(who)}|{whistle_id}.{department}|confirm|{key}" if key else None, run)

    return r


def order_router(view: ServiceView, links: OrderLinks, ledger: ActionLedger | None = None) -> APIRouter:
    """Work orders for their department's signed link (the token in the link is the credential)."""
    r = APIRouter(prefix="/api/v1")
    actions = ledger or ActionLedger()
    Key = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]

    @r.get("/work-orders/{token}", summary="A work order, for its department's signed link (no bearer token)",
           responses=NOT_FOUND)
    async def order(token: str) -> dict[str, Any]:
        found = links.open(token)
        body = await view.whistles.order_by_id(found[0]) if found else None
        if body is None:
            raise HTTPException(404, "no such work order, or the link has expired")
        return body

    @r.post("/work-orders/{token}/{step}", summary="A department signs, arrives or finishes, with a note",
            responses=NOT_FOUND | STEP_CONFLICT)
    async def step(token: str, step: Literal["sign", "arrive", "done"], body: StepIn | None = None,
                   key: Key = None) -> dict[str, Any]:
        found = links.open(token)
        if found is None:
            raise HTTPException(404, "no such work order, or the link has expired")
        order_id, contact = found

        async def run() -> dict[str, Any]:
            return await view.whistles.step(order_id, step, contact, body.note if body else None)
        return await actions.run(f"{contact}|{order_id}|{step}|{key}" if key else None, run)

    return r
