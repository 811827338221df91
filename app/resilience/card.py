"""The live resilience scorecard of a community (CONTRACT §13, docs/resilience.md): the service's own records
selected from the state database (through the state thread's `select`, as LiveView reads alerts), the
figures of app/resilience/measures.py, and the contract's answer.

    alerts, answer_calls, work_orders + whistles, door_knocks, drills ─► Rows ─► indicators ─► categories ─► overall
    site file (buildings, devices), ResourceView (stock, shelters) ──────┘
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.resilience import measures as m
from app.resilience.trend import read_trend
from app.resilience.words import REASONS, word
from kernel.clock import NS, Clock, rfc3339
from kernel.errors import Reason, Refused
from kernel.settings import Settings

if TYPE_CHECKING:
    from app.resource_view import ResourceView

DAY = 86_400 * NS
Select = Callable[..., Awaitable[list[tuple[Any, ...]]]]
ANSWER_WITHIN_S = 300.0  # 叫应: a call answered within 5 minutes
CURVE_POINTS = 240  # the latest event's curve in the answer: at most this many points


@dataclass(frozen=True, slots=True)
class Spec:
    """An indicator: its category, unit, target and the value that scores 0 (linear in between)."""

    id: str
    category: str
    unit: str
    target: float
    worst: float


SPECS = (
    Spec("coverage", "sensing", "%", 100, 0), Spec("uptime_30d", "sensing", "%", 99, 90),
    Spec("ack_median_s", "response", "s", 300, 3600), Spec("ack_p90_s", "response", "s", 900, 7200),
    Spec("resolve_median_s", "response", "s", 3600, 86_400),
    Spec("ack_within_target", "response", "%", 100, 0), Spec("answered_5min", "response", "%", 100, 0),
    Spec("sign_median_s", "departments", "s", 900, 7200), Spec("arrive_median_s", "departments", "s", 1800, 14_400),
    Spec("signed_in_time", "departments", "%", 100, 0), Spec("arrived_in_time", "departments", "%", 100, 0),
    Spec("rating_mean", "departments", "rating", 4.5, 1),
    Spec("drills_12m", "preparedness", "count", 2, 0), Spec("supplies_ready", "preparedness", "%", 100, 0),
    Spec("shelter_capacity", "preparedness", "%", 15, 0), Spec("door_knocks_in_time", "preparedness", "%", 100, 0),
    Spec("peoples_area", "recovery", "ratio", 0.9, 0.5),
)
CATEGORIES = ("sensing", "response", "departments", "preparedness", "recovery")


@dataclass(slots=True)
class Alert:
    """The columns of an alert the scorecard reads."""

    rule: str
    level: str
    device_id: str
    started_ns: int
    acked_ns: int | None
    resolved_ns: int | None


@dataclass(slots=True)
class Rows:
    """A community's records, as selected (times in ns)."""

    now_ns: int
    alerts: list[Alert] = field(default_factory=list)
    calls: list[tuple[int, int | None, str]] = field(default_factory=list)  # called, answered, status
    orders: list[tuple[int, int, int, int | None, int | None, int | None]] = field(default_factory=list)
    knocks: list[tuple[str, int, str, int | None]] = field(default_factory=list)  # alert, due, status, at
    drills: int | None = None  # None: no drills table
    buildings: list[str] = field(default_factory=list)
    device_buildings: list[str] = field(default_factory=list)
    supplies: list[dict[str, Any]] = field(default_factory=list)
    capacity: dict[str, Any] = field(default_factory=dict)


Figure = tuple[float | None, str | None, dict[str, Any]]  # value, reason key, extra keys


def _fig(value: float | None, reason: str, **extra: Any) -> Figure:
    return (None if value is None else round(value, 3), reason if value is None else None, extra)


