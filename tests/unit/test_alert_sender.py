"""The alert sender thread: channel sends run on its loop, their results and errors come back."""

from __future__ import annotations

import asyncio
import threading

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
