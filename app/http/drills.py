"""Drills in the API (docs/drills.md): start one for a community, end it, list them, and the report (JSON, HTML,
Excel)."""

# No `from __future__ import annotations`: FastAPI resolves the local dependency alias at definition time.
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from app.actions import actor_of, check_community
from app.auth import Principal, TokenBook
from app.drill_report import XLSX, as_html, as_xlsx
from app.drill_view import DrillView
from app.http.caller import bearer
from app.http.errors import NOT_FOUND, error
from app.view import ServiceView
from kernel.errors import Reason, Refused

# Who may start and end a drill: the people who run one.
RUNNERS = frozenset({"admin", "street_office", "community"})
CONFLICT: dict[int | str, dict[str, Any]] = {409: error("A drill of the community is running, or it has ended")}


class DrillIn(BaseModel):
    """A drill to start: the community, the scenario played, and whether the bureau is told too."""

    model_config = ConfigDict(extra="forbid")
    community: str = Field(min_length=1, max_length=100)
    scenario: str = Field(min_length=1, max_length=100)
    bureau: bool = False


def router(view: ServiceView, tokens: TokenBook) -> APIRouter:
    """Drills: start, list, end, report."""
    r = APIRouter(prefix="/api/v1")
    Caller = Annotated[Principal, Depends(bearer(tokens))]

    def drills() -> DrillView:
        if view.drills is None:
            raise Refused(Reason.UNAVAILABLE, "drills are not run by a cluster yet")
        return view.drills

    def may_run(who: Principal) -> None:
        if who.role not in RUNNERS:
            raise HTTPException(403, f"a {who.role} token cannot run a drill (admins, street offices and "
                                     "communities can)")

    @r.post("/drills", summary="Start a drill of a community: its alerts are drill alerts until it ends",
            responses=CONFLICT)
    async def start(who: Caller, body: DrillIn) -> dict[str, Any]:
        may_run(who)
        check_community(who, body.community)
        return await drills().start(body.community, body.scenario, body.bureau, actor_of(who))

    @r.get("/drills", summary="Drills in scope, newest first")
    async def listing(who: Caller, community: str | None = None) -> list[dict[str, Any]]:
        check_community(who, community)
        return await drills().drills(who.scope, community)

    @r.post("/drills/{drill_id}/end", summary="End a drill: its report is computed and its score kept",
            responses=NOT_FOUND | CONFLICT)
    async def end(who: Caller, drill_id: str) -> dict[str, Any]:
        may_run(who)
        return await drills().end(who.scope, drill_id, actor_of(who))

    @r.get("/drills/{drill_id}/report", summary="A drill's report: times, who was late, the score (JSON, HTML, "
                                                "Excel)", responses=NOT_FOUND)
    async def report(who: Caller, drill_id: str, format: Literal["json", "html", "xlsx"] = "json",
                     lang: Annotated[Literal["zh-CN", "en"] | None, Query()] = None) -> Response:
        found = await drills().report(who.scope, drill_id)
        if found is None:
            raise HTTPException(404, "no such drill")
        words = lang or view.settings.locale
        if format == "html":
            return HTMLResponse(as_html(found, words))
        if format == "xlsx":
            return Response(as_xlsx(found, words), media_type=XLSX,
                            headers={"Content-Disposition": f'attachment; filename="drill-{drill_id}.xlsx"'})
        return Response(orjson.dumps(found), media_type="application/json")

    return r
