"""Exponential backoff with full jitter, so many clients do not retry in step."""

from __future__ import annotations

import random


class Backoff:
    """Delays growing from `minimum` to `maximum`, each drawn uniformly up to the current ceiling."""

    def __init__(self, minimum: float, maximum: float, *, rng: random.Random | None = None) -> None:
        self.minimum = minimum
        self.maximum = max(minimum, maximum)
        self.attempt = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        """The next delay in seconds."""
        ceiling = min(self.maximum, self.minimum * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return self.minimum / 2 + self._rng.uniform(0, ceiling - self.minimum / 2)

    def reset(self) -> None:
        """Start again from the minimum after a success."""
        self.attempt = 0
