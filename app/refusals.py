"""Refused actions (kernel.errors.Refused) and HTTP statuses, both ways: the status each reason answers
over HTTP (for the API and the pages alike), and the alerts' and orders' own errors, which still carry
an HTTP status, said as Refused."""

from __future__ import annotations

from kernel.errors import Reason, Refused

# What each reason a domain refuses an action for answers over HTTP.
STATUS_OF: dict[Reason, int] = {Reason.NOT_FOUND: 404, Reason.FORBIDDEN: 403, Reason.CONFLICT: 409,
                                Reason.INVALID: 422, Reason.UNAVAILABLE: 503}
REASONS: dict[int, Reason] = {status: reason for reason, status in STATUS_OF.items()}


def status_of(exc: Refused) -> int:
    """The HTTP status of a refused action."""
    return STATUS_OF[exc.reason]


def refused(status: int, message: str) -> Refused:
    """The refusal an error with an HTTP status stands for (a status without its own reason: a conflict)."""
    return Refused(REASONS.get(status, Reason.CONFLICT), message)
