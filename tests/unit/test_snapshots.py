"""The snapshot schedule the device book and the rule engine share."""

from __future__ import annotations

from kernel.snapshots import SnapshotSchedule


def test_a_snapshot_first_then_by_time_by_count_and_when_the_clock_goes_back() -> None:
    s = SnapshotSchedule(every_ns=100, after=10)
    assert s.due(0, 1)  # the first commit
    s.taken(0)
    assert not s.due(50, 9)
    s.journal(9)
    assert s.due(60, 1)  # ten journalled
    assert not s.due(60, 0)
    s.taken(60)
    assert not s.due(159, 1) and s.due(160, 1)  # every 100
    assert s.due(59, 1)  # the service clock went back


def test_halfway_puts_the_next_snapshot_half_a_period_or_half_the_inputs_away() -> None:
    """The devices' schedule is taken halfway at its first snapshot, so that it stays half a period
    out of step with the rule engine's (ingest.pipeline), by time and by count."""
    by_time, by_count = SnapshotSchedule(30, 100), SnapshotSchedule(30, 100)
    for s in (by_time, by_count):
        s.taken(1000, halfway=True)
    assert not by_time.due(1014, 0) and by_time.due(1015, 0)
    assert not by_count.due(1001, 49) and by_count.due(1001, 50)
    by_count.taken(1001)
    assert not by_count.due(1002, 99) and by_count.due(1031, 0)
