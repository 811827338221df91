"""When a journalled state is written whole: the schedule the ingest's device book and the rule
engine share. Between snapshots each commit journals what it changed; a snapshot writes the state
changed since the last one and empties the journal, so a restart replays a bounded journal."""

from __future__ import annotations


class SnapshotSchedule:
    """A snapshot at least every `every_ns` of service time and once `after` inputs were journalled
    since the last (and at the first commit, or when the service clock went back)."""

    __slots__ = ("after", "at", "every_ns", "journalled")

    def __init__(self, every_ns: int, after: int) -> None:
        self.every_ns = every_ns
        self.after = after
        self.at: int | None = None  # service time of the last snapshot
        self.journalled = 0  # inputs journalled since

    def due(self, now: int, inputs: int) -> bool:
        """Whether the commit of `inputs` more at service time now is a snapshot."""
        at = self.at
        return (at is None or now - at >= self.every_ns or now < at
                or self.journalled + inputs >= self.after)

    def taken(self, now: int, *, halfway: bool = False) -> None:
        """A snapshot was written at now; `halfway`: the next is due after half the time and half the
        inputs (a schedule kept out of step with another that started at the same time)."""
        if halfway:
            self.at, self.journalled = now - self.every_ns // 2, self.after // 2
        else:
            self.at, self.journalled = now, 0

    def journal(self, inputs: int) -> None:
        """A commit journalled `inputs` instead."""
        self.journalled += inputs
