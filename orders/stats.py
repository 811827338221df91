"""Work-order figures per department and per community: open, overdue, closed, response times, ratings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kernel.orders import OrderStatus
from orders.model import Whistle, WorkOrder

NS = 1_000_000_000


@dataclass(slots=True)
class Tally:
    """Counts and sums for one department or one community."""

    orders: int = 0
    open: int = 0  # not yet done
    overdue: int = 0  # not yet done and past a step's deadline now
    done: int = 0  # done, waiting for the whistle-blower's confirmation
    closed: int = 0  # confirmed
    late: int = 0  # past a deadline at some step, whatever came after
    sign_s: list[float] = field(default_factory=list)
    arrive_s: list[float] = field(default_factory=list)
    done_s: list[float] = field(default_factory=list)
    ratings: list[int] = field(default_factory=list)

    def add(self, o: WorkOrder, now: int) -> None:
        """Count one work order."""
        self.orders += 1
        if o.status in (OrderStatus.DONE, OrderStatus.CONFIRMED):
            self.closed += o.status is OrderStatus.CONFIRMED
            self.done += o.status is OrderStatus.DONE
        else:
            self.open += 1
            self.overdue += bool(o.late_now(now))
        self.late += bool(o.overdue)
        for taken, into in ((o.signed_ns, self.sign_s), (o.arrived_ns, self.arrive_s), (o.done_ns, self.done_s)):
            if taken is not None:
                into.append((taken - o.opened_ns) / NS)
        if o.rating is not None:
            self.ratings.append(o.rating)

    def figures(self) -> dict[str, Any]:
        """The tally as the API answers it (averages in seconds; None where nothing was measured)."""
        return {"orders": self.orders, "open": self.open, "overdue": self.overdue, "done": self.done,
                "closed": self.closed, "late": self.late, "sign_s_avg": _mean(self.sign_s),
                "arrive_s_avg": _mean(self.arrive_s), "done_s_avg": _mean(self.done_s),
                "rating_avg": _mean([float(r) for r in self.ratings]), "ratings": len(self.ratings)}


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def order_stats(whistles: Iterable[Whistle], now: int, department_names: dict[str, str],
                community_names: dict[str, str]) -> dict[str, Any]:
    """Totals, and figures per department and per community, of the whistles' work orders."""
    total, by_dept = Tally(), {d: Tally() for d in department_names}
    by_community: dict[str, Tally] = {}
    whistles_n = 0
    for w in whistles:
        whistles_n += 1
        community = by_community.setdefault(w.community, Tally())
        for o in w.orders.values():
            total.add(o, now)
            by_dept.setdefault(o.department, Tally()).add(o, now)
            community.add(o, now)
    return {"whistles": whistles_n, "total": total.figures(),
            "departments": [{"id": d, "name": department_names.get(d, d)} | t.figures()
                            for d, t in by_dept.items()],
            "communities": [{"id": c, "name": community_names.get(c, c)} | t.figures()
                            for c, t in sorted(by_community.items())]}
