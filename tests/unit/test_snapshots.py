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
