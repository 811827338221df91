"""Pushes of carrier platforms (`/ingest/ctwing/{id}`, `/ingest/onenet/{id}`) and the devices heard from
that nobody registered (`GET /api/v1/unregistered`)."""

# No `from __future__ import annotations`: FastAPI resolves the local dependency alias at definition time.
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from app.auth import Principal, TokenBook
from app.http.caller import bearer
from app.view import ServiceView

# A push is one device message; anything much larger is not one.
MAX_PUSH_BYTES = 256 * 1024


class UnregisteredOut(BaseModel):
    """An address heard from through a source that no registered device has."""

    source: str
    source_type: str
    address: str
    port: int | None
    community: str | None
    device_type: str | None
    first_seen: str | None
    last_seen: str | None
    messages: int
    sample: str
    devices_line: str


def router(view: ServiceView, tokens: TokenBook) -> APIRouter:
    """The platforms' push endpoints (their own credentials, no bearer token) and the unregistered list."""
    r = APIRouter()
    Caller = Annotated[Principal, Depends(bearer(tokens))]

    @r.api_route("/ingest/{source_type}/{source_id}", methods=["GET", "POST"], response_class=PlainTextResponse,
                 summary="A platform's push (CTWing: ?token=; OneNET: signed, with its URL check)",
                 responses={401: {"description": "no token or signature"}, 403: {"description": "wrong one"},
                            404: {"description": "no such source"}, 503: {"description": "push again"}})
    async def push(source_type: str, source_id: str, request: Request) -> PlainTextResponse:
        body = await request.body()
        if len(body) > MAX_PUSH_BYTES:
            return PlainTextResponse(f"a push is at most {MAX_PUSH_BYTES} bytes", status_code=413)
        answer = await view.sources.push(source_type, source_id, request.method, dict(request.query_params), body)
        return PlainTextResponse(answer.text, status_code=answer.status)

    @r.get("/api/v1/unregistered", response_model=list[UnregisteredOut],
           summary="Devices heard from through a source that no registered device has")
    async def unregistered(who: Caller) -> list[dict[str, Any]]:
        return view.sources.unregistered(who.scope)

    return r
