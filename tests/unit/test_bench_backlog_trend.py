"""bench/vs_nodered.py: a step's backlog trend is not fooled by a store that writes in periodic batches."""

from __future__ import annotations

import random

from bench.vs_nodered import LAG_EVERY_S, LAG_JITTER, backlog_trend

STEP_S = 20.0


def marked_growing(rate: float, period: float, wait, short: float, rng: random.Random, steps: int = 300) -> float:
    """The share of simulated steps marked growing: the backlog a sawtooth of `period` (a store writing
    every `period` s, give or take 3 %, what gathered meanwhile) plus `short` x rate readings a second, read
    every wait() s."""
    marked = 0
    for _ in range(steps):
        period_now = period * rng.uniform(0.97, 1.03)
        phase = rng.random() * period_now
        t, points = 0.3 + rng.random() * 0.5, []
        while t < STEP_S:
            points.append((t, 1000 + ((t + phase) % period_now) * rate + short * rate * t))
            t += wait()
        marked += backlog_trend(points, STEP_S, rate)["backlog_growing"]
    return marked / steps


def test_drawn_waits_do_not_take_a_writers_sawtooth_for_growth_and_still_catch_a_short_consumer() -> None:
    rng = random.Random(7)

    def drawn() -> float:
        return LAG_EVERY_S * rng.uniform(*LAG_JITTER)

    def fixed() -> float:  # what a loop of a 0.5 s wait and a ~30 ms reading gives
        return 0.53
    for rate, period in ((5000, 0.5), (10000, 0.55)):
        assert marked_growing(rate, period, fixed, 0, rng) > 0.08  # the aliasing this avoids
        assert marked_growing(rate, period, drawn, 0, rng) < 0.04
        assert marked_growing(rate, period, drawn, 0.06, rng) > 0.9
