"""A whistle and its work orders, as the order book keeps them and the store holds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kernel.clock import rfc3339
from kernel.orders import STEPS, Grade, OrderStatus, Step
from orders.store import ORDER_COLUMNS, WHISTLE_COLUMNS, row_dict

# A whistle is open while a department is still at work, done when every one has finished (waiting
# for the whistle-blower's confirmation), closed once every work order is confirmed.
WHISTLE_OPEN, WHISTLE_DONE, WHISTLE_CLOSED = "open", "done", "closed"


@dataclass(slots=True)
class WorkOrder:
    """One department's order from one whistle, with a deadline for each step."""

    id: str
    whistle_id: str
    department: str
    status: OrderStatus
    opened_ns: int
    due: dict[Step, int]
    signed_ns: int | None = None
    arrived_ns: int | None = None
    done_ns: int | None = None
    confirmed_ns: int | None = None
    rating: int | None = None
    overdue: set[Step] = field(default_factory=set)  # steps already reported overdue (督办)
    updated_ns: int = 0

    def taken_ns(self, step: Step) -> int | None:
        """When the step was taken, or None."""
        return {Step.SIGN: self.signed_ns, Step.ARRIVE: self.arrived_ns, Step.DONE: self.done_ns}[step]

    def pending_steps(self) -> list[Step]:
        """Steps not taken yet."""
        return [s for s in STEPS if self.taken_ns(s) is None]

    def late_now(self, now: int) -> list[Step]:
        """Steps not taken whose deadline has passed."""
        return [s for s in self.pending_steps() if self.due[s] <= now]

    def next_due(self) -> int | None:
        """The next deadline not yet reported overdue."""
        return min((self.due[s] for s in self.pending_steps() if s not in self.overdue), default=None)

    def row(self) -> tuple[Any, ...]:
        """The row of work_orders."""
        return (self.id, self.whistle_id, self.department, self.status.value, self.opened_ns, self.due[Step.SIGN],
                self.due[Step.ARRIVE], self.due[Step.DONE], self.signed_ns, self.arrived_ns, self.done_ns,
                self.confirmed_ns, self.rating, ",".join(s.value for s in STEPS if s in self.overdue),
                self.updated_ns)

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> WorkOrder:
        """A work order from a row of work_orders."""
        v = row_dict(ORDER_COLUMNS, row)
        return cls(v["id"], v["whistle_id"], v["department"], OrderStatus(v["status"]), v["opened_ns"],
                   {Step.SIGN: v["due_sign_ns"], Step.ARRIVE: v["due_arrive_ns"], Step.DONE: v["due_done_ns"]},
                   v["signed_ns"], v["arrived_ns"], v["done_ns"], v["confirmed_ns"], v["rating"],
                   {Step(s) for s in v["overdue"].split(",") if s}, v["updated_ns"])


@dataclass(slots=True)
class Whistle:
    """A whistle (吹哨): what, where, how pressing, who blew it, and the departments' work orders."""

    id: str
    grade: Grade
    what: str
    place: str
    community: str
    grid: str
    alert_id: str | None
    blower: str  # the recipient id (or role) of whoever blew it: only they confirm and rate
    blower_name: str
    created_ns: int
    updated_ns: int
    status: str = WHISTLE_OPEN
    orders: dict[str, WorkOrder] = field(default_factory=dict)  # by department id

    def row(self) -> tuple[Any, ...]:
        """The row of whistles."""
        return (self.id, self.grade.value, self.what, self.place, self.community, self.grid, self.alert_id,
                self.blower, self.blower_name, self.created_ns, self.updated_ns, self.status)

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Whistle:
        """A whistle (without its orders) from a row of whistles."""
        v = row_dict(WHISTLE_COLUMNS, row)
        v["grade"] = Grade(v["grade"])
        return cls(**v)

    def settle_status(self) -> str:
        """The whistle's status from its orders'."""
        statuses = {o.status for o in self.orders.values()}
        if statuses == {OrderStatus.CONFIRMED}:
            self.status = WHISTLE_CLOSED
        elif statuses <= {OrderStatus.DONE, OrderStatus.CONFIRMED}:
            self.status = WHISTLE_DONE
        else:
            self.status = WHISTLE_OPEN
        return self.status


def order_object(w: Whistle, o: WorkOrder, department_name: str, summary: str) -> dict[str, Any]:
    """The `work_order` object of docs/api.md (work-order notifications and the API)."""
    return {"id": o.id, "whistle_id": w.id, "department": o.department, "department_name": department_name,
            "grade": w.grade.value, "what": w.what, "where": w.place, "community": w.community, "grid": w.grid,
            "alert_id": w.alert_id, "blower": w.blower, "status": o.status.value,
            "opened_at": rfc3339(o.opened_ns), "signed_at": rfc3339(o.signed_ns),
            "arrived_at": rfc3339(o.arrived_ns), "done_at": rfc3339(o.done_ns),
            "confirmed_at": rfc3339(o.confirmed_ns), "rating": o.rating,
            "due": {s.value: rfc3339(o.due[s]) for s in STEPS},
            "overdue": [s.value for s in STEPS if s in o.overdue],
            "updated_at": rfc3339(o.updated_ns), "summary": summary}
