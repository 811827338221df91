"""Pushes of carrier platforms (`/ingest/ctwing/{id}`, `/ingest/onenet/{id}`) and the devices heard from
that nobody registered (`GET /api/v1/unregistered`)."""

# No `from __future__ import annotations`: FastAPI resolves the local dependency alias at definition time.
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from app.auth import Principal, TokenBook
from app.http.caller import bearer
from app.http.errors import API_ERRORS
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
        # (served by push_first below; this route documents it and answers whatever comes past it)
        body = await request.body()
        if len(body) > MAX_PUSH_BYTES:
            return PlainTextResponse(f"a push is at most {MAX_PUSH_BYTES} bytes", status_code=413)
        answer = await view.sources.push(source_type, source_id, request.method, dict(request.query_params), body)
        return PlainTextResponse(answer.text, status_code=answer.status)

    @r.get("/api/v1/unregistered", response_model=list[UnregisteredOut], responses=API_ERRORS,
           summary="Devices heard from through a source that no registered device has")
    async def unregistered(who: Caller) -> list[dict[str, Any]]:
        return view.sources.unregistered(who.scope)

    return r


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def push_first(app: ASGIApp, view: ServiceView) -> ASGIApp:
    """The application with the platforms' pushes answered ahead of it, as its own route would answer
    them: a push crossed FastAPI's routing and dependencies in ~300 µs of CPU, ten times what it
    costs to take (bench/push_throughput.py). Everything else goes to the application."""

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        parts: list[str] = path.split("/") if path.startswith("/ingest/") else []
        if len(parts) != 4 or scope["method"] not in ("GET", "POST") or not parts[2] or not parts[3]:
            await app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_PUSH_BYTES:
                await _answer(send, 413, f"a push is at most {MAX_PUSH_BYTES} bytes")
                return
            if not message.get("more_body"):
                break
        why = view.state_unwritable() if scope["method"] == "POST" else None
        if why is not None:
            await _answer(send, 503, f"not now: {why}")
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        answer = await view.sources.push(parts[2], parts[3], scope["method"], query, bytes(body))
        await _answer(send, answer.status, answer.text)

    return asgi


async def _answer(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
