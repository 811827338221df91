"""物资 and 避难场所 (CONTRACT §13, docs/pages.md): the supplies with their stock and a movement form, the
supplies' ledger as Excel or CSV, the shelters with their occupancy and each community's room against the
15 % norm; on the alert page, what is on hand and a red alert's door knocks (上门确认), each resident only
to those who may see them, the counts to everyone else."""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from app.actions import actor_of
from app.auth import Principal
from app.idempotency import ActionLedger
from app.refusals import status_of
from app.resource_export import ledger_file
from app.web.alert_words import AMAP_MARKER
from app.web.kit import PageKit
from app.web.sessions import principal_of
from app.words import span_words, words
from kernel.clock import NS
from kernel.errors import Reason, Refused
from kernel.resources import KNOCKS, SHELTER_NEARLY_FULL, Knock, Movement, target_of

CROSS_SITE = {"detail": "cross-site request refused"}
# Who has the supplies and shelters pages (a department's contact has neither).
ROLES = frozenset({"admin", "bureau", "street_office", "community", "grid_worker"})
KINDS = ("fire", "flood", "medical", "power", "rescue", "living")
REASONS = tuple(m.value for m in Movement)
WHOLE = re.compile(r"[0-9]{1,7}")
MAX_NOTE = 500


def sees_resources(role: str) -> bool:
    """Whether a role has the supplies and shelters pages (and their links in the top bar)."""
    return role in ROLES


def fill(text: str, **values: Any) -> str:
    """A sentence of the words with its blanks ({n}, {unit}, …) filled in."""
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    return text


