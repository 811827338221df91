"""Asking the partitions' live views (app/cluster/view_serve.py): the ones this instance holds directly,
the others over NATS; one partition, or several at once with what did not answer reported."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from nats.errors import NoRespondersError

from app.cluster import wire
from app.cluster.view_serve import PartitionServer
from app.cluster.wire import ACTIONS, PartitionGone
from kernel.errors import Reason, Refused

QUERY_TIMEOUT_S = 2.0
ACTION_TIMEOUT_S = 15.0  # an action waits for its commit and the partition's checkpoint
GAPS_KEPT = 50


class Calls:
    """Requests to the partitions' views, by partition."""

    def __init__(self, nc: Any, name: str, partitions: int, *, query_timeout_s: float = QUERY_TIMEOUT_S,
                 action_timeout_s: float = ACTION_TIMEOUT_S) -> None:
        self.nc, self.name, self.partitions = nc, name, partitions
        self.query_timeout_s, self.action_timeout_s = query_timeout_s, action_timeout_s
        self.local: dict[int, PartitionServer] = {}  # partitions held here: asked without NATS
        self.last_missing: list[int] = []  # partitions the last query over several did not hear from
        self.gaps: deque[dict[str, Any]] = deque(maxlen=GAPS_KEPT)  # recent ones, for /health
        self.unanswered = 0

    def all(self) -> list[int]:
        """Every partition."""
        return list(range(self.partitions))

    async def call(self, partition: int, method: str, **kwargs: Any) -> Any:
        """One partition's answer; raise its Refused (NotHere), or PartitionGone when it does not answer."""
        server = self.local.get(partition)
        action = method in ACTIONS
        timeout = self.action_timeout_s if action else self.query_timeout_s
        if server is not None and server.serving:
            if action:  # (never cut short: the answer says whether it was done)
                return await server.invoke(method, kwargs)
            try:
                return await asyncio.wait_for(server.invoke(method, kwargs), timeout)
            except TimeoutError:
                raise PartitionGone(partition, f"no answer within {timeout:g} s") from None
        try:
            msg = await self.nc.request(wire.subject(self.name, partition), wire.encode_request(method, kwargs),
                                        timeout=timeout)
        except NoRespondersError:
            raise PartitionGone(partition, "no instance holds it now") from None
        except TimeoutError:
            raise PartitionGone(partition, f"no answer within {timeout:g} s") from None
        return wire.decode_answer(partition, method, msg.data)

    async def gather(self, partitions: Iterable[int], method: str, per: Callable[[int], dict[str, Any]] | None = None,
                     **kwargs: Any) -> dict[int, Any]:
        """The answers of several partitions at once (those that answered); the others are in
        `last_missing`. A refusal is raised. `per` adds each partition's own arguments."""
        asked = sorted(set(partitions))
        answers = await asyncio.gather(*(self.call(p, method, **kwargs, **(per(p) if per else {})) for p in asked),
                                       return_exceptions=True)
        out: dict[int, Any] = {}
        missing: list[int] = []
        refused: list[Refused] = []
        for p, answer in zip(asked, answers, strict=True):
            if isinstance(answer, PartitionGone):
                missing.append(p)
            elif isinstance(answer, Refused):
                refused.append(answer)
            elif isinstance(answer, BaseException):
                raise answer
            else:
                out[p] = answer
        self.note_missing(method, missing, answers)
        if refused:
            raise refused[0]
        return out

    def note_missing(self, method: str, missing: list[int], answers: list[Any]) -> None:
        """Remember which partitions a query went without."""
        self.last_missing = missing
        if missing:
            self.unanswered += len(missing)
            why = [str(a) for a in answers if isinstance(a, PartitionGone)]
            self.gaps.appendleft({"at_ms": int(time.time() * 1000), "method": method, "partitions": missing,
                                  "why": why[:5]})

    async def act_somewhere(self, partitions: Iterable[int], method: str, **kwargs: Any) -> Any:
        """An action that one partition has what it names (an alert, a whistle, a silence): asked of each at
        once, the one that has it acts, the others answer NotHere. Raise that one's refusal, NotHere's
        refusal when none has it, or UNAVAILABLE when it may be in one that did not answer."""
        asked = sorted(set(partitions))
        answers = await asyncio.gather(*(self.call(p, method, **kwargs) for p in asked), return_exceptions=True)
        missing = [p for p, a in zip(asked, answers, strict=True) if isinstance(a, PartitionGone)]
        self.note_missing(method, missing, answers)
        for a in answers:
            if not isinstance(a, BaseException):
                return a
        for a in answers:
            if isinstance(a, Refused) and not isinstance(a, wire.NotHere):
                raise a
        for a in answers:
            if not isinstance(a, Refused | PartitionGone):
                raise a
        if missing:
            raise Refused(Reason.UNAVAILABLE, f"not found in the partitions that answered; partitions {missing} "
                          "did not answer (no instance holds them now): try again in a few seconds")
        first = next(a for a in answers if isinstance(a, wire.NotHere))
        raise Refused(first.reason, str(first))

    async def act_in(self, partition: int, method: str, **kwargs: Any) -> Any:
        """An action in the one partition it belongs to (UNAVAILABLE when nobody holds it now)."""
        try:
            return await self.call(partition, method, **kwargs)
        except PartitionGone as exc:
            self.note_missing(method, [partition], [exc])
            raise Refused(Reason.UNAVAILABLE, f"{exc}: try again in a few seconds") from None
        except wire.NotHere as exc:
            raise Refused(exc.reason, str(exc)) from None

    async def act_everywhere(self, partitions: Iterable[int], method: str, **kwargs: Any) -> list[Any]:
        """An action every partition takes (a silence of no one community): what each that took it answered.
        Raise the first refusal when none took it, UNAVAILABLE when none answered."""
        asked = sorted(set(partitions))
        answers = await asyncio.gather(*(self.call(p, method, **kwargs) for p in asked), return_exceptions=True)
        missing = [p for p, a in zip(asked, answers, strict=True) if isinstance(a, PartitionGone)]
        self.note_missing(method, missing, answers)
        done = [a for a in answers if not isinstance(a, BaseException)]
        if done:
            return done
        for a in answers:
            if isinstance(a, Refused):
                raise Refused(a.reason, str(a))
        for a in answers:
            if not isinstance(a, PartitionGone):
                raise a
        raise Refused(Reason.UNAVAILABLE, f"partitions {missing} did not answer: try again in a few seconds")
