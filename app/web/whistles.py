"""The pages of 吹哨报到 (docs/pages.md): the whistle form, the whistle's page for the whistle-blower,
the list of whistles with the departments' figures, and the department's work-order page behind its
signed link (no log-in: the token in the link is the credential)."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from app.http.whistles import WhistleIn, actor_of, place_of_whistle
from app.links import OrderLinks
from app.view import ActionError, ServiceView
from app.web import PageKit, principal_of
from app.web.words import span_words, words
from kernel.clock import rfc3339
from kernel.orders import STEPS

NS = 1_000_000_000
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


def mount_whistle_pages(app: FastAPI, view: ServiceView, links: OrderLinks, kit: PageKit) -> None:
    """Add the whistle pages to the application."""
    from app.http.idempotency import ActionLedger

    ledger = ActionLedger()
    wv = view.whistles
    kit.env.globals["may_blow"] = wv.may_blow  # the inbox and alert pages show 吹哨 to those who may

    def context(request: Request) -> dict[str, Any]:
        t = words(kit.lang_of(request))
        now = view.now_ns()
        return {"now": rfc3339(now), "timers": lambda o: timers(o, now, t), "span": lambda s: span_words(s, t),
                "idem": secrets.token_urlsafe(12)}

    def department_rows(grade: str) -> list[dict[str, Any]]:
        return [{"id": d.id, "name": d.name, "kind": d.kind, "targets": d.targets_for(grade)}
                for d in wv.departments()]

    async def form_page(request: Request, s: dict[str, Any], values: dict[str, Any], error: str | None,
                        status: int = 200) -> HTMLResponse:
        who = principal_of(s)
        communities = [c for c in view.site.communities.values() if view.site.in_scope(who.scope, c.id, "")
                       or (who.scope is not None and who.scope.community == c.id)]
        resp = kit.render(request, "whistle_form.html", s, v=values, error=error, communities=communities,
                          departments={g: department_rows(g) for g in ("urgent", "general")}, **context(request))
        resp.status_code = status
        return resp

    @app.get("/whistle/new", response_class=HTMLResponse, include_in_schema=False)
    async def new_whistle(request: Request) -> Response:
        s = kit.page_session(request)
        if s is None:
            return kit.to_login()
        who = principal_of(s)
        t = words(kit.lang_of(request))
        if not wv.may_blow(who.role):
            return await form_page(request, s, {"grade": "urgent", "departments": []}, t["cannot_blow"], 403)
        values: dict[str, Any] = {"grade": "general", "what": "", "where": "", "alert_id": "", "departments": [],
                                  "community": who.scope.community if who.scope else ""}
        alert_id = request.query_params.get("alert")
        if alert_id:
            a = await view.alert(who.scope, alert_id)
            if a is None:
                return kit.render_404(request, s)
            values |= {"alert_id": a["id"], "what": a["summary"], "community": a["community"],
                       "where": wv.place_text(a["community"], a["building"], a["device_id"]),
                       "grade": "urgent" if a["level"] in ("orange", "red") else "general", "level": a["level"]}
        return await form_page(request, s, values, None)

    @app.post("/whistle/new", include_in_schema=False)
    async def blow(request: Request) -> Response:
        s = kit.page_session(request)
        raw = (await request.body()).decode("utf-8", "replace")
        from urllib.parse import parse_qs
        fields = parse_qs(raw, keep_blank_values=True)
        one = {k: v[0] for k, v in fields.items()}
        if s is None or not kit.same_origin(request) or one.get("csrf") != s["c"]:
            return JSONResponse({"detail": "cross-site request refused"}, status_code=403)
        who = principal_of(s)
        t = words(kit.lang_of(request))
        values: dict[str, Any] = {"grade": one.get("grade", ""), "what": one.get("what", "").strip(),
                                  "where": one.get("where", "").strip(), "alert_id": one.get("alert_id", ""),
                                  "community": one.get("community", ""), "departments": fields.get("department", [])}
        if not wv.may_blow(who.role):
            return await form_page(request, s, values, t["cannot_blow"], 403)
        if not values["departments"]:
            return await form_page(request, s, values, t["need_departments"], 422)
        try:
            body = WhistleIn(grade=values["grade"], what=values["what"], where=values["where"] or None,
                             community=values["community"] or None, alert_id=values["alert_id"] or None,
                             departments=values["departments"])
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(x) for x in err["loc"])
            return await form_page(request, s, values, f"{t.get(field, field)}: {err['msg']}", 422)
        try:
            community, grid, where = await place_of_whistle(view, who, body)

            async def run() -> dict[str, Any]:
                return await wv.blow(grade=body.grade, what=body.what, where=where, community=community, grid=grid,
                                     alert_id=body.alert_id, blower=actor_of(who), departments=list(body.departments))
            made = await ledger.run(f"{actor_of(who)}|whistle|{one.get('idem')}" if one.get("idem") else None, run)
        except HTTPException as exc:
            return await form_page(request, s, values, str(exc.detail), exc.status_code)
        except ActionError as exc:
            return await form_page(request, s, values, str(exc), exc.status)
        return RedirectResponse(f"/whistle/{made['id']}", status_code=303)

    @app.get("/whistles", response_class=HTMLResponse, include_in_schema=False)
    async def whistles_page(request: Request) -> Response:
        s = kit.page_session(request)
        if s is None:
            return kit.to_login()
        who = principal_of(s)
        found = await wv.whistles(who.scope, limit=500)
        stats = await wv.stats(who.scope)
        return kit.render(request, "whistles.html", s, overdue=[w for w in found if w["overdue"]],
                          open=[w for w in found if w["status"] != "closed" and not w["overdue"]],
                          closed=[w for w in found if w["status"] == "closed"], stats=stats,
                          may_blow=wv.may_blow(who.role), **context(request))

    @app.get("/whistle/{whistle_id}", response_class=HTMLResponse, include_in_schema=False)
    async def whistle_page(request: Request, whistle_id: str) -> Response:
        s = kit.page_session(request)
        if s is None:
            return kit.to_login()
        who = principal_of(s)
        w = await wv.whistle(who.scope, whistle_id)
        if w is None:
            return kit.render_404(request, s)
        return kit.render(request, "whistle.html", s, w=w, mine=w["blower"] == actor_of(who), **context(request))

    @app.post("/whistle/{whistle_id}/confirm/{department}", include_in_schema=False)
    async def confirm(request: Request, whistle_id: str, department: str) -> Response:
        s = kit.page_session(request)
        fields = await kit.form(request)
        if s is None or not kit.same_origin(request) or fields.get("csrf") != s["c"]:
            return JSONResponse({"detail": "cross-site request refused"}, status_code=403)
        who = principal_of(s)
        if await wv.whistle(who.scope, whistle_id) is None:
            return JSONResponse({"detail": "no such whistle"}, status_code=404)
        rating = fields.get("rating", "")
        if rating not in ("1", "2", "3", "4", "5"):
            return JSONResponse({"detail": words(kit.lang_of(request))["rate_hint"]}, status_code=422)
        note = fields.get("note", "").strip()[:2000] or None

        async def run() -> dict[str, Any]:
            return await wv.confirm(whistle_id, department, actor_of(who), int(rating), note)
        try:
            await ledger.run(f"{actor_of(who)}|{whistle_id}.{department}|confirm|{fields['idem']}"
                             if fields.get("idem") else None, run)
        except ActionError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=exc.status)
        return RedirectResponse(f"/whistle/{whistle_id}", status_code=303)

    def order_headers(resp: HTMLResponse) -> HTMLResponse:
        # same-origin (not no-referrer, which makes the form's Origin "null"): the token never leaves the site.
        resp.headers["Referrer-Policy"] = "same-origin"
        return resp

    @app.get("/wo/{token}", response_class=HTMLResponse, include_in_schema=False)
    async def order_page(request: Request, token: str) -> Response:
        found = links.open(token)
        o = await wv.order_by_id(found[0]) if found else None
        if o is None:
            resp = kit.render(request, "missing.html", None, message=words(kit.lang_of(request))["link_expired"])
            resp.status_code = 404
            return resp
        return order_headers(kit.render(request, "work_order.html", None, o=o, token=token,
                                        next_step=NEXT_STEP.get(o["status"]), error=None, **context(request)))

    @app.post("/wo/{token}/{step}", include_in_schema=False)
    async def order_step(request: Request, token: str, step: str) -> Response:
        if not kit.same_origin(request):
            return JSONResponse({"detail": "cross-site request refused"}, status_code=403)
        found = links.open(token)
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
            await ledger.run(f"{contact}|{order_id}|{step}|{fields['idem']}" if fields.get("idem") else None, run)
        except ActionError as exc:
            o = await wv.order_by_id(order_id)
            if o is None:
                return JSONResponse({"detail": str(exc)}, status_code=exc.status)
            resp = kit.render(request, "work_order.html", None, o=o, token=token, next_step=NEXT_STEP.get(o["status"]),
                              error=str(exc), **context(request))
            resp.status_code = exc.status
            return order_headers(resp)
        return RedirectResponse(f"/wo/{token}", status_code=303)
