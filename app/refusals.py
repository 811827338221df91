"""Refused actions (kernel.errors.Refused) over HTTP: the status each reason answers, for the API
(app/http/errors.py) and the pages alike."""

from __future__ import annotations

from kernel.errors import Reason, Refused

# What each reason a domain refuses an action for answers over HTTP.
STATUS_OF: dict[Reason, int] = {Reason.NOT_FOUND: 404, Reason.FORBIDDEN: 403, Reason.CONFLICT: 409,
                                Reason.INVALID: 422, Reason.UNAVAILABLE: 503}


def status_of(exc: Refused) -> int:
    """The HTTP status of a refused action."""
    return STATUS_OF[exc.reason]