def offline_intervals(alerts: list[Alert], now_ns: int) -> dict[str, list[m.Interval]]:
    """Each device's offline spans: a `device.offline` alert from its start to its resolve (or now)."""
    out: dict[str, list[m.Interval]] = {}
    for a in alerts:
        if a.rule == "device.offline":
            out.setdefault(a.device_id, []).append((a.started_ns, a.resolved_ns or now_ns))
    return out


def sensing(r: Rows) -> dict[str, Figure]:
    """Coverage of the buildings, 30-day uptime."""
    devices = len(r.device_buildings)
    up = m.uptime(devices, offline_intervals(r.alerts, r.now_ns), r.now_ns - 30 * DAY, r.now_ns)
    if not r.buildings:
        cov: Figure = (None, "no_buildings", {})
    else:
        cov = _fig(m.coverage(r.buildings, r.device_buildings), "no_buildings", devices=devices)
        cov = (cov[0], "no_devices" if not devices else None, cov[2])
    return {"coverage": cov, "uptime_30d": _fig(up, "no_devices", devices=devices)}


def response(r: Rows, ack_targets: dict[str, float]) -> dict[str, Figure]:
    """Time to acknowledge and to resolve, acknowledged within the level's target, 叫应 answered in 5 min."""
    since = r.now_ns - 90 * DAY
    alerts = [a for a in r.alerts if a.started_ns >= since and not a.rule.startswith("service.")]
    acks = [(a.acked_ns - a.started_ns) / NS for a in alerts if a.acked_ns is not None]
    done = [(a.resolved_ns - a.started_ns) / NS for a in alerts if a.resolved_ns is not None]
    timely = m.within(((a.acked_ns - a.started_ns) / NS if a.acked_ns is not None else None,
                       ack_targets.get(a.level, 3600.0),
                       a.started_ns + ack_targets.get(a.level, 3600.0) * NS <= (a.resolved_ns or r.now_ns))
                      for a in alerts)
    calls = [((ans - called) / NS if ans is not None else None, ANSWER_WITHIN_S,
              called + ANSWER_WITHIN_S * NS <= r.now_ns and status != "ended")
             for called, ans, status in r.calls]
    none = "no_alerts" if not alerts else None
    return {"ack_median_s": _fig(m.median(acks), none or "no_acks", count=len(acks)),
            "ack_p90_s": _fig(m.quantile(acks, 0.9), none or "no_acks", count=len(acks)),
            "resolve_median_s": _fig(m.median(done), none or "no_resolved", count=len(done)),
            "ack_within_target": _fig(timely, none or "no_due_alerts", count=len(alerts)),
            "answered_5min": _fig(m.within(calls), "no_calls", count=len(r.calls))}


def departments(r: Rows) -> dict[str, Figure]:
    """吹哨报到: the departments' work orders of 12 months."""
    now = r.now_ns
    sign = [(s - o) / NS for o, _ds, _da, s, _a, _r in r.orders if s is not None]
    arrive = [(a - o) / NS for o, _ds, _da, _s, a, _r in r.orders if a is not None]
    signed = m.within(((s - o) / NS if s is not None else None, (ds - o) / NS, ds <= now)
                      for o, ds, _da, s, _a, _r in r.orders)
    arrived = m.within(((a - o) / NS if a is not None else None, (da - o) / NS, da <= now)
                       for o, _ds, da, _s, a, _r in r.orders)
    ratings = [float(x) for *_rest, x in r.orders if x is not None]
    none = "no_orders" if not r.orders else None
    n = len(r.orders)
    return {"sign_median_s": _fig(m.median(sign), none or "no_signed", count=len(sign)),
            "arrive_median_s": _fig(m.median(arrive), none or "no_arrived", count=len(arrive)),
            "signed_in_time": _fig(signed, none or "no_signed", count=n),
            "arrived_in_time": _fig(arrived, none or "no_arrived", count=n),
            "rating_mean": _fig(m.mean(ratings), none or "no_ratings", count=len(ratings))}


