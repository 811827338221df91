"""What people do to alerts and whistles, the same through the API (app/http) and the pages (app/web):
acknowledge, resolve (with a category) and hand over an alert once per idempotency key, whom an alert
may be handed over to, and where a whistle is. A refused action raises kernel.errors.Refused; each
side says it in its own way (app/http/errors.py maps it to an HTTP status)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from app.auth import Principal
from app.idempotency import ActionLedger
from app.view import ActedBy, ServiceView
from kernel.errors import Reason, Refused
from kernel.ids import UNKNOWN, Identifier

Category = Literal["real", "false_alarm", "test", "device_fault"]
CATEGORIES: tuple[str, ...] = ("real", "false_alarm", "test", "device_fault")


def note_with_category(note: str | None, category: str | None) -> str | None:
    """The note as stored: a resolution's category goes first, in brackets ("[false_alarm] ...")."""
    if category is None:
        return note
    return f"[{category}] {note}" if note else f"[{category}]"


def split_category(note: str | None) -> tuple[str | None, str | None]:
    """The category and the note of a stored note."""
    if note and note.startswith("["):
        head, _, rest = note[1:].partition("]")
        if head in CATEGORIES:
            return head, rest.strip() or None
    return None, note


def actor_of(who: Principal) -> str:
    """Who acts: the recipient a token stands for, or its role."""
    return who.recipient or who.role


def acted_by(who: Principal, request: Request) -> ActedBy:
    """Who acts, for the audit log: the caller's role and client address."""
    return ActedBy(who.role, request.client.host if request.client is not None else None)


def check_community(who: Principal, community: str | None) -> None:
    """Refused (forbidden) when a filter names a community outside the caller's scope."""
    if community is not None and who.scope is not None and who.scope.community not in (None, community):
        raise Refused(Reason.FORBIDDEN, f"community {community!r} is outside your scope")


async def act(view: ServiceView, ledger: ActionLedger, who: Principal, alert_id: str, action: str,
              note: str | None, *, to: str | None = None, key: str | None = None,
              by: ActedBy | None = None, via: str = "api") -> dict[str, Any]:
    """Acknowledge, resolve or hand over an alert the caller may see (or, to acknowledge, was called for),
    once per idempotency key (`by`: the role and client address the audit log records; `via`: how, for
    叫应's ledger)."""
    if await view.alert(who.scope, alert_id) is None and not (action == "ack" and await called(view, who, alert_id)):
        raise Refused(Reason.NOT_FOUND, "no such alert")  # the same answer as for an id that does not exist
    actor = actor_of(who)

    async def run() -> dict[str, Any]:
        if action == "resolve":
            return await view.resolve(alert_id, actor, note, by)
        if action == "handover":
            assert to is not None
            if not hand_over_allowed(view, who, alert_id, to):
                raise Refused(Reason.INVALID, f"{to!r} is not a recipient of this alert's scope")
            return await view.hand_over(alert_id, actor, to, note, by)
        return await view.acknowledge(alert_id, actor, note, by, via=via)

    return await ledger.run(f"{actor}|{alert_id}|{action}|{key}" if key else None, run)


async def called(view: ServiceView, who: Principal, alert_id: str) -> bool:
    """Whether 叫应 called the caller for this alert (a backup person of another grid may answer it)."""
    if who.recipient is None:
        return False
    return any(e["person"] == who.recipient for e in await view.ledger(None, alert_id) or [])


def hand_over_candidates(view: ServiceView, who: Principal, community: str, grid: str) -> list[Any]:
    """Recipients an alert at (community, grid) may be handed over to: those who cover it and are in the
    caller's scope (a grid worker hands over within their grid, a community within their community)."""
    out = []
    for r in view.recipients():
        if r.id == who.recipient:
            continue
        scope = r.scope if (r.scope.community or r.scope.grid) else None
        if not view.site.in_scope(scope, community, grid):
            continue  # they would not see it
        if who.scope is not None and (r.scope.community != who.scope.community
                                      or (who.scope.grid is not None and r.scope.grid != who.scope.grid)):
            continue
        out.append(r)
    return out


def hand_over_allowed(view: ServiceView, who: Principal, alert_id: str, to: str) -> bool:
    """Whether the caller may hand this (open) alert over to `to`."""
    found = next((a for a in view.open_alerts(who.scope) if a["id"] == alert_id), None)
    if found is None:
        return True  # the service answers that it is resolved
    return any(r.id == to for r in hand_over_candidates(view, who, found["community"], found["grid"]))


class WhistleIn(BaseModel):
    """A whistle: how pressing, what, where, which departments; from an alert or on its own."""

    model_config = ConfigDict(extra="forbid")
    grade: Literal["general", "urgent"]
    what: str = Field(min_length=1, max_length=500)
    where: str | None = Field(default=None, min_length=1, max_length=200)
    community: Identifier | None = None
    grid: Identifier | None = None
    alert_id: str | None = Field(default=None, min_length=1, max_length=128)
    departments: list[Identifier] = Field(min_length=1, max_length=20)


async def place_of_whistle(view: ServiceView, who: Principal, body: WhistleIn) -> tuple[str, str, str]:
    """(community, grid, where) of a whistle: from its alert, else from the body and the caller's scope."""
    w = view.whistles
    if body.alert_id is not None:
        alert = await view.alert(who.scope, body.alert_id)
        if alert is None:
            raise Refused(Reason.NOT_FOUND, "no such alert")
        where = body.where or w.place_text(alert["community"], alert["building"], alert["device_id"])
        return alert["community"], alert["grid"], where
    community = body.community or (who.scope.community if who.scope else None)
    if community is None:
        raise Refused(Reason.INVALID, "say which community (community) or which alert (alert_id) the whistle is for")
    check_community(who, community)
    if community not in view.site.communities:
        raise Refused(Reason.INVALID, f"no community {community!r} in the site file")
    grid = body.grid or (who.scope.grid if who.scope and who.scope.grid else UNKNOWN)
    c = view.site.communities[community]
    if grid != UNKNOWN and grid not in {g.id for g in c.grids}:
        raise Refused(Reason.INVALID, f"community {community!r} has no grid {grid!r}")
    if not view.site.in_scope(who.scope, community, grid):
        raise Refused(Reason.FORBIDDEN, f"grid {grid!r} is outside your scope")
    if not body.where:
        raise Refused(Reason.INVALID, "say where it is (where)")
    return community, grid, body.where
