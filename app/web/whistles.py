"""The pages of 吹哨报到 (docs/pages.md): the whistle form, the whistle's page for the whistle-blower,
the list of whistles with the departments' figures, and the department's work-order page behind its
signed link (no log-in: the token in the link is the credential)."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from app.actions import WhistleIn, actor_of, place_of_whistle
from app.auth import Principal
from app.idempotency import ActionLedger
from app.links import OrderLinks
from app.refusals import status_of
from app.web.kit import PageKit
from app.web.sessions import principal_of
from app.words import span_words, words
from kernel.clock import NS, rfc3339
from kernel.errors import Refused
from kernel.orders import STEPS

CROSS_SITE = {"detail": "cross-site request refused"}
NEXT_STEP = {"open": "sign", "signed": "arrive", "arrived": "done"}


def _ns(text: str | None) -> int | None:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * NS) if text else None


def timers(order: dict[str, Any], now_ns: int, t: dict[str, str]) -> list[dict[str, Any]]:
    """Each step of a work order: taken (and how long it took, on time or late), or its time left or overdue."""
    opened = _ns(order["opened_at"]) or now_ns
    out = []
    for step in STEPS:
        s = step.value
        due = _ns(order["due"][s]) or now_ns
        taken = _ns(order.get({"sign": "signed_at", "arrive": "arrived_at", "done": "done_at"}[s]))
        if taken is not None:
            late = taken > due
            text = f"{t['took']} {span_words((taken - opened) / NS, t)}" + (
                f" · {t['late_by']} {span_words(max(1.0, (taken - due) / NS), t)}" if late else f" · {t['on_time']}")
            state = "late-done" if late else "taken"
        elif due <= now_ns:
            text, state = f"{t['late_by']} {span_words(max(1.0, (now_ns - due) / NS), t)}", "late"
        else:
            text, state = f"{t['left']} {span_words((due - now_ns) / NS, t)}", "pending"
        out.append({"step": s, "state": state, "text": text, "due_at": order["due"][s],
                    "limit": span_words((due - opened) / NS, t)})
    return out


class WhistlePages:
    """What the whistle pages share: the kit, the order links, one action ledger, the pages' context."""

    def __init__(self, kit: PageKit, links: OrderLinks) -> None:
        self.kit, self.links, self.view = kit, links, kit.view
        self.wv = kit.view.whistles
        self.ledger = ActionLedger()

    def context(self, request: Request) -> dict[str, Any]:
        """Timers, durations in words, and a fresh idempotency key."""
        t = words(self.kit.lang_of(request))
        now = self.view.now_ns()
        return {"now": rfc3339(now), "timers": lambda o: timers(o, now, t), "span": lambda s: span_words(s, t),
                "idem": secrets.token_urlsafe(12)}

    async def form_page(self, request: Request, s: dict[str, Any], values: dict[str, Any], error: str | None,
                        status: int = 200) -> HTMLResponse:
        """The whistle form with what was typed, and what is wrong."""
        who, site = principal_of(s), self.view.site
        communities = [c for c in site.communities.values() if site.in_scope(who.scope, c.id, "")
                       or (who.scope is not None and who.scope.community == c.id)]
        departments = {g: [{"id": d.id, "name": d.name, "kind": d.kind, "targets": d.targets_for(g)}
                           for d in self.wv.departments()] for g in ("urgent", "general")}
        resp = self.kit.render(request, "whistle_form.html", s, v=values, error=error, communities=communities,
                               departments=departments, **self.context(request))
        resp.status_code = status
        return resp

    async def from_alert(self, request: Request, s: dict[str, Any], alert_id: str) -> dict[str, Any] | None:
        """The form's values filled from an alert, or None when the caller cannot see it."""
        a = await self.view.alert(principal_of(s).scope, alert_id)
        if a is None:
            return None
        return {"alert_id": a["id"], "what": self.kit.words_of(request).summary(a), "community": a["community"],
                "where": self.wv.place_text(a["community"], a["building"], a["device_id"]),
                "grade": "urgent" if a["level"] in ("orange", "red") else "general", "level": a["level"]}

    async def blow(self, request: Request, s: dict[str, Any], fields: dict[str, list[str]]) -> Response:
        """Blow the whistle a form posted, once per idempotency key; the form again when it is wrong."""
        one = {k: v[0] for k, v in fields.items()}
        who = principal_of(s)
        t = words(self.kit.lang_of(request))
        values: dict[str, Any] = {"grade": one.get("grade", ""), "what": one.get("what", "").strip(),
                                  "where": one.get("where", "").strip(), "alert_id": one.get("alert_id", ""),
                                  "community": one.get("community", ""), "departments": fields.get("department", [])}
        if not self.wv.may_blow(who.role):
            return await self.form_page(request, s, values, t["cannot_blow"], 403)
        if not values["departments"]:
            return await self.form_page(request, s, values, t["need_departments"], 422)
        try:
            body = WhistleIn(grade=values["grade"], what=values["what"], where=values["where"] or None,
                             community=values["community"] or None, alert_id=values["alert_id"] or None,
                             departments=values["departments"])
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(x) for x in err["loc"])
            return await self.form_page(request, s, values, f"{t.get(field, field)}: {err['msg']}", 422)
        try:
            community, grid, where = await place_of_whistle(self.view, who, body)

            async def run() -> dict[str, Any]:
                return await self.wv.blow(grade=body.grade, what=body.what, where=where, community=community,
                                          grid=grid, alert_id=body.alert_id, blower=actor_of(who),
                                          departments=list(body.departments))
            key = f"{actor_of(who)}|whistle|{one['idem']}" if one.get("idem") else None
            made = await self.ledger.run(key, run)
        except Refused as exc:
            return await self.form_page(request, s, values, str(exc), status_of(exc))
        return RedirectResponse(f"/whistle/{made['id']}", status_code=303)

    async def confirm(self, request: Request, who: Principal, whistle_id: str, department: str,
                      fields: dict[str, str]) -> Response:
        """The whistle-blower confirms a department's work order and rates it, once per idempotency key."""
        if await self.wv.whistle(who.scope, whistle_id) is None:
            return JSONResponse({"detail": "no such whistle"}, status_code=404)
        rating = fields.get("rating", "")
        if rating not in ("1", "2", "3", "4", "5"):
            return JSONResponse({"detail": words(self.kit.lang_of(request))["rate_hint"]}, status_code=422)
        note = fields.get("note", "").strip()[:2000] or None

        async def run() -> dict[str, Any]:
            return await self.wv.confirm(whistle_id, department, actor_of(who), int(rating), note)
        try:
            await self.ledger.run(f"{actor_of(who)}|{whistle_id}.{department}|confirm|{fields['idem']}"
                                  if fields.get("idem") else None, run)
        except Refused as exc:
            return JSONResponse({"detail": str(exc)}, status_code=status_of(exc))
        return RedirectResponse(f"/whistle/{whistle_id}", status_code=303)

    def order_page(self, request: Request, token: str, o: dict[str, Any], error: str | None = None,
                   status: int = 200) -> HTMLResponse:
        """A department's work order page (the token in its link is the credential)."""
        resp = self.kit.render(request, "work_order.html", None, o=o, token=token,
                               next_step=NEXT_STEP.get(o["status"]), error=error, **self.context(request))
        resp.status_code = status
        # same-origin (not no-referrer, which makes the form's Origin "null"): the token never leaves the site.
        resp.headers["Referrer-Policy"] = "same-origin"
        return resp


