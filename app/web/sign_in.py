"""Logging in and out, and the links that log a person in for one alert: the notification's alert link
(/a/…) and the SMS's 叫应 answer link (/r/…)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from app.actions import acted_by
from app.web.kit import PageKit
from app.web.sessions import COOKIE, home_of, principal_of
from app.words import words
from kernel.errors import Refused

EXPIRED = "/login?expired=1"


def router(kit: PageKit) -> APIRouter:
    """/, /login, /logout, /a/{signed} and /r/{signed}."""
    r = APIRouter(include_in_schema=False)
    sessions, tokens = kit.sessions, kit.tokens

    @r.get("/")
    async def root(request: Request) -> Response:
        s = kit.page_session(request)
        return kit.to_login() if s is None else RedirectResponse(home_of(principal_of(s)), status_code=303)

    @r.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request) -> HTMLResponse:
        return kit.render(request, "login.html", None, error=None)

    @r.post("/login")
    async def login(request: Request) -> Response:
        if not kit.same_origin(request):
            raise HTTPException(403, "cross-site request refused")
        who = tokens.log_in(request, (await kit.form(request)).get("token", ""))
        if who is None:
            refused = kit.render(request, "login.html", None, error=words(kit.lang_of(request))["login_wrong"])
            refused.status_code = 401
            return refused
        resp = RedirectResponse(home_of(who), status_code=303)
        kit.set_session(resp, sessions.make(who))
        return resp

    @r.post("/logout")
    async def logout(request: Request) -> Response:
        s = sessions.read(request)
        if not kit.same_origin(request) or s is None or (await kit.form(request)).get("csrf") != s["c"]:
            raise HTTPException(403, "cross-site request refused")
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    @r.get("/a/{signed}")
    async def alert_link(signed: str) -> Response:
        found = sessions.open_link(signed)
        who = tokens.of_recipient(found[1]) if found else None
        if found is None or who is None:
            return RedirectResponse(EXPIRED, status_code=303)
        resp = RedirectResponse(f"/alert/{found[0]}", status_code=303)
        kit.set_session(resp, sessions.make(who, alert=found[0]), sessions.link_ttl)
        return resp

    answer_routes(r, kit)
    return r


def answer_routes(r: APIRouter, kit: PageKit) -> None:
    """The SMS's 叫应 answer link: its page, and the button that answers the call."""
    view, sessions, tokens = kit.view, kit.sessions, kit.tokens

    @r.get("/r/{signed}", response_class=HTMLResponse)
    async def answer_page(request: Request, signed: str) -> Response:
        """The SMS's link: one button answers the call (a GET alone does not, so link previews answer nothing)."""
        found = sessions.open_answer_link(signed)
        if found is None or tokens.of_recipient(found[1]) is None:
            return RedirectResponse(EXPIRED, status_code=303)
        a = await view.alert(None, found[0])
        if a is None:
            return kit.render_404(request, None)
        return kit.render(request, "answer.html", None, a=a, signed=signed, done=False, error=None)

    @r.post("/r/{signed}")
    async def answer_by_link(request: Request, signed: str) -> Response:
        found = sessions.open_answer_link(signed)
        who = tokens.of_recipient(found[1]) if found else None
        if found is None or who is None:
            return RedirectResponse(EXPIRED, status_code=303)
        if not kit.same_origin(request):
            raise HTTPException(403, "cross-site request refused")
        note = (await kit.form(request)).get("note", "").strip()[:2000] or None
        alert_id, person = found
        error = None
        try:
            await view.acknowledge(alert_id, person, note, acted_by(who, request), via="sms")
        except Refused as exc:
            error = str(exc)
        a = await view.alert(None, alert_id)
        if a is None:
            return kit.render_404(request, None)
        entries = await view.ledger(None, alert_id) or []
        if error is not None and not any(e.get("answered_by") == person for e in entries):
            resp = kit.render(request, "answer.html", None, a=a, signed=signed, done=False, error=error)
            resp.status_code = 409
            return resp
        resp = kit.render(request, "answer.html", None, a=a, signed=signed, done=True, error=None)
        kit.set_session(resp, sessions.make(who, alert=alert_id), sessions.link_ttl)
        return resp
