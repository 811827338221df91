"""The service's HTTP application: the API (app/http) and the pages (app/web), over one ServiceView."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, FastAPI
from starlette.requests import Request

from app.auth import TokenBook
from app.http import api_routers, whistles
from app.http.errors import API_ERRORS, refused_answer
from app.http.push import push_first
from app.links import OrderLinks
from app.view import ServiceView
from app.web import mount_pages, session_key
from kernel.errors import Reason, Refused

# Requests that never write the state database (signing in and out only sets or drops a cookie).
READS = frozenset({"GET", "HEAD", "OPTIONS"})
NO_STATE_WRITE = frozenset({"/login", "/logout"})


def refuse_writes_while_unwritable(view: ServiceView) -> Callable[[Request], Awaitable[None]]:
    """Every other request (an action, a provider's push) answers 503 while the state database cannot be
    written (a full, read-only or failing disk: ingest/disk_watch.py); reads go on."""
    async def check(request: Request) -> None:
        if request.method in READS or request.url.path in NO_STATE_WRITE:
            return
        why = view.state_unwritable()
        if why is not None:
            raise Refused(Reason.UNAVAILABLE, f"not now: {why}")
    return check


def build_app(view: ServiceView) -> FastAPI:
    """The FastAPI application of one service."""
    app = FastAPI(title="community brain", version="0.1.0",
                  description="Real-time IoT monitoring for residential communities (社区大脑).",
                  dependencies=[Depends(refuse_writes_while_unwritable(view))])
    # An action the service refuses answers its status and why (app/http/errors.py).
    app.add_exception_handler(Refused, refused_answer)
    tokens = TokenBook(view.settings)
    for r in api_routers(view, tokens):
        # Every API route documents its error answers (401, 403, 422, 429) in /openapi.json.
        app.include_router(r, responses=API_ERRORS if r.prefix.startswith("/api/") else None)
    # 吹哨报到: departments act through signed links; the whistle-blower and supervisors get the whistle's page.
    links = OrderLinks(session_key(view), view.settings.whistles.link_ttl_s, view.settings.http.public_url)
    view.whistles.book.link_for, view.whistles.book.whistle_link = links.make, links.whistle_page
    app.include_router(whistles.router(view, tokens, links), responses=API_ERRORS)
    app.include_router(whistles.order_router(view, links), responses=API_ERRORS)
    mount_pages(app, view, tokens, links)
    return app


def serving_app(view: ServiceView) -> Callable[..., Awaitable[None]]:
    """What the service's HTTP listener serves: the application, with the platforms' pushes taken
    ahead of it (app/http/push.py)."""
    return push_first(build_app(view), view)