def router(kit: PageKit, links: OrderLinks) -> APIRouter:
    """The whistle-blower's and supervisors' pages (a session), and the department's page (a signed link)."""
    r = APIRouter(include_in_schema=False)
    pages = WhistlePages(kit, links)
    wv = pages.wv
    kit.env.globals["may_blow"] = wv.may_blow  # the inbox and alert pages show 吹哨 to those who may

    @r.get("/whistle/new", response_class=HTMLResponse)
    async def new_whistle(request: Request) -> Response:
        s, who = kit.viewer(request)
        if not wv.may_blow(who.role):
            cannot = words(kit.lang_of(request))["cannot_blow"]
            return await pages.form_page(request, s, {"grade": "urgent", "departments": []}, cannot, 403)
        values: dict[str, Any] = {"grade": "general", "what": "", "where": "", "alert_id": "", "departments": [],
                                  "community": who.scope.community if who.scope else ""}
        alert_id = request.query_params.get("alert")
        if alert_id:
            found = await pages.from_alert(request, s, alert_id)
            if found is None:
                return kit.render_404(request, s)
            values |= found
        return await pages.form_page(request, s, values, None)

    @r.post("/whistle/new")
    async def blow(request: Request) -> Response:
        s = kit.page_session(request)
        fields = await kit.form_lists(request)
        if s is None or not kit.same_origin(request) or fields.get("csrf", [""])[0] != s["c"]:
            return JSONResponse(CROSS_SITE, status_code=403)
        return await pages.blow(request, s, fields)

    @r.get("/whistles", response_class=HTMLResponse)
    async def whistles_page(request: Request) -> Response:
        s, who = kit.viewer(request)
        found = await wv.whistles(who.scope, limit=500)
        stats = await wv.stats(who.scope)
        return kit.render(request, "whistles.html", s, overdue=[w for w in found if w["overdue"]],
                          open=[w for w in found if w["status"] != "closed" and not w["overdue"]],
                          closed=[w for w in found if w["status"] == "closed"], stats=stats,
                          may_blow=wv.may_blow(who.role), **pages.context(request))

    @r.get("/whistle/{whistle_id}", response_class=HTMLResponse)
    async def whistle_page(request: Request, whistle_id: str) -> Response:
        s, who = kit.viewer(request)
        w = await wv.whistle(who.scope, whistle_id)
        if w is None:
            return kit.render_404(request, s)
        return kit.render(request, "whistle.html", s, w=w, mine=w["blower"] == actor_of(who),
                          **pages.context(request))

    @r.post("/whistle/{whistle_id}/confirm/{department}")
    async def confirm(request: Request, whistle_id: str, department: str) -> Response:
        s = kit.page_session(request)
        fields = await kit.form(request)
        if s is None or not kit.same_origin(request) or fields.get("csrf") != s["c"]:
            return JSONResponse(CROSS_SITE, status_code=403)
        return await pages.confirm(request, principal_of(s), whistle_id, department, fields)

    order_routes(r, pages)
    return r


