"""A batch that changed an alert goes to its commit as it stands, and ingest takes nothing more until
that batch is committed and its participants have let its news out; then it goes on, nothing lost.

The real pipeline, state database and SQLite store (tests/pipeline_kit.py); the source
(tests/memory_source.py) and the participant are the test's."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson

from ingest.mqtt_source import Delivery
from ingest.pipeline import TAKE_AT_MOST, Pipeline
from kernel.reading import Reading, StatusUpdate
from tests.memory_source import MemorySource
from tests.pipeline_kit import Observer, pipeline_of

HIGH_CM = 12.0  # the one reading of the run that changes a level


class Watch(Observer):
    """A participant that takes the batch as it fills (as the rules runner does): news is a high reading.
    At each commit it notes the batch's size and how many deliveries ingest had taken by then."""

    def __init__(self) -> None:
        self.open = 0
        self.news = False
        self.commits: list[tuple[int, bool, int]] = []  # (readings, held news, taken by ingest at the commit)
        self.pipeline: Pipeline | None = None

    def observe(self, readings: list[Reading], statuses: list[StatusUpdate], now_ns: int) -> bool:
        self.open += len(readings)
        high = any(r.fields.get("level_cm") == HIGH_CM for r in readings)
        self.news = self.news or high
        return high

    def committed(self) -> None:
        assert self.pipeline is not None
        self.commits.append((self.open, self.news, int(self.pipeline.m_received.total())))
        self.open, self.news = 0, False


def deliveries(n: int, high_at: int) -> list[Delivery]:
    now_ms = time.time_ns() // 1_000_000
    return [Delivery(f"cb/c1/water_level/wl{i % 7}/telemetry",
                     orjson.dumps({"ts": now_ms, "seq": i // 7, "level_cm": HIGH_CM if i == high_at else 1.0}),
                     i + 1, 1, 0) for i in range(n)]


async def test_a_batch_with_news_is_committed_as_it_stands_and_ingest_waits_for_its_news(tmp_path: Path) -> None:
    watch = Watch()
    pipeline = pipeline_of(tmp_path, watch)
    watch.pipeline = pipeline
    source = MemorySource()
    total = TAKE_AT_MOST + 100
    source.put(deliveries(total, high_at=40))  # the news is in the first piece ingest takes
    tasks = [asyncio.create_task(pipeline.consume(source)), asyncio.create_task(pipeline.commit(source))]
    try:
        async with asyncio.timeout(10):
            while sum(n for n, _, _ in watch.commits) < total:
                await asyncio.sleep(0.01)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        pipeline.state.executor.shutdown()
    first = watch.commits[0]
    # The batch with the news: the piece it came in, nothing gathered after it...
    assert first[:2] == (TAKE_AT_MOST, True), watch.commits
    # ...and while it went to its commit, ingest took nothing more.
    assert first[2] == TAKE_AT_MOST, watch.commits
    # Then the rest, in later batches: every reading committed once.
    assert sum(n for n, _, _ in watch.commits) == total
    assert [news for _, news, _ in watch.commits].count(True) == 1
