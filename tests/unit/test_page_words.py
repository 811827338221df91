"""The pages say everything in words in both languages: every level, status, notification event and
channel type; a refused action retried with its idempotency key is refused again, for the same reason."""

from __future__ import annotations

import asyncio

import pytest

from app.idempotency import ActionLedger
from app.refusals import STATUS_OF, status_of
from app.words import words
from kernel.alerting import AlertStatus, Event, Level
from kernel.channels import CHANNEL_CONFIGS
from kernel.errors import Reason, Refused


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_every_level_status_event_and_channel_has_words(lang: str) -> None:
    t = words(lang)
    keys = ([f"level_{lv.value}" for lv in Level] + [f"status_{s.value}" for s in AlertStatus]
            + [f"ev_{e.value}" for e in Event] + [f"ch_{c}" for c in CHANNEL_CONFIGS])
    missing = [k for k in keys if not t.get(k)]
    assert not missing
    assert t["ev_call"] != "call"


def test_every_reason_has_its_own_status() -> None:
    statuses = [status_of(Refused(r, "x")) for r in Reason]
    assert len(set(statuses)) == len(Reason) and set(statuses) == set(STATUS_OF.values())
    assert status_of(Refused(Reason.NOT_FOUND, "x")) == 404 and status_of(Refused(Reason.CONFLICT, "x")) == 409


def test_a_refused_action_retried_with_its_key_is_refused_again() -> None:
    ledger = ActionLedger()
    runs = 0

    async def action() -> dict[str, str]:
        nonlocal runs
        runs += 1
        raise Refused(Reason.CONFLICT, "already acknowledged")

    async def twice() -> list[Refused]:
        out = []
        for _ in range(2):
            with pytest.raises(Refused) as caught:
                await ledger.run("k", action)
            out.append(caught.value)
        return out

    first, again = asyncio.run(twice())
    assert runs == 1
    assert (first.reason, str(first)) == (again.reason, str(again)) == (Reason.CONFLICT, "already acknowledged")
