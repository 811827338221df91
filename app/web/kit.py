"""What every page router shares (app/web/*.py): the view, sessions, templates in the viewer's language,
the checks a form post passes, and the lists the wall and the inbox show."""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from app.auth import Principal, TokenBook
from app.idempotency import ActionLedger
from app.view import ServiceView
from app.web.alert_words import AlertWords, device_type_name, place_text
from app.web.sessions import COOKIE, Sessions, principal_of
from app.words import LEVEL_ICONS, words
from kernel.clock import rfc3339

HERE = Path(__file__).parent
LEVEL_ORDER = {"red": 0, "orange": 1, "yellow": 2, "blue": 3}
LANGS = ("zh-CN", "en")


class LoginFirst(Exception):
    """A page asked for without a session (or with a link's session for another alert): off to /login."""


async def to_login_page(request: Request, exc: Exception) -> Response:
    """The answer to LoginFirst."""
    return PageKit.to_login()


class PageKit:
    """Rendering, sessions and form checks for the pages of one service."""

    def __init__(self, view: ServiceView, tokens: TokenBook) -> None:
        self.view, self.tokens = view, tokens
        self.sessions = Sessions.of(view)
        self.ledger = ActionLedger()
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
        # Times are kept in UTC (RFC 3339); people read them in the site's time zone, as the page's clock.
        zone = ZoneInfo(view.settings.timezone)
        for name, fmt in (("local", "%Y-%m-%d %H:%M:%S"), ("hms", "%H:%M:%S"), ("mdhm", "%m-%d %H:%M")):
            self.env.filters[name] = functools.partial(local_time, zone=zone, fmt=fmt)
        # People are shown by name (张伟), not by their recipient id.
        self.names = {r.id: r.name for r in view.settings.recipients}
        self.public = view.settings.http.public_url

    def lang_of(self, request: Request) -> str:
        """The viewer's language: asked for (?lang=, remembered in a cookie), else the site's locale."""
        asked = request.query_params.get("lang") or request.cookies.get("cb_lang")
        return asked if asked in LANGS else ("en" if self.view.settings.locale == "en" else "zh-CN")

    def words_of(self, request: Request) -> AlertWords:
        """An alert's words (summary, rule, value, map link) in the viewer's language."""
        return AlertWords(self.view, self.lang_of(request))

    def render(self, request: Request, name: str, session: dict[str, Any] | None, **ctx: Any) -> HTMLResponse:
        """A page in the viewer's language; never cached, never framed."""
        lang = self.lang_of(request)
        aw = AlertWords(self.view, lang)
        html = self.env.get_template(name).render(
            t=words(lang), lang=lang, icons=LEVEL_ICONS, session=session, csrf=session["c"] if session else "",
            rfc3339=rfc3339, place=lambda a: place_text(self.view, a, lang), aw=aw,
            person=lambda rid: self.names.get(rid, rid), kind=lambda device_type: device_type_name(device_type, lang),
            zone=self.view.settings.timezone, **ctx)
        resp = HTMLResponse(html, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                           "Referrer-Policy": "same-origin"})
        if request.query_params.get("lang") in LANGS:
            resp.set_cookie("cb_lang", lang, samesite="lax", httponly=True, max_age=365 * 86400)
        return resp

    def fragment(self, request: Request, name: str, **ctx: Any) -> str:
        """A part of a page in the viewer's language (sent again by the live stream)."""
        lang = self.lang_of(request)
        return self.env.get_template(name).render(t=words(lang), lang=lang, **ctx)

    def render_404(self, request: Request, session: dict[str, Any] | None, **ctx: Any) -> HTMLResponse:
        """The page that says there is no such thing (in the caller's scope)."""
        resp = self.render(request, "missing.html", session, **ctx)
        resp.status_code = 404
        return resp

    @staticmethod
    def to_login() -> RedirectResponse:
        """Off to the login page."""
        return RedirectResponse("/login", status_code=303)

    @staticmethod
    def same_origin(request: Request) -> bool:
        """A state-changing request comes from our own pages (Origin and Sec-Fetch-Site agree)."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return False
        origin = request.headers.get("origin")
        if origin is not None and origin != "null":
            return origin.split("://", 1)[-1] == request.headers.get("host", "")
        return origin != "null"

    @staticmethod
    async def form_lists(request: Request) -> dict[str, list[str]]:
        """A posted form, every value of each field."""
        body = (await request.body()).decode("utf-8", "replace")
        return parse_qs(body, keep_blank_values=True)

    async def form(self, request: Request) -> dict[str, str]:
        """A posted form, the first value of each field."""
        return {k: v[0] for k, v in (await self.form_lists(request)).items()}

    def page_session(self, request: Request, alert_id: str | None = None) -> dict[str, Any] | None:
        """The session of a page request; a link's login opens its one alert and nothing else."""
        s = self.sessions.read(request)
        if s is None or (s.get("a") is not None and s["a"] != alert_id):
            return None
        return s

    def viewer(self, request: Request, alert_id: str | None = None) -> tuple[dict[str, Any], Principal]:
        """The session of a page request and whom it stands for; LoginFirst (a redirect) without one."""
        s = self.page_session(request, alert_id)
        if s is None:
            raise LoginFirst
        return s, principal_of(s)

    def set_session(self, resp: Response, value: str, ttl: float | None = None) -> None:
        """Log in: the session cookie (secure when the service is reached over https)."""
        resp.set_cookie(COOKIE, value, max_age=int(ttl or self.sessions.ttl), httponly=True, samesite="lax",
                        secure=bool(self.public and self.public.startswith("https://")), path="/")

    def open_sorted(self, who: Principal) -> list[dict[str, Any]]:
        """Open alerts in scope: most serious first, then newest."""
        alerts = self.view.open_alerts(who.scope)
        alerts.sort(key=lambda a: a["started_at"] or "", reverse=True)
        alerts.sort(key=lambda a: LEVEL_ORDER.get(a["level"], 9))
        return alerts

    def unregistered_count(self, who: Principal) -> int:
        """How many addresses heard from through a source wait to be registered, in scope (none in a grid)."""
        return self.view.sources.unregistered_count(who.scope)

    def buildings(self, who: Principal) -> list[dict[str, Any]]:
        """Each building in scope with its devices online, offline and not reported."""
        view = self.view
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for c in view.site.communities.values():
            for b in c.buildings:
                if view.site.in_scope(who.scope, c.id, b.grid):
                    rows[(c.id, b.id)] = {"community": c.id, "community_name": c.name, "id": b.id,
                                          "name": b.name, "online": 0, "offline": 0, "unknown": 0}
        for d in view.devices(who.scope):
            known = view.site.communities.get(d["community"])
            row = rows.setdefault((d["community"], d["building"]), {
                "community": d["community"], "community_name": known.name if known else d["community"],
                "id": d["building"], "name": d["building"], "online": 0, "offline": 0, "unknown": 0})
            row["online" if d["online"] else "offline" if d["online"] is False else "unknown"] += 1
        return sorted(rows.values(), key=lambda r: (r["community"], r["id"]))


def local_time(value: str | None, *, zone: ZoneInfo, fmt: str) -> str:
    """An RFC 3339 time as people of the site read it ("" for none)."""
    if not value:
        return ""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(zone).strftime(fmt)
    except ValueError:
        return value
