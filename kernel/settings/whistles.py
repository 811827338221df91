"""吹哨报到: departments, their step targets and the work orders' settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from kernel.ids import Identifier
from kernel.settings.base import _Model


class StepTargets(_Model):
    """Seconds from the whistle by which a department must have signed, arrived and finished."""

    sign_s: float = Field(gt=0)
    arrive_s: float = Field(gt=0)
    done_s: float = Field(gt=0)

    @model_validator(mode="after")
    def _in_order(self) -> StepTargets:
        if not self.sign_s <= self.arrive_s <= self.done_s:
            raise ValueError("targets must not shrink from step to step: sign_s <= arrive_s <= done_s")
        return self


# The defaults of docs/response.md: urgent on site within 30 minutes (Beijing), sign within 1 hour for a
# general whistle (Nanjing 鼓楼); the rest are this project's assumptions, each overridable per department.
DEFAULT_TARGETS: dict[str, StepTargets] = {
    "urgent": StepTargets(sign_s=600, arrive_s=1800, done_s=86400),
    "general": StepTargets(sign_s=3600, arrive_s=86400, done_s=7 * 86400),
}

DepartmentKind = Literal["fire", "police", "urban", "property", "power", "water", "gas", "other"]


class Department(_Model):
    """A department a whistle can summon (消防救援站, 派出所, 城管, 物业, 供电, 供水, 燃气), its contacts (recipient
    ids, told on their own channels) and its response targets per grade."""

    id: Identifier
    name: str = Field(min_length=1, max_length=100)
    kind: DepartmentKind = "other"
    contacts: list[Identifier] = Field(min_length=1)
    targets: dict[Literal["general", "urgent"], StepTargets] = {}

    def targets_for(self, grade: str) -> StepTargets:
        """The targets of a grade: the department's own, else the defaults."""
        return next((v for k, v in self.targets.items() if k == grade), DEFAULT_TARGETS[grade])


class WhistleSettings(_Model):
    """吹哨报到: who may blow a whistle, who is told of overdue work orders (督办), the departments' links."""

    blowers: list[Literal["grid_worker", "community", "street_office"]] = ["grid_worker", "community",
                                                                           "street_office"]
    # Told when a work order is overdue at any step; none listed: every street_office recipient.
    supervisors: list[Identifier] = []
    # How long a department's link to its work order stays valid (it must outlive the order).
    link_ttl_s: float = Field(default=30 * 86400, gt=0)
    # Work-order stats (work_orders) for the dashboards every this many seconds, and soon after a change.
    stats_interval_s: float = Field(default=60.0, ge=1, le=3600)
    # Orders the stats cover: those opened within this window.
    stats_window_s: float = Field(default=30 * 86400, gt=0)