class ResourcePages:
    """What the supplies, shelters and door-knock pages share: the kit, the resources, words and times."""

    def __init__(self, kit: PageKit) -> None:
        self.kit, self.view = kit, kit.view
        self.res = kit.view.resources
        self.ledger = ActionLedger()
        self.zone = ZoneInfo(kit.view.settings.timezone)

    def when(self, text: str | None, t: dict[str, str]) -> tuple[str, str]:
        """A time (RFC 3339) as people read it in the site's time zone (12:03, or 05-06 12:03 on another day),
        and how long ago."""
        if not text:
            return "", ""
        at = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(self.zone)
        now_ns = self.view.now_ns()
        today = datetime.fromtimestamp(now_ns / NS, self.zone).date()
        clock = at.strftime("%H:%M" if at.date() == today else "%m-%d %H:%M")
        return clock, fill(t["ago_fmt"], span=span_words(max(0.0, now_ns / NS - at.timestamp()), t))

    def now(self) -> str:
        """The service's time in the site's time zone (the top bar's 更新于, as the times on the page)."""
        return datetime.fromtimestamp(self.view.now_ns() / NS, self.zone).isoformat(timespec="milliseconds")

    def communities(self, who: Principal) -> list[tuple[str, str]]:
        """(id, name) of each community in the caller's scope."""
        return [(c.id, c.name) for c in self.view.site.communities.values()
                if who.scope is None or who.scope.community in (None, c.id)]

    # ---- supplies --------------------------------------------------------------------------------

    def supply_rows(self, who: Principal, t: dict[str, str]) -> list[dict[str, Any]]:
        """The supplies in scope with their state in words, keeper by name, and whether the caller moves them."""
        out = []
        for s in self.res.supplies(who.scope):
            states = [(k, t[f"sup_{k}"]) for k in ("expired", "expiring", "short") if s[k]]
            days = s["days_left"]
            left = "" if days is None else fill(t["days_over"], n=-days) if days < 0 else fill(t["days_left"], n=days)
            expiry = t["no_expiry"] if s["expires"] is None else f"{s['expires']} · {left}"
            out.append(s | {"states": states or [("ok", t["sup_ok"])],
                            "keeper_name": self.kit.names.get(s["keeper"], s["keeper"]),
                            "tier_word": t.get(f"tier_{s['tier']}", s["tier"]), "expiry": expiry,
                            "kinds": [t.get(f"kind_{k}", k) for k in s["kind"]],
                            "movable": self.res.may_move(who, s["id"])})
        return out

    def supplies_page(self, request: Request, s: dict[str, Any], values: dict[str, str], error: str | None = None,
                      wrong: str | None = None, status: int = 200) -> HTMLResponse:
        """The supplies page: a summary, the kinds to filter by, the movement form and the supplies by community."""
        who, t = principal_of(s), words(self.kit.lang_of(request))
        kind = values.get("kind") if values.get("kind") in KINDS else None
        everything = self.supply_rows(who, t)
        rows = [x for x in everything if kind is None or kind in x["kind"]]
        groups = [{"id": c, "name": name, "rows": [x for x in rows if x["community"] == c]}
                  for c, name in self.communities(who)]  # in the site file's order
        groups = [g for g in groups if g["rows"]]
        counts = {k: sum(1 for x in everything if x[k]) for k in ("short", "expiring", "expired")}
        kinds = [k for k in KINDS if any(k in x["kind"] for x in everything)]
        resp = self.kit.render(request, "supplies.html", s, groups=groups, counts=counts, kinds=kinds, kind_on=kind,
                               movable=self.movable(who, everything), v=values, error=error, wrong=wrong,
                               done=self.moved_line(request, who, t), reasons=REASONS, fill=fill,
                               idem=secrets.token_urlsafe(12), now=self.now())
        resp.status_code = status
        return resp

    def movable(self, who: Principal, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The supplies the caller may move, by community in the site file's order (the form's choices)."""
        groups = [{"id": c, "name": name, "rows": [x for x in rows if x["community"] == c and x["movable"]]}
                  for c, name in self.communities(who)]
        return [g for g in groups if g["rows"]]

    def moved_line(self, request: Request, who: Principal, t: dict[str, str]) -> str | None:
        """The line that says a movement was recorded (after the form's redirect), from the stock as it is now."""
        q = request.query_params
        found = next((x for x in self.res.supplies(who.scope) if x["id"] == q.get("moved")), None)
        if found is None or q.get("reason") not in REASONS or not re.fullmatch(r"-?[0-9]{1,7}", q.get("n", "")):
            return None
        n, why = int(q["n"]), q["reason"]
        name, unit, now_q = found["name"], found["unit"], found["quantity"]
        if why == Movement.COUNT:
            return (fill(t["counted"], name=name, q=now_q, unit=unit, delta=f"{n:+d}") if n else
                    fill(t["count_same"], name=name, q=now_q, unit=unit))
        return fill(t["moved"], name=name, why=t[f"reason_{why}"], n=abs(n), unit=unit, q=now_q)

    def check_move(self, who: Principal, fields: dict[str, str], t: dict[str, str]
                   ) -> tuple[dict[str, Any] | None, int, str, str]:
        """The supply, the delta, and what is wrong with a posted movement and in which field ("" when nothing)."""
        found = next((x for x in self.res.supplies(who.scope) if x["id"] == fields.get("supply")), None)
        if found is None or not self.res.may_move(who, found["id"]):
            return None, 0, t["need_supply"], "supply"
        why = fields.get("reason", "")
        if why not in REASONS:
            return found, 0, t["need_reason"], "reason"
        text = fields.get("quantity", "").strip()
        if not WHOLE.fullmatch(text):
            return found, 0, t["need_qty"], "quantity"
        n = int(text)
        if why == Movement.COUNT:
            return found, n - found["quantity"], "", ""
        if n <= 0:
            return found, 0, t["need_positive"], "quantity"
        if why in (Movement.USED, Movement.EXPIRED) and n > found["quantity"]:
            return found, 0, fill(t["too_many"], q=found["quantity"], unit=found["unit"], n=n,
                                  why=t[f"reason_{why}"]), "quantity"
        return found, (-n if why in (Movement.USED, Movement.EXPIRED) else n), "", ""

    async def move(self, request: Request, s: dict[str, Any], fields: dict[str, str]) -> Response:
        """A movement posted from the form, once per idempotency key; the form again, as typed, when it is wrong."""
        who, t = principal_of(s), words(self.kit.lang_of(request))
        values = {k: fields.get(k, "").strip()[:MAX_NOTE] for k in ("supply", "reason", "quantity", "note", "kind")}
        found, delta, error, wrong = self.check_move(who, fields, t)
        if error:
            return self.supplies_page(request, s, values, error, wrong, 422)
        assert found is not None
        back = f"/supplies?moved={found['id']}&reason={values['reason']}&n={delta}" + (
            f"&kind={values['kind']}" if values["kind"] in KINDS else "")
        if delta == 0:  # a count that matches the stock: nothing moves
            return RedirectResponse(back, status_code=303)

        async def run() -> dict[str, Any]:
            client = request.client.host if request.client is not None else None
            return await self.res.move(who, found["id"], delta, values["reason"], values["note"] or None, client)
        try:
            await self.ledger.run(f"{actor_of(who)}|move|{fields['idem']}" if fields.get("idem") else None, run)
        except Refused as exc:
            return self.supplies_page(request, s, values, str(exc), "quantity", status_of(exc))
        return RedirectResponse(back, status_code=303)

    # ---- shelters --------------------------------------------------------------------------------

    def shelter_row(self, who: Principal, sh: dict[str, Any], t: dict[str, str]) -> dict[str, Any]:
        """A shelter with its occupancy in words (接近满员 at 90 %, 已满员 at 100 %) and its last count."""
        occ, cap = sh["occupancy"], sh["capacity"]
        state = "full" if occ >= cap else "nearly" if occ >= SHELTER_NEARLY_FULL * cap else "free"
        pct = 100 * occ // cap  # floored: 539 of 600 is 89 %, not yet 接近满员
        at, ago = self.when(sh["occupancy_at"], t)
        return sh | {"state": state, "state_word": t[f"occ_{state}"], "pct": pct, "bar": min(100, pct),
                     "occ_line": fill(t["occ_of"], occ=occ, cap=cap, pct=pct),
                     "at_line": fill(t["occ_at"], at=at, ago=ago) if at else t["occ_never"],
                     "manager_name": self.kit.names.get(sh["manager"] or "", sh["manager"] or "–"),
                     "may_update": self.res.may_occupy(who, sh["id"])}

    def norm_line(self, community: str, t: dict[str, str]) -> dict[str, Any]:
        """A community's room in its shelters against its residents and the 15 % norm, in words."""
        c = self.res.capacity(community)
        if c["capacity_per_resident"] is None:
            return {"state": "unknown", "line": t["norm_unknown"], "word": ""}
        line = fill(t["norm_line"], cap=c["shelter_capacity"], res=c["residents"],
                    pct=f"{100 * c['capacity_per_resident']:.1f}", norm=f"{100 * c['norm']:g}")
        return {"state": "ok" if c["meets_norm"] else "bad", "line": line,
                "word": t["norm_ok"] if c["meets_norm"] else t["norm_bad"]}

    def shelters_page(self, request: Request, s: dict[str, Any], error: dict[str, str] | None = None,
                      status: int = 200) -> HTMLResponse:
        """Each community in scope: its norm, then each shelter with its occupancy and (for those who may) the form."""
        who, t = principal_of(s), words(self.kit.lang_of(request))
        communities: list[dict[str, Any]] = [
            {"id": c, "name": name, "norm": self.norm_line(c, t),
             "shelters": [self.shelter_row(who, sh, t) for sh in self.res.shelters(who.scope, community=c)]}
            for c, name in self.communities(who)]
        rows = [sh for c in communities for sh in c["shelters"]]
        done = next((fill(t["occ_updated"], name=sh["name"], n=sh["occupancy"]) for sh in rows
                     if sh["id"] == request.query_params.get("updated")), None)
        resp = self.kit.render(request, "shelters.html", s, communities=communities, done=done, error=error or {},
                               now=self.now())
        resp.status_code = status
        return resp

    async def occupy(self, request: Request, s: dict[str, Any], shelter_id: str, fields: dict[str, str]) -> Response:
        """An occupancy posted from a shelter's form; the page again, with what was typed, when it is wrong."""
        who, t = principal_of(s), words(self.kit.lang_of(request))
        if not any(x["id"] == shelter_id for x in self.res.shelters(who.scope)):
            return self.kit.render_404(request, s)  # (another scope's shelter is not found, whatever is typed)
        text = fields.get("count", "").strip()
        if not WHOLE.fullmatch(text):
            return self.shelters_page(request, s, {"id": shelter_id, "text": t["need_count"], "value": text[:20]}, 422)
        try:
            client = request.client.host if request.client is not None else None
            await self.res.occupy(who, shelter_id, int(text), client)
        except Refused as exc:
            return self.shelters_page(request, s, {"id": shelter_id, "text": str(exc), "value": text},
                                      status_of(exc))
        return RedirectResponse(f"/shelters?updated={shelter_id}#sh-{shelter_id}", status_code=303)

    # ---- with an alert ---------------------------------------------------------------------------

    def on_hand(self, a: dict[str, Any], t: dict[str, str]) -> dict[str, Any]:
        """An orange or red building alert's nearest shelters and the supplies that fit, in words."""
        found = self.res.on_hand(a)
        if not found:
            return {}
        places = {sh["id"]: sh["location"] for sh in self.res.shelters(None)}
        for sh in found["shelters"]:
            sh["far"] = self.far(sh["distance_m"], t)
            sh["cap_line"] = fill(t["cap_occ"], cap=sh["capacity"], occ=sh["occupancy"])
            at = places.get(sh["id"]) or {}
            sh["map"] = (AMAP_MARKER.format(lon=at["lon"], lat=at["lat"], name=quote(sh["name"], safe=""))
                         if "lat" in at and "lon" in at else None)
        for x in found["supplies"]:
            x["far"] = self.far(x["distance_m"], t)
            x["keeper_name"] = self.kit.names.get(x["keeper"], x["keeper"])
        return found

    @staticmethod
    def far(distance_m: float | None, t: dict[str, str]) -> str:
        """How far, as people say it: 约 290 米, or 就在楼内 for what is kept in the building itself."""
        if distance_m is None:
            return ""
        return t["here_in"] if distance_m < 5 else fill(t["metres"], m=f"{distance_m:.0f}")

    def knocks(self, who: Principal, a: dict[str, Any], t: dict[str, str]) -> dict[str, Any]:
        """A red alert's door knocks: the share reached and recorded, the deadline, and (to those who may see
        the residents) one row per resident."""
        found = self.res.door_knocks(who, a)
        if not found:
            return {}
        n = found["door_knocks_summary"]
        total, pending = n["total"], n["pending"]
        due_at, _ago = self.when(n["due_at"], t)
        due_ns = datetime.fromisoformat(n["due_at"].replace("Z", "+00:00")).timestamp() * NS
        left = due_ns - self.view.now_ns()
        late = bool(pending) and (n["escalated"] or left <= 0)
        due = (fill(t["knocks_follow"], n=n["not_reached"]) if not pending and n["not_reached"] else
               t["knocks_all_done"] if not pending else t["knocks_escalated"] if n["escalated"] else
               fill(t["knocks_overdue"], at=due_at) if left <= 0 else
               fill(t["knocks_due"], at=due_at, left=span_words(left / NS, t)))
        # open (knocks to do), late (past the deadline), unreached (all recorded, somebody not reached), done.
        state = "late" if late else "open" if pending else "unreached" if n["not_reached"] else "done"
        out = {"summary": n, "bar": round(100 * n["reached"] / total) if total else 0,
               "reached_line": fill(t["knocks_reached"], n=n["reached"], total=total),
               "recorded_line": fill(t["knocks_recorded"], n=total - pending, total=total),
               "not_line": fill(t["knocks_not"], n=n["not_reached"]), "left_line": fill(t["knocks_left"], n=pending),
               "due_line": due, "state": state,
               "people": None}
        if "door_knocks" in found:
            out["people"] = [self.knock_row(k, t) for k in found["door_knocks"]]
        return out

    def knock_row(self, k: dict[str, Any], t: dict[str, str]) -> dict[str, Any]:
        """One resident's door knock in words: where, who, what they need, and who recorded what when."""
        at, _ago = self.when(k["at"], t)
        room = (fill(t["room_of"], unit=k["unit"], room=k["room"]) if k["unit"] and k["room"] else
                fill(t["room_only"], room=k["room"]) if k["room"] else "")
        by = self.kit.names.get(k["by"] or "", k["by"] or "")
        return k | {"room_text": room, "category_word": t.get(f"vc_{k['category']}", k["category"] or ""),
                    "status_word": t[f"ks_{k['status']}"], "by_line": fill(t["knock_by"], by=by, at=at) if at else ""}

    def alert_parts(self, who: Principal, a: dict[str, Any], lang: str) -> dict[str, Any]:
        """The alert page's 现场可用 (on hand) and 上门确认 (door knocks)."""
        t = words(lang)
        # door_knocks.late (its place "knocks:<alert id>") shows the door knocks of the alert it is about.
        about = target_of(a["device_id"])
        late_of = about[1] if about is not None and about[0] == KNOCKS else None
        door = self.knocks(who, a | {"id": late_of} if late_of else a, t)
        return {"on_hand": self.on_hand(a, t), "door": door | {"alert_id": late_of or a["id"]} if door else {}}

    async def knock(self, request: Request, alert_id: str, vulnerable_id: str) -> Response:
        """A door knock posted from the alert page (a link's login for this alert counts)."""
        s = self.kit.page_session(request, alert_id)
        fields = await self.kit.form(request)
        if s is None or not self.kit.same_origin(request) or fields.get("csrf") != s["c"]:
            return JSONResponse(CROSS_SITE, status_code=403)
        who = principal_of(s)
        a = await self.view.alert(None if s.get("a") == alert_id else who.scope, alert_id)
        if a is None:
            return self.kit.render_404(request, s)
        status = fields.get("status", "")
        try:
            if status not in (Knock.REACHED, Knock.NOT_REACHED):
                raise Refused(Reason.INVALID, "status is reached or not_reached")
            client = request.client.host if request.client is not None else None
            note = fields.get("note", "").strip()[:MAX_NOTE] or None
            body = await self.res.knock(who, a, vulnerable_id, status, note, client)
        except Refused as exc:
            resp = self.kit.render(request, "missing.html", s, message=str(exc), now=self.now())
            resp.status_code = status_of(exc)
            return resp
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(body)
        return RedirectResponse(f"/alert/{alert_id}#k-{vulnerable_id}", status_code=303)


def knock_counts(view: Any, who: Principal, alerts: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """The door-knock counts (never who) of each alert that has door knocks, by alert id: the wall's and the
    inbox's 上门确认 1/2."""
    out = {}
    for a in alerts:
        found = view.resources.door_knocks(who, a)
        if found:
            n = found["door_knocks_summary"]
            out[a["id"]] = {k: n[k] for k in ("total", "reached", "not_reached", "pending")}
    return out


def router(kit: PageKit) -> APIRouter:
    """/supplies (its movement form and ledger), /shelters (its occupancy form) and an alert's door knocks."""
    r = APIRouter(include_in_schema=False)
    pages = ResourcePages(kit)
    kit.env.globals["sees_resources"] = sees_resources  # the top bar links 物资 and 避难场所 for those who see them

    def viewer(request: Request) -> tuple[dict[str, Any], Principal] | Response:
        s, who = kit.viewer(request)
        if not sees_resources(who.role):
            return kit.render_404(request, s)
        return s, who

    @r.get("/supplies", response_class=HTMLResponse)
    async def supplies(request: Request) -> Response:
        found = viewer(request)
        if isinstance(found, Response):
            return found
        q = request.query_params
        # The form starts at 领用 (used), the commonest movement on a bad day, for the supply a row picked
        # (or the one just moved).
        return pages.supplies_page(request, found[0], {"kind": q.get("kind", ""), "reason": "used",
                                                       "supply": q.get("supply") or q.get("moved") or ""})

    @r.post("/supplies/move")
    async def move(request: Request) -> Response:
        s = kit.page_session(request)
        fields = await kit.form(request)
        if s is None or s.get("a") or not kit.same_origin(request) or fields.get("csrf") != s["c"]:
            return JSONResponse(CROSS_SITE, status_code=403)
        if not sees_resources(s["r"]):
            return kit.render_404(request, s)
        return await pages.move(request, s, fields)

    @r.get("/supplies/ledger.{fmt}")
    async def ledger(request: Request, fmt: str) -> Response:
        found = viewer(request)
        if isinstance(found, Response):
            return found
        if fmt not in ("csv", "xlsx"):
            return kit.render_404(request, found[0])
        rows = await pages.res.movements(found[1].scope)
        body, media, headers = ledger_file(rows, fmt, kit.lang_of(request))
        return Response(body, media_type=media, headers=headers)

    @r.get("/shelters", response_class=HTMLResponse)
    async def shelters(request: Request) -> Response:
        found = viewer(request)
        return found if isinstance(found, Response) else pages.shelters_page(request, found[0])

    @r.post("/shelters/{shelter_id}/occupancy")
    async def occupy(request: Request, shelter_id: str) -> Response:
        s = kit.page_session(request)
        fields = await kit.form(request)
        if s is None or s.get("a") or not kit.same_origin(request) or fields.get("csrf") != s["c"]:
            return JSONResponse(CROSS_SITE, status_code=403)
        if not sees_resources(s["r"]):
            return kit.render_404(request, s)
        return await pages.occupy(request, s, shelter_id, fields)

    @r.post("/alert/{alert_id}/door-knocks/{vulnerable_id}")
    async def knock(request: Request, alert_id: str, vulnerable_id: str) -> Response:
        return await pages.knock(request, alert_id, vulnerable_id)

    return r
