"""The wall's cluster strip (CONTRACT §12), from the view's health when it has a `cluster` part (in one
process it has none, and the wall shows no strip): the instance serving the page, the live instances with
how many partitions and communities each holds, the latest handover any of them reports, and a warning,
in words, while this instance's lease is lost or a partition is served by nobody."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from app.view import ServiceView
from app.words import words

NS = 1_000_000_000


def cluster_strip(view: ServiceView, lang: str) -> dict[str, Any] | None:
    """What the strip shows, in the viewer's language; None outside a cluster."""
    _ok, health = view.health()
    c = health.get("cluster")
    if not isinstance(c, dict):
        return None
    t = words(lang)
    me = str(c.get("instance") or "")
    instances = [{"name": i["name"], "here": i["name"] == me, "partitions": len(i.get("partitions") or []),
                  "communities": len(i.get("communities") or []),
                  "held": t["list_sep"].join(str(p) for p in i.get("partitions") or [])}
                 for i in c.get("instances") or []]
    problems = []
    if c.get("lease") == "lost":
        problems.append(t["cl_lease_lost"])
    unserved = [str(p["partition"]) for p in health.get("partitions") or [] if p.get("error")]
    if unserved:
        problems.append(t["cl_unserved" if len(unserved) == 1 else "cl_unserved_n"].format(
            parts=t["list_sep"].join(unserved)))
    return {"me": me, "ok": not problems, "instances": instances, "problems": problems,
            "handover": last_handover(c, view, t)}


def last_handover(c: dict[str, Any], view: ServiceView, t: dict[str, str]) -> dict[str, Any] | None:
    """The newest handover this instance or any live one reports, ready to show."""
    seen = [*(c.get("handovers") or [])[:1], *(i.get("last_handover") for i in c.get("instances") or [])]
    known = [h for h in seen if isinstance(h, dict) and h.get("at")]
    if not known:
        return None
    h = max(known, key=lambda h: str(h["at"]))
    took = h.get("took_s")
    how = "" if h.get("from") is None else t["cl_released"] if h.get("released") else t["cl_taken"]
    return {"partition": h.get("partition"), "from": h.get("from") or t["cl_nobody"], "to": h.get("to") or "",
            "at": h["at"], "when": when(str(h["at"]), view), "how": how,
            "took": None if took is None else f"{float(took):.1f}{t['sec']}"}


def when(at: str, view: ServiceView) -> str:
    """An RFC 3339 time as the site's clock shows it: the time of day, with the date when not today."""
    zone = ZoneInfo(view.settings.timezone)
    try:
        moment = datetime.fromisoformat(at.replace("Z", "+00:00")).astimezone(zone)
    except ValueError:
        return at
    today = datetime.fromtimestamp(view.now_ns() / NS, zone).date()
    return moment.strftime("%H:%M:%S" if moment.date() == today else "%m-%d %H:%M:%S")
