"""The pages for the people on duty (docs/pages.md): sessions, the wall, the inbox, alert and device
pages, and their live stream, over ServiceView."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from jinja2 import Environment, FileSystemLoader, select_autoescape

from app.auth import Principal, TokenBook
from app.http.alerts import CATEGORIES, act, hand_over_candidates, note_with_category, split_category
from app.http.answer import XLSX, as_csv, as_xlsx, export_rows
from app.http.caller import acted_by
from app.http.events import offer, sse
from app.http.idempotency import ActionLedger
from app.view import ActionError, AlertChange, ServiceView
from app.web.words import LEVEL_ICONS, words
from kernel.alerting import Level
from kernel.clock import rfc3339
from kernel.devices import CATALOG
from kernel.ids import DeviceType
from kernel.settings import Scope

HERE = Path(__file__).parent


@dataclass(frozen=True, slots=True)
class PageKit:
    """What mount_pages lends other pages (app/web/whistles.py): rendering, sessions and form checks."""

    env: Environment
    render: Callable[..., HTMLResponse]
    page_session: Callable[..., dict[str, Any] | None]
    same_origin: Callable[[Request], bool]
    form: Callable[[Request], Awaitable[dict[str, str]]]
    to_login: Callable[[], RedirectResponse]
    render_404: Callable[[Request, dict[str, Any]], HTMLResponse]
    lang_of: Callable[[Request], str]
COOKIE = "cb_session"
HEARTBEAT_S = 5.0
LEVEL_ORDER = {"red": 0, "orange": 1, "yellow": 2, "blue": 3}


def session_key(view: ServiceView) -> str:
    """The configured signing key, or the one kept in state_dir (made once, so restarts keep sessions)."""
    if view.settings.http.session_key:
        return view.settings.http.session_key
    path = Path(view.settings.state_dir) / "session.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


class Sessions:
    """Signed, expiring session cookies and alert links."""

    def __init__(self, view: ServiceView, tokens: TokenBook) -> None:
        key = session_key(view)
        self.cookies = URLSafeTimedSerializer(key, salt="cb-session")
        self.links = URLSafeTimedSerializer(key, salt="cb-alert-link")
        self.answers = URLSafeTimedSerializer(key, salt="cb-answer-link")
        self.ttl = view.settings.http.session_ttl_s
        self.link_ttl = view.settings.http.link_ttl_s
        self.tokens = tokens

    def make(self, who: Principal, alert: str | None = None) -> str:
        """A cookie value for a principal (limited to one alert for a link's login)."""
        scope = who.scope.model_dump(exclude_none=True) if who.scope is not None else None
        return self.cookies.dumps({"r": who.role, "s": scope, "p": who.recipient, "c": secrets.token_urlsafe(16),
                                   "a": alert})

    def read(self, request: Request) -> dict[str, Any] | None:
        """The session of a request, or None."""
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data: dict[str, Any] = self.cookies.loads(raw, max_age=int(self.ttl))
        except (BadSignature, SignatureExpired):
            return None
        return data

    def link(self, alert_id: str, recipient: str) -> str:
        """The signed part of a link that logs a recipient in for one alert."""
        return self.links.dumps({"a": alert_id, "p": recipient})

    def answer_link(self, alert_id: str, recipient: str) -> str:
        """The signed part of a 叫应 answer link (the SMS's): it answers one call of one person."""
        return self.answers.dumps({"a": alert_id, "p": recipient})

    def open_answer_link(self, signed: str) -> tuple[str, str] | None:
        """(alert id, recipient) of an answer link still valid, or None."""
        try:
            data = self.answers.loads(signed, max_age=max(1, int(self.link_ttl)))
        except (BadSignature, SignatureExpired):
            return None
        return str(data["a"]), str(data["p"])

    def open_link(self, signed: str) -> tuple[str, str] | None:
        """(alert id, recipient) of a link still valid, or None."""
        try:
            data = self.links.loads(signed, max_age=max(1, int(self.link_ttl)))
        except (BadSignature, SignatureExpired):
            return None
        return str(data["a"]), str(data["p"])


def principal_of(session: dict[str, Any]) -> Principal:
    """The principal a session acts as."""
    return Principal(session["r"], Scope(**session["s"]) if session["s"] is not None else None, session["p"])


def home_of(who: Principal) -> str:
    """The page for a role: the inbox for grid workers, the wall for everybody else."""
    return "/inbox" if who.role == "grid_worker" else "/wall"


def device_type_name(device_type: str, lang: str) -> str:
    """A device type as people call it (烟感, smoke detector); the id itself for a type not in the catalog."""
    found = DeviceType.lookup(device_type)
    kind = CATALOG.get(found) if found is not None else None
    return kind.name(lang) if kind is not None else device_type


def mount_pages(app: FastAPI, view: ServiceView, tokens: TokenBook) -> PageKit:
    """Add the pages and their stream to the application."""
    sessions = Sessions(view, tokens)
    ledger = ActionLedger()
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    # People are shown by name (张伟), not by their recipient id.
    names = {r.id: r.name for r in view.settings.recipients}
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    public = view.settings.http.public_url
    if public:
        base = public.rstrip("/")
        view.set_link_maker(lambda alert_id, recipient: f"{base}/a/{sessions.link(alert_id, recipient)}")
        view.set_answer_link_maker(lambda alert_id, recipient: f"{base}/r/{sessions.answer_link(alert_id, recipient)}")

    def lang_of(request: Request) -> str:
        asked = request.query_params.get("lang") or request.cookies.get("cb_lang")
        return asked if asked in ("zh-CN", "en") else ("en" if view.settings.locale == "en" else "zh-CN")

    def render(request: Request, name: str, session: dict[str, Any] | None, **ctx: Any) -> HTMLResponse:
        lang = lang_of(request)
        t = words(lang)
        html = env.get_template(name).render(t=t, lang=lang, icons=LEVEL_ICONS, session=session,
                                             csrf=session["c"] if session else "", rfc3339=rfc3339,
                                             place=lambda a: place_text(view, a, lang),
                                             person=lambda rid: names.get(rid, rid),
                                             kind=lambda device_type: device_type_name(device_type, lang), **ctx)
        resp = HTMLResponse(html, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                           "Referrer-Policy": "same-origin"})
        if request.query_params.get("lang") in ("zh-CN", "en"):
            resp.set_cookie("cb_lang", lang, samesite="lax", httponly=True, max_age=365 * 86400)
        return resp

    def to_login() -> RedirectResponse:
        return RedirectResponse("/login", status_code=303)

    def same_origin(request: Request) -> bool:
        """A state-changing request comes from our own pages (Origin and Sec-Fetch-Site agree)."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return False
        origin = request.headers.get("origin")
        if origin is not None and origin != "null":
            host = request.headers.get("host", "")
            if origin.split("://", 1)[-1] != host:
                return False
        elif origin == "null":
            return False
        return True

    async def form(request: Request) -> dict[str, str]:
        body = (await request.body()).decode("utf-8", "replace")
        return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}

    def page_session(request: Request, alert_id: str | None = None) -> dict[str, Any] | None:
        s = sessions.read(request)
        if s is None:
            return None
        if s.get("a") is not None and s["a"] != alert_id:
            return None  # a link's login opens its one alert and nothing else
        return s

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_page(request: Request) -> HTMLResponse:
        return render(request, "login.html", None, error=None)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        if not same_origin(request):
            raise HTTPException(403, "cross-site request refused")
        token = (await form(request)).get("token", "")
        who = tokens.log_in(request, token)
        if who is None:
            refused = render(request, "login.html", None, error=words(lang_of(request))["login_wrong"])
            refused.status_code = 401
            return refused
        resp = RedirectResponse(home_of(who), status_code=303)
        set_session(resp, sessions.make(who))
        return resp

    def set_session(resp: Response, value: str, ttl: float | None = None) -> None:
        resp.set_cookie(COOKIE, value, max_age=int(ttl or sessions.ttl), httponly=True, samesite="lax",
                        secure=bool(public and public.startswith("https://")), path="/")

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        s = sessions.read(request)
        if not same_origin(request) or s is None or (await form(request)).get("csrf") != s["c"]:
            raise HTTPException(403, "cross-site request refused")
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    @app.get("/a/{signed}", include_in_schema=False)
    async def alert_link(signed: str) -> Response:
        found = sessions.open_link(signed)
        who = tokens.of_recipient(found[1]) if found else None
        if found is None or who is None:
            return RedirectResponse("/login?expired=1", status_code=303)
        resp = RedirectResponse(f"/alert/{found[0]}", status_code=303)
        set_session(resp, sessions.make(who, alert=found[0]), sessions.link_ttl)
        return resp

    @app.get("/r/{signed}", response_class=HTMLResponse, include_in_schema=False)
    async def answer_page(request: Request, signed: str) -> Response:
        """The SMS's link: one button answers the call (a GET alone does not, so link previews answer nothing)."""
        found = sessions.open_answer_link(signed)
        if found is None or tokens.of_recipient(found[1]) is None:
            return RedirectResponse("/login?expired=1", status_code=303)
        a = await view.alert(None, found[0])
        if a is None:
            return render_404(request, None)
        return render(request, "answer.html", None, a=a, signed=signed, done=False, error=None)

    @app.post("/r/{signed}", include_in_schema=False)
    async def answer_by_link(request: Request, signed: str) -> Response:
        found = sessions.open_answer_link(signed)
        who = tokens.of_recipient(found[1]) if found else None
        if found is None or who is None:
            return RedirectResponse("/login?expired=1", status_code=303)
        if not same_origin(request):
            raise HTTPException(403, "cross-site request refused")
        note = (await form(request)).get("note", "").strip()[:2000] or None
        alert_id, person = found
        error = None
        try:
            await view.acknowledge(alert_id, person, note, acted_by(who, request), via="sms")
        except ActionError as exc:
            error = str(exc)
        a = await view.alert(None, alert_id)
        if a is None:
            return render_404(request, None)
        entries = await view.ledger(None, alert_id) or []
        if error is not None and not any(e.get("answered_by") == person for e in entries):
            resp = render(request, "answer.html", None, a=a, signed=signed, done=False, error=error)
            resp.status_code = 409
            return resp
        resp = render(request, "answer.html", None, a=a, signed=signed, done=True, error=None)
        set_session(resp, sessions.make(who, alert=alert_id), sessions.link_ttl)
        return resp

    @app.get("/", include_in_schema=False)
    async def root(request: Request) -> Response:
        s = page_session(request)
        return to_login() if s is None else RedirectResponse(home_of(principal_of(s)), status_code=303)

    def open_sorted(who: Principal) -> list[dict[str, Any]]:
        alerts = view.open_alerts(who.scope)
        alerts.sort(key=lambda a: a["started_at"] or "", reverse=True)
        alerts.sort(key=lambda a: LEVEL_ORDER.get(a["level"], 9))
        return alerts

    def buildings(who: Principal) -> list[dict[str, Any]]:
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for c in view.site.communities.values():
            for b in c.buildings:
                if view.site.in_scope(who.scope, c.id, b.grid):
                    rows[(c.id, b.id)] = {"community": c.id, "community_name": c.name, "id": b.id,
                                          "name": b.name, "online": 0, "offline": 0, "unknown": 0}
        for d in view.devices(who.scope):
            row = rows.setdefault((d["community"], d["building"]), {
                "community": d["community"], "community_name": community_name(d["community"]),
                "id": d["building"], "name": d["building"], "online": 0, "offline": 0, "unknown": 0})
            row["online" if d["online"] else "offline" if d["online"] is False else "unknown"] += 1
        return sorted(rows.values(), key=lambda r: (r["community"], r["id"]))

    def community_name(cid: str) -> str:
        c = view.site.communities.get(cid)
        return c.name if c else cid

    @app.get("/wall", response_class=HTMLResponse, include_in_schema=False)
    async def wall(request: Request) -> Response:
        s = page_session(request)
        if s is None:
            return to_login()
        who = principal_of(s)
        return render(request, "wall.html", s, alerts=open_sorted(who), buildings=buildings(who),
                      now=rfc3339(view.now_ns()), last=view.last_change(), levels=[lv.value for lv in Level])

    @app.get("/inbox", response_class=HTMLResponse, include_in_schema=False)
    async def inbox(request: Request) -> Response:
        s = page_session(request)
        if s is None:
            return to_login()
        who = principal_of(s)
        alerts = open_sorted(who)
        for a in alerts:
            a["mine"] = who.recipient in a.get("told", ()) if who.recipient else True
            a["candidates"] = hand_over_candidates(view, who, a["community"], a["grid"])
        alerts.sort(key=lambda a: not a["mine"])
        return render(request, "inbox.html", s, alerts=alerts, categories=CATEGORIES,
                      idem=secrets.token_urlsafe(12), last=view.last_change(), now=rfc3339(view.now_ns()))

    @app.get("/alert/{alert_id}", response_class=HTMLResponse, include_in_schema=False)
    async def alert_page(request: Request, alert_id: str) -> Response:
        s = page_session(request, alert_id)
        if s is None:
            return to_login()
        who = principal_of(s)
        # A link's login (an alert link, or a 叫应 answer link) shows its one alert to whoever it was sent to,
        # a backup person of another grid too.
        scope = None if s.get("a") == alert_id else who.scope
        a = await view.alert(scope, alert_id)
        if a is None:
            return render_404(request, s)
        for h in a["history"]:
            h["category"], h["note"] = split_category(h["note"])
        a["candidates"] = hand_over_candidates(view, who, a["community"], a["grid"])
        return render(request, "alert.html", s, a=a, categories=CATEGORIES, idem=secrets.token_urlsafe(12),
                      last=view.last_change(), now=rfc3339(view.now_ns()),
                      ledger=await view.ledger(scope, alert_id))

    @app.get("/alert/{alert_id}/ledger.{fmt}", include_in_schema=False)
    async def ledger_export(request: Request, alert_id: str, fmt: str) -> Response:
        s = page_session(request, alert_id)
        if s is None:
            return to_login()
        entries = await view.ledger(None if s.get("a") == alert_id else principal_of(s).scope, alert_id)
        if entries is None or fmt not in ("csv", "xlsx"):
            return render_404(request, s)
        lang = lang_of(request)
        rows = export_rows(entries, lang, names)
        if fmt == "csv":
            return Response(as_csv(rows), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="ledger-{alert_id}.csv"'})
        return Response(as_xlsx(rows, words(lang)["ledger"]), media_type=XLSX,
                        headers={"Content-Disposition": f'attachment; filename="ledger-{alert_id}.xlsx"'})

    def render_404(request: Request, s: dict[str, Any] | None) -> HTMLResponse:
        resp = render(request, "missing.html", s)
        resp.status_code = 404
        return resp

    @app.get("/device/{device_id}", response_class=HTMLResponse, include_in_schema=False)
    async def device_page(request: Request, device_id: str) -> Response:
        s = page_session(request)
        if s is None:
            return to_login()
        who = principal_of(s)
        d = next((x for x in view.devices(who.scope) if x["device_id"] == device_id), None)
        if d is None:
            return render_404(request, s)
        readings = await view.readings(who.scope, device_id, view.now_ns() - 3600 * 1_000_000_000, 500) or []
        past = [a for a in await view.alerts(who.scope, community=d["community"], limit=200)
                if a["device_id"] == device_id][:30]
        return render(request, "device.html", s, d=d, charts=charts(readings), alerts=past,
                      now=rfc3339(view.now_ns()))

    @app.post("/alert/{alert_id}/{action}", include_in_schema=False)
    async def alert_action(request: Request, alert_id: str, action: str) -> Response:
        s = page_session(request, alert_id)
        fields = await form(request)
        if s is None or not same_origin(request) or fields.get("csrf") != s["c"]:
            return JSONResponse({"detail": "cross-site request refused"}, status_code=403)
        if action not in ("ack", "resolve", "handover"):
            return JSONResponse({"detail": "no such action"}, status_code=404)
        who = principal_of(s)
        note = fields.get("note", "").strip()[:2000] or None
        category = fields.get("category") or None
        if action == "resolve":
            if category not in CATEGORIES:
                return JSONResponse({"detail": words(lang_of(request))["need_category"]}, status_code=422)
            note = note_with_category(note, category)
        to = fields.get("to") or None
        if action == "handover" and not to:
            return JSONResponse({"detail": words(lang_of(request))["need_to"]}, status_code=422)
        try:
            body = await act(view, ledger, who, alert_id, action, note, to=to, key=fields.get("idem") or None,
                             by=acted_by(who, request), via="link" if s.get("a") else "page")
        except HTTPException as exc:
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(body)
        return RedirectResponse(f"/alert/{alert_id}", status_code=303)

    @app.get("/stream", include_in_schema=False)
    async def stream(request: Request) -> Response:
        s = page_session(request)
        if s is None:
            return JSONResponse({"detail": "no session"}, status_code=401)
        who = principal_of(s)
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=2000)

        lang = lang_of(request)

        def frame(c: AlertChange) -> bytes:
            change = orjson.loads(c.data)
            change["alert"]["place"] = place_text(view, change["alert"], lang)
            return b"id: " + str(c.seq).encode() + b"\nevent: alert\ndata: " + orjson.dumps(change) + b"\n\n"

        def listener(batch: list[AlertChange]) -> None:
            for c in batch:
                if view.site.in_scope(who.scope, c.community, c.grid):
                    offer(queue, frame(c))

        unsubscribe = view.subscribe_changes(listener)
        first = b"retry: 1000\n\n"
        last = request.headers.get("last-event-id") or request.query_params.get("after")
        if last and last.isdigit():
            missed = view.changes_after(int(last))
            if missed is None:
                first += b"event: reload\ndata: {}\n\n"  # too much was missed: the page loads afresh
            else:
                first += b"".join(frame(c) for c in missed if view.site.in_scope(who.scope, c.community, c.grid))

        def heartbeat() -> bytes:
            counts = {f"{b['community']}/{b['id']}": [b["online"], b["offline"], b["unknown"]] for b in buildings(who)}
            return b"event: heartbeat\ndata: " + orjson.dumps({"now": rfc3339(view.now_ns()),
                                                                "buildings": counts}) + b"\n\n"

        return StreamingResponse(sse(request, view, queue, unsubscribe, first=first + heartbeat(),
                                     heartbeat=heartbeat, every_s=HEARTBEAT_S),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return PageKit(env, render, page_session, same_origin, form, to_login, render_404, lang_of)


def place_text(view: ServiceView, a: dict[str, Any], lang: str) -> str:
    """community › building › location text of an alert or device."""
    c = view.site.communities.get(a["community"])
    parts = [c.name if c else a["community"]]
    b = next((b for b in (c.buildings if c else []) if b.id == a["building"]), None)
    parts.append(b.name if b else a["building"])
    entry = view.site.registered.get((a["community"], a["device_id"]))
    text = entry.location.text if entry is not None and entry.location is not None else None
    if text is None and b is not None and b.location is not None:
        text = b.location.text
    if text:
        parts.append(text)
    return " › ".join(parts)


def charts(readings: list[tuple[int, dict[str, Any]]], width: int = 600, height: int = 160) -> list[dict[str, Any]]:
    """One SVG polyline per numeric field of the readings."""
    series: dict[str, list[tuple[int, float]]] = {}
    for ts, fields in readings:
        for k, v in fields.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                series.setdefault(k, []).append((ts, float(v)))
    out = []
    for name, points in sorted(series.items()):
        if len(points) < 2:
            continue
        t0, t1 = points[0][0], points[-1][0] or 1
        lo, hi = min(v for _, v in points), max(v for _, v in points)
        span_t, span_v = max(t1 - t0, 1), (hi - lo) or 1.0
        pts = " ".join(f"{(t - t0) / span_t * width:.1f},{height - (v - lo) / span_v * height:.1f}"
                       for t, v in points)
        out.append({"name": name, "points": pts, "lo": lo, "hi": hi, "last": points[-1][1], "n": len(points),
                    "width": width, "height": height})
    return out


