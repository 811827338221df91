"""The order book of 吹哨报到: whistles in; work orders, their timers, their trail and notifications out.

Synchronous and clock-free like alerts/manager.py: every call says what time it is and returns the
writes to commit and the messages (kernel.outgoing) to post to delivery's outbox in the same commit.
A restart restores the open whistles from the store, and their deadlines with them.

    blow (grid worker, community) ─► one work order per department ─► order_opened to its contacts (link)
    sign / arrive / done (the department's link) ─► order_signed … to the whistle-blower
    a step's deadline passes ─► order_overdue (督办) to the supervisors, and to the department's contacts
    confirm + rating 1–5 (the whistle-blower) ─► order_confirmed to the department; all confirmed: closed
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kernel.clock import NS
from kernel.errors import Reason, Refused
from kernel.orders import STEP_EVENT, STEP_FROM, STEP_TO, STEPS, Grade, OrderEvent, OrderStatus, Step
from kernel.outgoing import Message, Subject
from kernel.settings import Department
from kernel.writes import Write
from orders.model import WHISTLE_CLOSED, Whistle, WorkOrder, order_object
from orders.store import INSERT_ORDER_EVENT, UPSERT_ORDER, UPSERT_WHISTLE

MAX_WHAT, MAX_PLACE, MAX_NOTE = 500, 200, 2000


@dataclass(slots=True)
class OrderChanges:
    """What one change writes, and the messages to post to delivery's outbox in the same commit."""

    writes: list[Write] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)

    def add(self, statement: str, row: tuple[Any, ...]) -> None:
        """A row for a statement, grouped with the previous one of the same statement."""
        if self.writes and self.writes[-1][0] == statement:
            self.writes[-1][1].append(row)
        else:
            self.writes.append((statement, [row]))


# A department's link: (signed token, absolute link or None) for a work order and one of its contacts.
LinkMaker = Callable[[str, str], tuple[str, str | None]]
# The whistle-blower's link to the whistle's page, or None.
WhistleLinkMaker = Callable[[str], str | None]

_STEP_WORDS = {"zh-CN": {Step.SIGN: "签收", Step.ARRIVE: "到场", Step.DONE: "办结"},
               "en": {Step.SIGN: "sign", Step.ARRIVE: "arrive", Step.DONE: "finish"}}
_GRADE_WORDS = {"zh-CN": {Grade.URGENT: "紧急", Grade.GENERAL: "一般"}, "en": {Grade.URGENT: "urgent",
                                                                             Grade.GENERAL: "general"}}
_STATUS_WORDS = {"zh-CN": {OrderStatus.OPEN: "待签收", OrderStatus.SIGNED: "已签收", OrderStatus.ARRIVED: "已到场",
                           OrderStatus.DONE: "已办结", OrderStatus.CONFIRMED: "已确认"},
                 "en": {OrderStatus.OPEN: "waiting to be signed", OrderStatus.SIGNED: "signed",
                        OrderStatus.ARRIVED: "on site", OrderStatus.DONE: "done", OrderStatus.CONFIRMED: "confirmed"}}


def summarise(w: Whistle, o: WorkOrder, department: str, event: str, locale: str, step: Step | None = None) -> str:
    """What happened to a work order, in one line people read (zh-CN by default)."""
    lang = "en" if locale == "en" else "zh-CN"
    grade = _GRADE_WORDS[lang][w.grade]
    if event == OrderEvent.OVERDUE and step is not None:
        if lang == "en":
            return f"Overdue: {department} did not {_STEP_WORDS[lang][step]} in time ({grade}: {w.what} at {w.place})"
        return f"督办：{department} 未按时{_STEP_WORDS[lang][step]}（{grade}：{w.what}，{w.place}）"
    if event == OrderEvent.CONFIRMED:
        if lang == "en":
            return f"Confirmed, rated {o.rating}/5: {department} ({grade}: {w.what} at {w.place})"
        return f"已确认办结，评分 {o.rating}/5：{department}（{grade}：{w.what}，{w.place}）"
    if event == OrderEvent.OPENED:
        if lang == "en":
            return f"Whistle ({grade}) for {department}: {w.what} at {w.place}"
        return f"吹哨报到（{grade}）{department}：{w.what}，{w.place}"
    return (f"{department} {_STATUS_WORDS[lang][o.status]} ({grade}: {w.what} at {w.place})" if lang == "en"
            else f"{department} {_STATUS_WORDS[lang][o.status]}（{grade}：{w.what}，{w.place}）")


