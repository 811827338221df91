"""At a light load the pipeline commits at most every commit_spacing_s (by default the flush
interval's 25 ms), not once for every few readings: a commit costs about as much CPU with three
readings as with three hundred. A reading that changes an alert still does not wait for it.

The real pipeline, state database and SQLite store (tests/pipeline_kit.py); the source
(tests/memory_source.py) and the participant are the test's."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson

from ingest.mqtt_source import Delivery
from kernel.reading import Reading, StatusUpdate
from kernel.settings import IngestSettings
from tests.memory_source import MemorySource
from tests.pipeline_kit import Observer, pipeline_of

HIGH_CM = 12.0  # a reading that changes a level (the participant's news)
TRICKLE = 60  # deliveries, one every TRICKLE_GAP_S: 500/s, well below batch_above_rate
TRICKLE_GAP_S = 0.002


class Commits(Observer):
    """A participant that notes when each batch is committed, how many readings it held, and when the
    news it held (a high reading) was observed."""

    def __init__(self) -> None:
        self.open = 0
        self.news_at: float | None = None
        self.commits: list[tuple[float, int, float | None]] = []  # (at, readings, news observed at)

    def observe(self, readings: list[Reading], statuses: list[StatusUpdate], now_ns: int) -> bool:
        self.open += len(readings)
        high = any(r.fields.get("level_cm") == HIGH_CM for r in readings)
        if high:
            self.news_at = time.monotonic()
        return high

    def committed(self) -> None:
        self.commits.append((time.monotonic(), self.open, self.news_at))
        self.open, self.news_at = 0, None


def delivery(i: int, level_cm: float) -> Delivery:
    return Delivery(f"cb/c1/water_level/wl{i % 7}/telemetry",
                    orjson.dumps({"ts": time.time_ns() // 1_000_000, "seq": i // 7, "level_cm": level_cm}),
                    i + 1, 1, 0)


async def run_trickle(tmp_path: Path, settings: IngestSettings, high_at: int | None = None) -> Commits:
    watch = Commits()
    pipeline = pipeline_of(tmp_path, watch, settings)
    source = MemorySource()
    tasks = [asyncio.create_task(pipeline.consume(source)), asyncio.create_task(pipeline.commit(source))]
    try:
        async with asyncio.timeout(10):
            for i in range(TRICKLE):
                source.put([delivery(i, HIGH_CM if i == high_at else 1.0)])
                await asyncio.sleep(TRICKLE_GAP_S)
            while sum(n for _, n, _ in watch.commits) < TRICKLE:
                await asyncio.sleep(0.005)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        pipeline.state.executor.shutdown()
    return watch


def median_gap(watch: Commits) -> float:
    """The median time between two commits of the run (seconds)."""
    gaps = sorted(b[0] - a[0] for a, b in zip(watch.commits[:-1], watch.commits[1:], strict=True))
    return gaps[len(gaps) // 2]


async def test_a_trickle_of_readings_is_committed_at_most_every_25_ms_by_default(tmp_path: Path) -> None:
    settings = IngestSettings()
    assert settings.commit_spacing_s == settings.flush_interval_s
    watch = await run_trickle(tmp_path, settings)
    assert sum(n for _, n, _ in watch.commits) == TRICKLE  # every reading, once
    # A reading every 2 ms, and each commit ~25 ms after the last (10 ms apart, there would be
    # twice as many). The spacing runs from one take to the next; a commit's own time moves the
    # moment it ends by a little either way.
    assert len(watch.commits) >= 3, watch.commits
    assert median_gap(watch) >= 0.8 * settings.flush_interval_s, watch.commits


async def test_at_a_light_load_a_reading_that_changes_an_alert_does_not_wait_for_the_spacing(
        tmp_path: Path) -> None:
    settings = IngestSettings(commit_spacing_s=0.5)  # a spacing no alert could wait for
    watch = await run_trickle(tmp_path, settings, high_at=TRICKLE // 2)
    (at, _n, news_at), = [c for c in watch.commits if c[2] is not None]
    assert news_at is not None
    # Committed within push_commit_spacing_s of being seen (and a commit's own time), not 0.5 s later.
    assert at - news_at < settings.push_commit_spacing_s + 0.2, watch.commits
