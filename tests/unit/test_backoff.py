"""Exponential backoff with jitter."""

from __future__ import annotations

import random

import pytest

from kernel.backoff import Backoff


@pytest.mark.parametrize(("minimum", "maximum"), [(0.5, 30.0), (1.0, 1.0), (0.1, 0.15), (2.0, 1.0)])
def test_delays_stay_within_half_the_minimum_and_the_maximum(minimum: float, maximum: float) -> None:
    b = Backoff(minimum, maximum, rng=random.Random(7))
    top = max(minimum, maximum)
    delays = [b.next() for _ in range(200)]
    assert all(minimum / 2 <= d <= top for d in delays), delays


def test_ceiling_doubles_until_the_maximum() -> None:
    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    b = Backoff(0.5, 10.0, rng=Top())
    assert [b.next() for _ in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_lowest_delay_is_half_the_minimum() -> None:
    class Bottom(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return a

    b = Backoff(0.5, 10.0, rng=Bottom())
    assert [b.next() for _ in range(4)] == [0.25] * 4


def test_delays_grow_then_reset_starts_again() -> None:
    b = Backoff(1.0, 60.0, rng=random.Random(1))
    early = [b.next() for _ in range(3)]
    assert all(d <= 4.0 for d in early)
    for _ in range(20):
        b.next()
    assert b.attempt == 23
    late = [b.next() for _ in range(50)]
    assert max(late) > 30.0
    b.reset()
    assert b.attempt == 0
    assert 0.5 <= b.next() <= 1.0
    assert b.attempt == 1


def test_many_attempts_do_not_overflow() -> None:
    b = Backoff(0.5, 30.0, rng=random.Random(3))
    b.attempt = 10_000
    assert 0.25 <= b.next() <= 30.0


def test_a_stored_attempt_count_gives_the_same_ceiling_as_counting_in_the_object() -> None:
    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    counted, stored = Backoff(1.0, 60.0, rng=Top()), Backoff(1.0, 60.0, rng=Top())
    assert [counted.next() for _ in range(8)] == [stored.delay(n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert stored.attempt == 0, "delay() keeps no count of its own"
    assert stored.delay(-1) == 1.0  # a count not yet incremented is the first retry


def test_outbox_delivery_waits_by_the_shared_backoff() -> None:
    import asyncio

    from kernel.clock import SystemClock
    from kernel.metrics import Registry
    from notify.deliver import Deliverer

    async def persist(_writes: object) -> None:
        pass

    async def make() -> Deliverer:
        return Deliverer({}, persist, SystemClock(), Registry(), retry_min_s=0.5, retry_max_s=8.0)

    d = asyncio.run(make())
    assert (d.backoff.minimum, d.backoff.maximum) == (0.5, 8.0)
    delays = [d.backoff.delay(n) for n in range(12) for _ in range(20)]
    assert all(0.25 <= x <= 8.0 for x in delays)
