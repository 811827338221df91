"""The pages for the people on duty (docs/pages.md), over ServiceView: one router per page family
(sign_in, alerts, devices, sources, stream, whistles, resources, resilience), the templates and the static files."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app.auth import TokenBook
from app.links import OrderLinks
from app.view import ServiceView
from app.web import alerts, devices, resilience, resources, sign_in, sources, stream, whistles
from app.web.kit import HERE, LoginFirst, PageKit, to_login_page
from app.web.sessions import session_key

__all__ = ["mount_pages", "session_key"]


def mount_pages(app: FastAPI, view: ServiceView, tokens: TokenBook, links: OrderLinks) -> PageKit:
    """Add the pages, their live stream and their static files to the application; notifications link
    to the pages when the service knows the address people reach it at (http.public_url)."""
    kit = PageKit(view, tokens)
    app.add_exception_handler(LoginFirst, to_login_page)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    if kit.public:
        base = kit.public.rstrip("/")
        sessions = kit.sessions
        view.set_link_maker(lambda alert_id, recipient: f"{base}/a/{sessions.link(alert_id, recipient)}")
        view.set_answer_link_maker(lambda alert_id, recipient: f"{base}/r/{sessions.answer_link(alert_id, recipient)}")
    for r in (sign_in.router(kit), alerts.router(kit), devices.router(kit), sources.router(kit), stream.router(kit),
              whistles.router(kit, links), resources.router(kit), resilience.router(kit)):
        app.include_router(r)
    return kit