def knocks_in_time(knocks: list[tuple[str, int, str, int | None]], now_ns: int) -> tuple[float | None, int]:
    """Share (%) of the door-knock lists whose residents were all reached by the list's deadline; a list not
    complete whose deadline is still ahead is not counted yet. Also the number of lists."""
    lists: dict[str, list[tuple[int, str, int | None]]] = {}
    for alert_id, due, status, at in knocks:
        lists.setdefault(alert_id, []).append((due, status, at))
    hits = total = 0
    for rows in lists.values():
        ok = all(status == "reached" and at is not None and at <= due for due, status, at in rows)
        if ok or min(due for due, _s, _a in rows) <= now_ns:
            total += 1
            hits += ok
    return m.share(hits, total), len(lists)


def preparedness(r: Rows) -> dict[str, Figure]:
    """Drills, supplies in stock and in date, shelter capacity per resident, door knocks in time."""
    ready = m.share(sum(1 for s in r.supplies if s["quantity"] >= s["min_quantity"] and not s["expired"]),
                    len(r.supplies))
    residents, shelters = r.capacity.get("residents"), r.capacity.get("shelter_capacity", 0)
    knocks, lists = knocks_in_time(r.knocks, r.now_ns)
    drills: Figure = (float(r.drills or 0), None if r.drills else "no_drills", {})
    room = {"shelter_capacity": shelters, "residents": residents}
    return {"drills_12m": drills,
            "supplies_ready": _fig(ready, "no_supplies", count=len(r.supplies)),
            "shelter_capacity": (_fig(None, "no_residents", **room) if not residents
                                 else _fig(100.0 * shelters / residents, "", **room) if shelters
                                 else (0.0, "no_shelters", room)),
            "door_knocks_in_time": _fig(knocks, "no_knocks", count=lists)}


