"""The alert sender thread: channel sends run on its loop, their results and errors come back."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from notify.sender import SenderThread


async def where() -> str:
    await asyncio.sleep(0)
    return threading.current_thread().name


async def fails() -> None:
    await asyncio.sleep(0)
    raise ValueError("refused")


def test_a_send_runs_on_the_sender_thread_and_its_result_comes_back() -> None:
    async def main() -> None:
        sender = SenderThread()
        assert await sender.run(where()) == "alert-sender"
        with pytest.raises(ValueError, match="refused"):
            await sender.run(fails())
        await sender.stop()

    asyncio.run(main())


def test_cancelling_the_caller_cancels_the_send() -> None:
    started, cancelled = threading.Event(), threading.Event()

    async def slow() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def main() -> None:
        sender = SenderThread()
        task = asyncio.create_task(sender.run(slow()))
        await asyncio.to_thread(started.wait, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.to_thread(cancelled.wait, 5)
        await sender.stop()

    asyncio.run(main())


def test_stop_runs_the_last_coroutines_there_and_then_refuses_sends() -> None:
    async def main() -> None:
        sender = SenderThread()
        seen: list[str] = []

        async def close() -> None:
            seen.append(threading.current_thread().name)

        await sender.stop(close())
        assert seen == ["alert-sender"]
        assert not sender.alive
        with pytest.raises(RuntimeError, match="stopped"):
            await sender.run(where())

    asyncio.run(main())


def test_a_committed_notification_is_sent_before_the_loop_runs_again_and_at_most_concurrency_at_once() -> None:
    # Under load each turn of the service's loop waits behind a piece of ingest: the send must not.
    from kernel.alerting import Event
    from kernel.clock import SystemClock
    from kernel.metrics import Registry
    from notify.channels import Outcome
    from notify.deliver import Deliverer
    from notify.notification import Notification

    started: list[str] = []
    go, first = threading.Event(), threading.Event()

    class Held:
        """A channel whose sends wait on the sender thread until the test lets them go."""

        type = "webhook"

        async def send(self, n: Notification) -> Outcome:
            started.append(n.event_id)
            first.set()
            await asyncio.to_thread(go.wait, 5)
            return Outcome(True)

    def note(i: int) -> Notification:
        return Notification(f"e{i}", f"a{i}", "worker-g1", Event.FIRED,
                            {"id": f"a{i}", "rule": "water.level", "level": "blue", "community": "yicun",
                             "summary": "水位"}, 0)

    async def main() -> None:
        delivered: list[Any] = []

        async def persist(w: list[Any]) -> None:
            delivered.extend(w)

        d = Deliverer({"worker-g1": [Held()]}, persist, SystemClock(), Registry(), concurrency=2)
        d.sender = SenderThread()
        runner = asyncio.create_task(d.run())
        await asyncio.sleep(0)
        d.enqueue([note(1)])
        # No turn of this loop in between: the send began on the sender thread all the same.
        assert first.wait(5), "the send waited for the loop"
        d.enqueue([note(2), note(3)])
        assert d.in_flight == 2 and d.pending() == 3
        go.set()
        for _ in range(100):
            if d.pending() == 0:
                break
            await asyncio.sleep(0.02)
        runner.cancel()
        await d.sender.stop()
        assert started == ["e1", "e2", "e3"] and d.pending() == 0
        assert len(delivered) == 3

    asyncio.run(main())
