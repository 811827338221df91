"""The vocabulary of 吹哨报到 (docs/response.md): a whistle summons departments, each gets a work order."""

from __future__ import annotations

from enum import StrEnum


class Grade(StrEnum):
    """How pressing a whistle is."""

    GENERAL = "general"  # 一般
    URGENT = "urgent"  # 紧急


class Step(StrEnum):
    """A step a department must take within its target: sign for it, arrive, finish."""

    SIGN = "sign"  # 签收
    ARRIVE = "arrive"  # 到场
    DONE = "done"  # 办结


STEPS: tuple[Step, ...] = (Step.SIGN, Step.ARRIVE, Step.DONE)


class OrderStatus(StrEnum):
    """Where a work order is: each step moves it on; the whistle-blower's confirmation closes it."""

    OPEN = "open"
    SIGNED = "signed"
    ARRIVED = "arrived"
    DONE = "done"
    CONFIRMED = "confirmed"


# The status a step leads to, and the status it must start from.
STEP_TO: dict[Step, OrderStatus] = {Step.SIGN: OrderStatus.SIGNED, Step.ARRIVE: OrderStatus.ARRIVED,
                                    Step.DONE: OrderStatus.DONE}
STEP_FROM: dict[Step, OrderStatus] = {Step.SIGN: OrderStatus.OPEN, Step.ARRIVE: OrderStatus.SIGNED,
                                      Step.DONE: OrderStatus.ARRIVED}


class OrderEvent(StrEnum):
    """Why a work-order notification is sent (docs/api.md, work-order notifications)."""

    OPENED = "order_opened"  # to the department's contacts, with their link
    SIGNED = "order_signed"  # to the whistle-blower
    ARRIVED = "order_arrived"
    DONE = "order_done"
    CONFIRMED = "order_confirmed"  # to the department's contacts, with the rating
    OVERDUE = "order_overdue"  # 督办: to the street office (and a reminder to the department's contacts)


STEP_EVENT: dict[Step, OrderEvent] = {Step.SIGN: OrderEvent.SIGNED, Step.ARRIVE: OrderEvent.ARRIVED,
                                      Step.DONE: OrderEvent.DONE}