def recovery(r: Rows) -> dict[str, Figure]:
    """PEOPLES: the mean normalised area of the functionality curves of the events ended in 12 months, and
    the latest one's curve ([seconds since its start, Q])."""
    since = r.now_ns - 365 * DAY
    serious = [m.EventAlert(a.started_ns, a.acked_ns, a.resolved_ns) for a in r.alerts
               if a.level in ("orange", "red") and not a.rule.startswith("service.")
               and (a.resolved_ns is None or a.resolved_ns >= since)]
    ended = [(span, members) for span, members in m.episodes(serious, r.now_ns)
             if all(a.resolved_ns is not None for a in members)]
    devices, offline = len(r.device_buildings), offline_intervals(r.alerts, r.now_ns)
    curves = [m.curve(span, members, devices, offline) for span, members in ended]
    areas = [x for x in map(m.area, curves) if x is not None]
    extra: dict[str, Any] = {"count": len(areas)}
    if curves:
        last, start = curves[-1], ended[-1][0][0]
        step = max(1, -(-len(last) // CURVE_POINTS))
        pts = last[::step] if last[::step][-1] == last[-1] else [*last[::step], last[-1]]
        extra["curve"] = [[round((t - start) / NS, 3), round(q, 4)] for t, q in pts]
        extra["event_start"], extra["event_end"] = rfc3339(ended[-1][0][0]), rfc3339(ended[-1][0][1])
    return {"peoples_area": _fig(m.mean(areas), "no_events", **extra)}


def scorecard(r: Rows, ack_targets: dict[str, float], lang: str) -> dict[str, Any]:
    """The contract's answer (without `community` and `as_of`) from a community's rows."""
    figures = sensing(r) | response(r, ack_targets) | departments(r) | preparedness(r) | recovery(r)
    categories: list[dict[str, Any]] = []
    for cid in CATEGORIES:
        indicators: list[dict[str, Any]] = []
        for s in (s for s in SPECS if s.category == cid):
            value, reason, extra = figures[s.id]
            indicators.append({"id": s.id, "name": word(s.id, lang), "value": value, "unit": s.unit,
                               "target": s.target, "score": m.score(value, s.target, s.worst),
                               "better": "lower" if s.worst > s.target else "higher",
                               "reason": word(reason, lang, REASONS) if reason else None} | extra)
        points = round(sum(i["score"] for i in indicators) / len(indicators), 1)
        categories.append({"id": cid, "name": word(cid, lang), "score": points, "rating": m.rating(points),
                           "indicators": indicators})
    overall = round(sum(c["score"] for c in categories) / len(categories), 1)
    return {"overall": {"score": overall, "rating": m.rating(overall)}, "categories": categories}


class Scorecard:
    """The scorecards of the site's communities from the service's own records."""

    def __init__(self, settings: Settings, clock: Clock, resources: ResourceView, select: Select | None,
                 store: Any = None) -> None:
        self.settings, self.clock, self.resources, self._select = settings, clock, resources, select
        self.store = store  # the reading store the history is written to (and the trend read from)
        self.communities = {c.id: c for c in settings.communities}
        self.ack_targets = {str(k): float(v) for k, v in settings.alerts.ack_timeout_s.items()}

    async def rows(self, community: str, now_ns: int) -> Rows:
        """The community's records the scorecard reads."""
        select = self._select
        if select is None:
            raise Refused(Reason.UNAVAILABLE, "the resilience scorecard is not served by a cluster yet")
        c = self.communities[community]
        year, quarter = now_ns - 365 * DAY, now_ns - 90 * DAY
        tables = {name for (name,) in await select("SELECT name FROM sqlite_master WHERE type = 'table'", ())}
        r = Rows(now_ns, buildings=[b.id for b in c.buildings],
                 device_buildings=[d.building or "" for d in self.settings.devices if d.community == community],
                 supplies=self.resources.supplies(None, community=community),
                 capacity=self.resources.capacity(community))
        if "alerts" in tables:
            r.alerts = [Alert(*row) for row in await select(
                "SELECT rule, level, device_id, started_ns, acked_ns, resolved_ns FROM alerts WHERE community = ? "
                "AND (started_ns >= ? OR resolved_ns IS NULL OR resolved_ns >= ?) ORDER BY started_ns",
                (community, year, year))]
        if {"answer_calls", "alerts"} <= tables:
            r.calls = await select("SELECT c.called_ns, c.answered_ns, c.status FROM answer_calls c JOIN alerts a "
                                   "ON a.id = c.alert_id WHERE a.community = ? AND c.called_ns >= ?",
                                   (community, quarter))
        if {"work_orders", "whistles"} <= tables:
            r.orders = await select("SELECT o.opened_ns, o.due_sign_ns, o.due_arrive_ns, o.signed_ns, o.arrived_ns, "
                                    "o.rating FROM work_orders o JOIN whistles w ON w.id = o.whistle_id "
                                    "WHERE w.community = ? AND o.opened_ns >= ?", (community, year))
        if "door_knocks" in tables:
            r.knocks = await select("SELECT alert_id, due_ns, status, at_ns FROM door_knocks WHERE community = ? "
                                    "AND created_ns >= ?", (community, year))
        if "drills" in tables:  # (the drills' table is made by whoever records drills)
            r.drills = (await select("SELECT COUNT(*) FROM drills WHERE community = ? AND started_ns >= ?",
                                     (community, year)))[0][0]
        return r

    async def card(self, community: str, lang: str | None = None) -> dict[str, Any] | None:
        """The contract's answer for one community; None if the site has no such community."""
        if community not in self.communities:
            return None
        now = self.clock.now_ns()
        rows = await self.rows(community, now)
        return {"community": community, "as_of": rfc3339(now)} | scorecard(rows, self.ack_targets,
                                                                           lang or self.settings.locale)

    async def trend(self, community: str, days: int = 90) -> dict[str, list[tuple[int, float]]] | None:
        """The community's scores (by category and `overall`) of the last `days` from the history; None when
        the reading store cannot answer such a question (the embedded SQLite store, a cluster)."""
        return await read_trend(self.store, community, self.clock.now_ns() - days * DAY)