class OrderBook:
    """Open whistles in memory, their work orders' deadlines, and what each change writes and sends."""

    def __init__(self, departments: Iterable[Department], *, supervisors: Iterable[str] = (),
                 recipients: Iterable[str] = (), locale: str = "zh-CN") -> None:
        self.departments = {d.id: d for d in departments}
        self.supervisors = list(supervisors)
        self.recipients = set(recipients)
        self.locale = locale
        self.whistles: dict[str, Whistle] = {}  # open and done ones; closed ones leave memory
        self._orders: dict[str, Whistle] = {}  # order id -> its whistle
        self._heap: list[tuple[int, str]] = []
        self.link_for: LinkMaker | None = None
        self.whistle_link: WhistleLinkMaker | None = None

    # ---- inputs ----------------------------------------------------------------------------------

    def blow(self, *, grade: Grade, what: str, place: str, community: str, grid: str, alert_id: str | None,
             blower: str, blower_name: str, departments: list[str], now: int) -> tuple[Whistle, OrderChanges]:
        """A whistle: one work order per department summoned, each told at once."""
        what, place = what.strip(), place.strip()
        if not what or len(what) > MAX_WHAT:
            raise Refused(Reason.INVALID, f"say what the problem is (1 to {MAX_WHAT} characters)")
        if not place or len(place) > MAX_PLACE:
            raise Refused(Reason.INVALID, f"say where it is (1 to {MAX_PLACE} characters)")
        if not departments:
            raise Refused(Reason.INVALID, "summon at least one department")
        if len(set(departments)) != len(departments):
            raise Refused(Reason.INVALID, "a department is summoned twice")
        unknown = [d for d in departments if d not in self.departments]
        if unknown:
            known = ", ".join(sorted(self.departments)) or "none: the site file lists no departments"
            raise Refused(Reason.INVALID, f"no department {unknown[0]!r} (known: {known})")
        w = Whistle(f"w{uuid.uuid4().hex[:15]}", grade, what, place, community, grid, alert_id, blower, blower_name,
                    now, now)
        changes = OrderChanges()
        for dept in departments:
            targets = self.departments[dept].targets_for(grade.value)
            o = WorkOrder(f"{w.id}.{dept}", w.id, dept, OrderStatus.OPEN, now,
                          {Step.SIGN: now + int(targets.sign_s * NS), Step.ARRIVE: now + int(targets.arrive_s * NS),
                           Step.DONE: now + int(targets.done_s * NS)}, updated_ns=now)
            w.orders[dept] = o
            self._orders[o.id] = w
            self._schedule(o)
        self.whistles[w.id] = w
        changes.add(UPSERT_WHISTLE, w.row())
        for o in w.orders.values():
            changes.add(UPSERT_ORDER, o.row())
        for o in w.orders.values():
            changes.add(INSERT_ORDER_EVENT, (o.id, w.id, now, OrderEvent.OPENED.value, blower, None))
        for o in w.orders.values():
            self._tell(w, o, OrderEvent.OPENED, self.departments[o.department].contacts, now, changes, contact=True)
        return w, changes

    def step(self, order_id: str, step: Step, actor: str, note: str | None, now: int
             ) -> tuple[Whistle, WorkOrder, OrderChanges]:
        """A department signs, arrives or finishes; the whistle-blower is told."""
        w, o = self._find(order_id)
        if o.status is STEP_TO[step] or (o.taken_ns(step) is not None):
            raise Refused(Reason.CONFLICT, f"already {_STATUS_WORDS['en'][STEP_TO[step]]}")
        if o.status is not STEP_FROM[step]:
            before = STEPS[STEPS.index(step) - 1]
            raise Refused(Reason.CONFLICT, f"the work order is {_STATUS_WORDS['en'][o.status]}: {before.value} first")
        note = _note(note)
        o.status = STEP_TO[step]
        if step is Step.SIGN:
            o.signed_ns = now
        elif step is Step.ARRIVE:
            o.arrived_ns = now
        else:
            o.done_ns = now
        o.updated_ns = w.updated_ns = now
        w.settle_status()
        changes = OrderChanges()
        changes.add(UPSERT_WHISTLE, w.row())
        changes.add(UPSERT_ORDER, o.row())
        changes.add(INSERT_ORDER_EVENT, (o.id, w.id, now, STEP_EVENT[step].value, actor, note))
        self._tell(w, o, STEP_EVENT[step], [w.blower], now, changes, note=note)
        return w, o, changes

    def confirm(self, order_id: str, actor: str, rating: int, note: str | None, now: int
                ) -> tuple[Whistle, WorkOrder, OrderChanges]:
        """The whistle-blower confirms a finished work order and rates the department (1–5)."""
        w, o = self._find(order_id)
        if actor != w.blower:
            raise Refused(Reason.FORBIDDEN, "only the one who blew the whistle confirms and rates it")
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            raise Refused(Reason.INVALID, "a rating is a whole number from 1 to 5")
        if o.status is OrderStatus.CONFIRMED:
            raise Refused(Reason.CONFLICT, "already confirmed")
        if o.status is not OrderStatus.DONE:
            raise Refused(Reason.CONFLICT,
                          f"the work order is {_STATUS_WORDS['en'][o.status]}: it can be confirmed once done")
        note = _note(note)
        o.status, o.confirmed_ns, o.rating, o.updated_ns = OrderStatus.CONFIRMED, now, rating, now
        w.updated_ns = now
        w.settle_status()
        changes = OrderChanges()
        changes.add(UPSERT_WHISTLE, w.row())
        changes.add(UPSERT_ORDER, o.row())
        changes.add(INSERT_ORDER_EVENT, (o.id, w.id, now, OrderEvent.CONFIRMED.value, actor,
                                         f"{rating}/5: {note}" if note else f"{rating}/5"))
        self._tell(w, o, OrderEvent.CONFIRMED, self.departments[o.department].contacts if o.department in
                   self.departments else [], now, changes, note=note, contact=True)
        if w.status == WHISTLE_CLOSED:
            self._forget(w)
        return w, o, changes

    def on_tick(self, now: int) -> OrderChanges:
        """Deadlines passed at now: each overdue step is reported once (督办)."""
        changes = OrderChanges()
        while self._heap and self._heap[0][0] <= now:
            _due, order_id = heapq.heappop(self._heap)
            w = self._orders.get(order_id)
            if w is None:
                continue
            o = next(x for x in w.orders.values() if x.id == order_id)
            late = [s for s in o.late_now(now) if s not in o.overdue]
            for step in late:
                o.overdue.add(step)
                o.updated_ns = now
                changes.add(UPSERT_ORDER, o.row())
                changes.add(INSERT_ORDER_EVENT, (o.id, w.id, now, OrderEvent.OVERDUE.value, None, step.value))
                supervisors = [r for r in self.supervisors if r != w.blower]
                self._tell(w, o, OrderEvent.OVERDUE, supervisors, now, changes, step=step)
                contacts = self.departments[o.department].contacts if o.department in self.departments else []
                self._tell(w, o, OrderEvent.OVERDUE, contacts, now, changes, step=step, contact=True)
            self._schedule(o)
        return changes

    def next_deadline(self) -> int | None:
        """Service time of the next step deadline not yet reported."""
        while self._heap:
            due, order_id = self._heap[0]
            w = self._orders.get(order_id)
            o = w.orders.get(order_id.rsplit(".", 1)[-1]) if w is not None else None
            if o is not None and o.next_due() == due:
                return due
            heapq.heappop(self._heap)  # stale: the step was taken or already reported
            if o is not None:
                self._schedule(o)
        return None

    def restore(self, whistles: Iterable[Whistle], orders: Iterable[WorkOrder]) -> None:
        """Whistles not yet closed and their orders, as the store kept them; their deadlines with them."""
        for w in whistles:
            self.whistles[w.id] = w
        for o in orders:
            found = self.whistles.get(o.whistle_id)
            if found is None:
                continue
            found.orders[o.department] = o
            self._orders[o.id] = found
            if o.status not in (OrderStatus.DONE, OrderStatus.CONFIRMED):
                self._schedule(o)

    def order(self, order_id: str) -> tuple[Whistle, WorkOrder] | None:
        """An open whistle's work order, or None."""
        try:
            return self._find(order_id)
        except Refused:
            return None

    def department_name(self, department: str) -> str:
        """A department's name (its id if the site file no longer lists it)."""
        d = self.departments.get(department)
        return d.name if d is not None else department

    def order_object(self, w: Whistle, o: WorkOrder) -> dict[str, Any]:
        """The `work_order` object of docs/api.md, with its summary in the service's language."""
        name = self.department_name(o.department)
        event = {OrderStatus.OPEN: OrderEvent.OPENED, OrderStatus.CONFIRMED: OrderEvent.CONFIRMED}.get(o.status, "")
        return order_object(w, o, name, summarise(w, o, name, event, self.locale))

    # ---- inside --------------------------------------------------------------------------------

    def _find(self, order_id: str) -> tuple[Whistle, WorkOrder]:
        w = self._orders.get(order_id)
        if w is None:
            raise Refused(Reason.NOT_FOUND, "no such open work order")
        o = w.orders[order_id.rsplit(".", 1)[-1]]
        return w, o

    def _schedule(self, o: WorkOrder) -> None:
        due = o.next_due()
        if due is not None and o.status not in (OrderStatus.DONE, OrderStatus.CONFIRMED):
            heapq.heappush(self._heap, (due, o.id))

    def _forget(self, w: Whistle) -> None:
        self.whistles.pop(w.id, None)
        for o in w.orders.values():
            self._orders.pop(o.id, None)

    def _tell(self, w: Whistle, o: WorkOrder, event: OrderEvent, recipients: Iterable[str], now: int,
              changes: OrderChanges, *, note: str | None = None, step: Step | None = None,
              contact: bool = False) -> None:
        name = self.department_name(o.department)
        body = order_object(w, o, name, summarise(w, o, name, event, self.locale, step))
        for r in dict.fromkeys(recipients):
            if r not in self.recipients:
                continue  # a role token blew the whistle: nobody to send to (the page shows it all)
            # The notification object's keys after `recipient`, in this order (docs/api.md).
            extra: dict[str, Any] = {}
            if step is not None:
                extra["step"] = step.value
            if note:
                extra["note"] = note
            if contact and self.link_for is not None:
                token, link = self.link_for(o.id, r)
                extra["link_token"] = token
                if link is not None:
                    extra["link"] = link
            elif not contact and self.whistle_link is not None:
                link = self.whistle_link(w.id)
                if link is not None:
                    extra["link"] = link
            changes.messages.append(Message(uuid.uuid4().hex, Subject.WORK_ORDER, o.id, r, event, body, now,
                                            extra))


def _note(note: str | None) -> str | None:
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise Refused(Reason.INVALID, f"a note has at most {MAX_NOTE} characters")
    return note or None