def order_routes(r: APIRouter, pages: WhistlePages) -> None:
    """The department's page behind its signed link (/wo/{token}) and its steps."""
    kit, wv = pages.kit, pages.wv

    @r.get("/wo/{token}", response_class=HTMLResponse)
    async def order_page(request: Request, token: str) -> Response:
        found = pages.links.open(token)
        o = await wv.order_by_id(found[0]) if found else None
        if o is None:
            return kit.render_404(request, None, message=words(kit.lang_of(request))["link_expired"])
        return pages.order_page(request, token, o)

    @r.post("/wo/{token}/{step}")
    async def order_step(request: Request, token: str, step: str) -> Response:
        if not kit.same_origin(request):
            return JSONResponse(CROSS_SITE, status_code=403)
        found = pages.links.open(token)
        if found is None:
            return JSONResponse({"detail": words(kit.lang_of(request))["link_expired"]}, status_code=404)
        if step not in NEXT_STEP.values():
            return JSONResponse({"detail": "no such step"}, status_code=404)
        fields = await kit.form(request)
        order_id, contact = found
        note = fields.get("note", "").strip()[:2000] or None

        async def run() -> dict[str, Any]:
            return await wv.step(order_id, step, contact, note)
        try:
            await pages.ledger.run(f"{contact}|{order_id}|{step}|{fields['idem']}" if fields.get("idem") else None,
                                   run)
        except Refused as exc:
            o = await wv.order_by_id(order_id)
            if o is None:
                return JSONResponse({"detail": str(exc)}, status_code=status_of(exc))
            return pages.order_page(request, token, o, str(exc), status_of(exc))
        return RedirectResponse(f"/wo/{token}", status_code=303)
