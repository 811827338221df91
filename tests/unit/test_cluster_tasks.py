"""A cluster instance's loops end when cancelled even if one cancellation is swallowed (app/cluster/tasks.py),
and a listing of the members that misses a live instance does not make it look gone (app/cluster/members.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from nats.js.errors import KeyNotFoundError

from app.cluster import members, tasks


def test_a_loop_that_swallowed_a_cancellation_is_ended() -> None:
    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while True:
            rounds += 1
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if rounds > 1:
                    raise  # (the second one ends it)
                # (as 3.11's wait_for may: the first is lost, and the loop goes round again)

    async def run() -> bool:
        task = asyncio.create_task(loop())
        await asyncio.sleep(0)
        await asyncio.wait_for(tasks.end(task), 5)
        return task.cancelled()

    assert asyncio.run(run())
    assert rounds == 2


def test_a_waiter_cancelled_while_a_service_stops_leaves_the_stop_to_finish() -> None:
    """A partition's checkpoint loop, cancelled while it waits for the service to stop, must not cancel
    the service: whoever waits next sees it end as it ends, not a CancelledError."""
    stopping = asyncio.Event()

    async def service() -> str:
        stopping.set()
        await asyncio.sleep(0.05)  # (flushing what it holds)
        return "stopped"

    async def run() -> tuple[bool, str]:
        task = asyncio.create_task(service())
        waiter = asyncio.create_task(tasks.ended(task))
        await stopping.wait()
        waiter.cancel()
        await asyncio.wait({waiter})
        await asyncio.wait_for(tasks.ended(task), 5)  # (the second waiter: raises nothing)
        return task.cancelled(), task.result()

    assert asyncio.run(run()) == (False, "stopped")


def test_a_task_that_ended_with_an_error_is_ended_quietly() -> None:
    async def fail() -> None:
        raise RuntimeError("boom")

    async def run() -> None:
        task = asyncio.create_task(fail())
        await asyncio.sleep(0)
        await tasks.end(task)
        await tasks.end(None)

    asyncio.run(run())


class Bucket:
    """The members' bucket and its stream, whose listing misses some keys (as one taken while they are
    replaced can)."""

    def __init__(self, records: dict[str, dict[str, Any]], listed: list[str]) -> None:
        self.records, self.listed = records, listed

    async def stream_info(self, _name: str, subjects_filter: str) -> Any:
        assert subjects_filter == "$KV.m.>"
        subjects = {f"$KV.m.{k}": 1 for k in self.listed}
        return type("Info", (), {"state": type("State", (), {"subjects": subjects})()})()

    async def get(self, name: str) -> Any:
        if name not in self.records:
            raise KeyNotFoundError
        return type("Entry", (), {"value": orjson.dumps(self.records[name])})()


def test_a_live_instance_the_listing_missed_is_read_by_name() -> None:
    records = {"a": {"partitions": [0]}, "b": {"partitions": [1]}}
    got = asyncio.run(members._records(*_bucket(records, ["a"]), ["b"]))
    assert got == records
    got = asyncio.run(members._records(*_bucket(records, []), ["a", "b"]))
    assert got == records


def test_an_instance_gone_from_the_bucket_is_gone() -> None:
    records = {"a": {"partitions": [0, 1]}}
    assert asyncio.run(members._records(*_bucket(records, ["a"]), ["b"])) == records


def _bucket(records: dict[str, dict[str, Any]], listed: list[str]) -> tuple[Bucket, Bucket, str]:
    b = Bucket(records, listed)
    return b, b, "m"
