"""Drills seen through the HTTP layer (docs/drills.md): start, end, list, and the report computed from the
state database's records (app/drill_report.py)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import orjson

from alerts import drills as store
from alerts.call_until_answered import CALL_COLUMNS
from alerts.drills import PREFIX, Drill, DrillBook
from alerts.runner import AlertsRunner
from app.drill_report import Records, compute
from kernel.clock import Clock, rfc3339
from kernel.errors import Reason, Refused
from kernel.outgoing import Message, Outbox, Posting
from kernel.settings import Scope, Settings
from resources.store import KNOCK_COLUMNS

Select = Callable[..., Awaitable[list[tuple[Any, ...]]]]
Write = Callable[[list[Any]], Awaitable[None]]

_OF = "SELECT alert_id FROM drill_alerts WHERE drill_id = ?"
SELECT_ALERTS = f"SELECT id, rule, level, summary FROM alerts WHERE id IN ({_OF}) ORDER BY started_ns"
SELECT_EVENTS = f"SELECT alert_id, at_ns, event, actor FROM alert_events WHERE alert_id IN ({_OF}) ORDER BY seq"
SELECT_CALLS = f"SELECT {', '.join(CALL_COLUMNS)} FROM answer_calls WHERE alert_id IN ({_OF}) ORDER BY called_ns"
ORDER_COLUMNS = ("whistle_id", "department", "due_sign_ns", "due_arrive_ns", "signed_ns", "arrived_ns", "alert_id")
SELECT_ORDERS = (f"SELECT {', '.join('o.' + c for c in ORDER_COLUMNS[:-1])}, w.alert_id FROM work_orders o "
                 f"JOIN whistles w ON w.id = o.whistle_id WHERE w.alert_id IN ({_OF}) ORDER BY o.opened_ns, o.id")
SELECT_KNOCKS = (f"SELECT {', '.join(KNOCK_COLUMNS)} FROM door_knocks WHERE alert_id IN ({_OF}) "
                 "ORDER BY created_ns, vulnerable_id")
SELECT_REPORT = "SELECT report FROM drills WHERE id = ?"


def drill_object(d: Drill) -> dict[str, Any]:
    """The `drill` object of docs/drills.md."""
    return {"id": d.id, "community": d.community, "scenario": d.scenario, "bureau": d.bureau,
            "started_at": rfc3339(d.started_ns), "ended_at": rfc3339(d.ended_ns), "score": d.score,
            "started_by": d.started_by, "ended_by": d.ended_by, "status": "ended" if d.ended_ns else "running"}


class DrillView:
    """What the API may ask of and do to drills."""

    def __init__(self, settings: Settings, clock: Clock, alerts: AlertsRunner, select: Select, write: Write) -> None:
        self.settings, self.clock, self.alerts, self._select, self._write = settings, clock, alerts, select, write
        self.communities = {c.id for c in settings.communities}
        self.names: dict[str, str] = {r.id: r.name for r in settings.recipients}
        self.names |= {d.id: d.name for d in settings.departments}
        self.names |= {v.id: v.name for c in settings.communities for v in c.vulnerable if v.name}

    async def start(self, community: str, scenario: str, bureau: bool, actor: str) -> dict[str, Any]:
        """A drill of a community begins now."""
        if community not in self.communities:
            raise Refused(Reason.INVALID, f"no community {community!r}")
        drill = Drill(f"d{uuid.uuid4().hex[:15]}", community, scenario, self.clock.now_ns(), bureau=bureau,
                      started_by=actor)
        return drill_object(await self.alerts.start_drill(drill))

    async def drills(self, scope: Scope | None, community: str | None = None) -> list[dict[str, Any]]:
        """Drills in scope, newest first."""
        rows = await self._select(f"{store.SELECT_DRILLS} ORDER BY started_ns DESC")
        out = [Drill.from_row(r) for r in rows]
        return [drill_object(d) for d in out if _sees(scope, d) and community in (None, d.community)]

    async def drill(self, scope: Scope | None, drill_id: str) -> Drill | None:
        """One drill in scope."""
        rows = await self._select(f"{store.SELECT_DRILLS} WHERE id = ?", (drill_id,))
        d = Drill.from_row(rows[0]) if rows else None
        return d if d is not None and _sees(scope, d) else None

    async def end(self, scope: Scope | None, drill_id: str, actor: str) -> dict[str, Any]:
        """End a drill now: its report is computed and kept, and its score stored."""
        d = await self.drill(scope, drill_id)
        if d is None:
            raise Refused(Reason.NOT_FOUND, "no such drill")
        if d.ended_ns is not None:
            raise Refused(Reason.CONFLICT, "the drill has ended")
        await self.alerts.stop_drill(d.id)
        d.ended_ns, d.ended_by = self.clock.now_ns(), actor
        report = compute(await self._records(d), d.ended_ns)
        d.score = report["figures"]["score"]
        report["drill"] = drill_object(d) | report["drill"] | {"ended_at": rfc3339(d.ended_ns)}
        await self._write([(store.END_DRILL, [(d.ended_ns, d.score, actor, orjson.dumps(report).decode(), d.id)])])
        return report

    async def report(self, scope: Scope | None, drill_id: str) -> dict[str, Any] | None:
        """The report of an ended drill as it was kept, or of a running one so far."""
        d = await self.drill(scope, drill_id)
        if d is None:
            return None
        if d.ended_ns is not None:
            kept = await self._select(SELECT_REPORT, (d.id,))
            if kept and kept[0][0]:
                report: dict[str, Any] = orjson.loads(kept[0][0])
                return report
        report = compute(await self._records(d), self.clock.now_ns())
        report["drill"] = drill_object(d) | report["drill"]
        return report

    async def _records(self, d: Drill) -> Records:
        def rows(columns: tuple[str, ...], got: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
            return [dict(zip(columns, r, strict=True)) for r in got]
        args = (d.id,)
        return Records(
            drill={"id": d.id, "community": d.community, "scenario": d.scenario, "started_ns": d.started_ns,
                   "ended_ns": d.ended_ns, "bureau": d.bureau},
            alerts=rows(("id", "rule", "level", "summary"), await self._select(SELECT_ALERTS, args)),
            events=[(str(a), int(b), str(c), e) for a, b, c, e in await self._select(SELECT_EVENTS, args)],
            calls=rows(CALL_COLUMNS, await self._select(SELECT_CALLS, args)),
            orders=rows(ORDER_COLUMNS, await self._select(SELECT_ORDERS, args)),
            knocks=rows(KNOCK_COLUMNS, await self._select(SELECT_KNOCKS, args)),
            names=self.names)


def _sees(scope: Scope | None, d: Drill) -> bool:
    return scope is None or scope.community in (None, d.community)


class DrillOrders:
    """The orders' outbox: a work order of a whistle blown from a drill alert is a drill's too (its
    notifications say `"drill": true`, their summary begins with 【演练】)."""

    def __init__(self, outbox: Outbox, drills: DrillBook, locale: str) -> None:
        self.outbox, self.drills, self.locale = outbox, drills, locale

    def post(self, messages: Sequence[Message]) -> Posting:
        """Mark the drill's messages, then post them all."""
        return self.outbox.post([self._mark(m) for m in messages])

    def _mark(self, m: Message) -> Message:
        drill = self.drills.drill_of(str(m.body.get("alert_id") or ""))
        if drill is None:
            return m
        summary = str(m.body.get("summary", ""))
        if not summary.startswith(tuple(PREFIX.values())):
            summary = PREFIX["en" if self.locale == "en" else "zh-CN"] + summary
        return dataclasses.replace(m, body=m.body | {"summary": summary}, extra=m.extra | {"drill": True})

    async def told(self, subject_ids: Sequence[str], events: Iterable[str]) -> list[tuple[str, str]]:
        """As the outbox says."""
        return await self.outbox.told(subject_ids, events)
