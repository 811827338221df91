"""Exponential backoff with full jitter, so many clients do not retry in step.

Every retry of the service and the simulator waits by it: notification delivery, the InfluxDB
writer, the MQTT reader and the alerts' MQTT publisher, the simulator's device connections.
"""

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
        delay = self.delay(self.attempt)
        self.attempt += 1
        return delay

    def delay(self, attempt: int) -> float:
        """The delay before retry number `attempt` (0 is the first), for callers that keep the count
        themselves (a notification's attempts are stored in the outbox, and outlive the process)."""
        ceiling = min(self.maximum, self.minimum * (2 ** min(max(attempt, 0), 30)))
        return self.minimum / 2 + self._rng.uniform(0, ceiling - self.minimum / 2)

    def reset(self) -> None:
        """Start again from the minimum after a success."""
        self.attempt = 0
