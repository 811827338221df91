"""The alert pages: the wall (值班大屏), the inbox (我的告警), one alert with its 叫应 ledger (and the
ledger's export), and the actions posted from them (acknowledge, resolve, hand over)."""

from __future__ import annotations

import secrets

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from app.actions import CATEGORIES, act, acted_by, hand_over_candidates, note_with_category, split_category
from app.ledger_export import MEDIA_TYPES, export
from app.refusals import status_of
from app.web.cluster_strip import cluster_strip
from app.web.kit import PageKit
from app.web.resources import ResourcePages, knock_counts
from app.web.sessions import principal_of
from app.words import words
from kernel.alerting import Level
from kernel.clock import rfc3339
from kernel.errors import Refused

ACTIONS = ("ack", "resolve", "handover")


def router(kit: PageKit) -> APIRouter:
    """/wall, /inbox, and /alert/{id} with its ledger export and its actions."""
    r = APIRouter(include_in_schema=False)
    view = kit.view

    @r.get("/wall", response_class=HTMLResponse)
    async def wall(request: Request) -> Response:
        s, who = kit.viewer(request)
        alerts = kit.open_sorted(who)
        return kit.render(request, "wall.html", s, alerts=alerts, buildings=kit.buildings(who),
                          knocks=knock_counts(view, who, alerts),
                          now=rfc3339(view.now_ns()), last=view.last_change(), levels=[lv.value for lv in Level],
                          unregistered=kit.unregistered_count(who), strip=cluster_strip(view, kit.lang_of(request)))

    @r.get("/inbox", response_class=HTMLResponse)
    async def inbox(request: Request) -> Response:
        s, who = kit.viewer(request)
        alerts = kit.open_sorted(who)
        for a in alerts:
            a["mine"] = who.recipient in a.get("told", ()) if who.recipient else True
            a["candidates"] = hand_over_candidates(view, who, a["community"], a["grid"])
        alerts.sort(key=lambda a: not a["mine"])
        return kit.render(request, "inbox.html", s, alerts=alerts, categories=CATEGORIES,
                          knocks=knock_counts(view, who, alerts),
                          idem=secrets.token_urlsafe(12), last=view.last_change(), now=rfc3339(view.now_ns()))

    alert_routes(r, kit)
    return r


def alert_routes(r: APIRouter, kit: PageKit) -> None:
    """One alert's page (with what is on hand and its door knocks), its ledger's export and the actions posted
    from the pages."""
    view = kit.view
    resources = ResourcePages(kit)

    @r.get("/alert/{alert_id}", response_class=HTMLResponse)
    async def alert_page(request: Request, alert_id: str) -> Response:
        s, who = kit.viewer(request, alert_id)
        # A link's login (an alert link, or a 叫应 answer link) shows its one alert to whoever it was sent to,
        # a backup person of another grid too.
        scope = None if s.get("a") == alert_id else who.scope
        a = await view.alert(scope, alert_id)
        if a is None:
            return kit.render_404(request, s)
        for h in a["history"]:
            h["category"], h["note"] = split_category(h["note"])
        a["candidates"] = hand_over_candidates(view, who, a["community"], a["grid"])
        return kit.render(request, "alert.html", s, a=a, categories=CATEGORIES, idem=secrets.token_urlsafe(12),
                          last=view.last_change(), now=rfc3339(view.now_ns()),
                          ledger=await view.ledger(scope, alert_id),
                          **resources.alert_parts(who, a, kit.lang_of(request)))

    @r.get("/alert/{alert_id}/ledger.{fmt}")
    async def ledger_export(request: Request, alert_id: str, fmt: str) -> Response:
        s, who = kit.viewer(request, alert_id)
        entries = await view.ledger(None if s.get("a") == alert_id else who.scope, alert_id)
        if entries is None or fmt not in MEDIA_TYPES:
            return kit.render_404(request, s)
        body, headers = export(alert_id, entries, fmt, kit.lang_of(request), kit.names)
        return Response(body, media_type=MEDIA_TYPES[fmt], headers=headers)

    @r.post("/alert/{alert_id}/{action}")
    async def alert_action(request: Request, alert_id: str, action: str) -> Response:
        s = kit.page_session(request, alert_id)
        fields = await kit.form(request)
        if s is None or not kit.same_origin(request) or fields.get("csrf") != s["c"]:
            return JSONResponse({"detail": "cross-site request refused"}, status_code=403)
        if action not in ACTIONS:
            return JSONResponse({"detail": "no such action"}, status_code=404)
        note, wrong = page_action(fields, action, words(kit.lang_of(request)))
        if wrong is not None:
            return JSONResponse({"detail": wrong}, status_code=422)
        who = principal_of(s)
        try:
            body = await act(view, kit.ledger, who, alert_id, action, note, to=fields.get("to") or None,
                             key=fields.get("idem") or None, by=acted_by(who, request),
                             via="link" if s.get("a") else "page")
        except Refused as exc:
            return JSONResponse({"detail": str(exc)}, status_code=status_of(exc))
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(body)
        return RedirectResponse(f"/alert/{alert_id}", status_code=303)


def page_action(fields: dict[str, str], action: str, t: dict[str, str]) -> tuple[str | None, str | None]:
    """The note an action from a page form stores (a resolution's category first), or what is missing."""
    note = fields.get("note", "").strip()[:2000] or None
    if action == "resolve":
        category = fields.get("category") or None
        if category not in CATEGORIES:
            return None, t["need_category"]
        return note_with_category(note, category), None
    if action == "handover" and not fields.get("to"):
        return None, t["need_to"]
    return note, None
