"""Readings lost before the service: gap bursts, device findings and lost sessions, on a manual clock."""

from __future__ import annotations

from ingest.losses import DEVICE_GAPS, READINGS_LOST, SESSION_LOST, GapWatch, SessionWatch
from kernel.alerting import SERVICE_WIDE, Alert, AlertStatus, Level, TransitionKind
from kernel.clock import ManualClock

NS = 1_000_000_000
C1, C2 = "linfen-yicun", "linfen-ercun"


def watch(**kw: float) -> GapWatch:
    args = {"window_s": 20.0, "min_devices": 3, "report_s": 3600.0, "device_gaps": 3, "device_window_s": 3600.0}
    return GapWatch(**(args | kw))  # type: ignore[arg-type]


def gap(w: GapWatch, clock: ManualClock, community: str, device: str, skipped: int) -> None:
    w.gap(community, "smoke_detector", device, "b01", "g1", skipped, clock.now_ns())


def run_until(w: GapWatch, clock: ManualClock, seconds: float) -> list:
    """Advance second by second, ticking whenever a deadline falls due, as the service's task does."""
    out = []
    for _ in range(int(seconds)):
        clock.advance(1)
        due = w.next_deadline()
        if due is not None and due <= clock.now_ns():
            out += w.on_tick(clock.now_ns())
    return out


def test_gaps_at_many_devices_at_once_are_one_alert_per_community_with_the_counts() -> None:
    clock, w = ManualClock(), watch()
    start = clock.now_ns()
    for i in range(40):
        gap(w, clock, C1, f"sd-{i}", 5 + i % 3)
    clock.advance(2)
    for i in range(4):
        gap(w, clock, C2, f"sd2-{i}", 10)
    gap(w, clock, C1, "sd-0", 2)  # the same device again within the burst
    assert w.on_tick(clock.now_ns()) == []  # the window is still open
    out = run_until(w, clock, 25)
    fired = {t.community: t for t in out if t.kind is TransitionKind.FIRE}
    assert set(fired) == {C1, C2} and len(out) == 2
    one = fired[C1]
    assert one.rule == READINGS_LOST and one.level is Level.YELLOW and one.device_id == f"community:{C1}"
    expected = sum(5 + i % 3 for i in range(40)) + 2
    assert one.value == expected and one.loss is not None
    assert (one.loss.readings, one.loss.devices, one.loss.events) == (expected, 40, 41)
    assert one.loss.first_ns == start and one.loss.last_ns == start + 2 * NS
    assert fired[C2].loss is not None and (fired[C2].loss.readings, fired[C2].loss.devices) == (40, 4)
    # Reported for an hour, then resolved; nothing before.
    assert [t for t in run_until(w, clock, 3500) if t.kind is TransitionKind.CLEAR] == []
    cleared = run_until(w, clock, 120)
    assert {(t.kind, t.community, t.episode) for t in cleared} == {
        (TransitionKind.CLEAR, C1, one.episode), (TransitionKind.CLEAR, C2, fired[C2].episode)}
    assert w.next_deadline() is None


def test_gaps_filled_by_late_readings_are_redeliveries_not_losses() -> None:
    clock, w = ManualClock(), watch()
    for i in range(10):
        gap(w, clock, C1, f"sd-{i}", 3)
    clock.advance(1)
    for i in range(10):
        for _ in range(3):
            w.late(C1, f"sd-{i}")
    w.late(C1, "sd-0")  # more late readings than the gap: never below nothing
    assert run_until(w, clock, 30) == []
    assert w.history == {}  # and no device finding counts them either


def test_partly_filled_burst_counts_only_what_stayed_missing() -> None:
    clock, w = ManualClock(), watch()
    for i in range(5):
        gap(w, clock, C1, f"sd-{i}", 4)
    for i in range(2):  # two devices got everything back
        for _ in range(4):
            w.late(C1, f"sd-{i}")
    w.late(C1, "sd-2")
    out = run_until(w, clock, 21)
    assert len(out) == 1 and out[0].loss is not None
    assert (out[0].loss.readings, out[0].loss.devices) == (4 + 4 + 3, 3)


def test_a_few_devices_are_not_a_burst_but_a_device_with_repeated_gaps_is_a_finding() -> None:
    clock, w = ManualClock(), watch()
    out = []
    for _ in range(2):
        gap(w, clock, C1, "sd-a", 2)
        gap(w, clock, C1, "sd-b", 1)
        out += run_until(w, clock, 600)
    assert out == []  # two devices, twice: below both thresholds
    gap(w, clock, C1, "sd-a", 4)
    out = run_until(w, clock, 30)
    assert len(out) == 1
    t = out[0]
    assert (t.kind, t.rule, t.level, t.device_id, t.building, t.grid) == (
        TransitionKind.FIRE, DEVICE_GAPS, Level.BLUE, "sd-a", "b01", "g1")
    assert t.loss is not None and (t.loss.events, t.loss.readings) == (3, 2 + 2 + 4) and t.value == 8
    # More gaps while it stands: one finding, kept for another window after the last gap.
    gap(w, clock, C1, "sd-a", 1)
    assert run_until(w, clock, 3000) == []
    cleared = run_until(w, clock, 700)
    assert [(c.kind, c.episode) for c in cleared] == [(TransitionKind.CLEAR, t.episode)]


def test_gaps_older_than_the_device_window_do_not_count() -> None:
    clock, w = ManualClock(), watch(device_window_s=600)
    out = []
    for _ in range(5):
        gap(w, clock, C1, "sd-a", 1)
        out += run_until(w, clock, 400)  # one gap every 400 s: at most two within 600 s
    assert out == []


def test_gaps_inside_a_community_burst_do_not_count_towards_device_findings() -> None:
    clock, w = ManualClock(), watch()
    fired = []
    for _ in range(3):  # three broker restarts in an hour, every device loses readings each time
        for i in range(5):
            gap(w, clock, C1, f"sd-{i}", 2)
        fired += [t for t in run_until(w, clock, 300) if t.kind is TransitionKind.FIRE]
    assert [t.rule for t in fired] == [READINGS_LOST] * 3
    assert len({t.episode for t in fired}) == 3  # each burst is its own alert


def test_a_new_burst_after_the_window_is_counted_on_its_own() -> None:
    clock, w = ManualClock(), watch(window_s=10)
    for i in range(3):
        gap(w, clock, C1, f"sd-{i}", 1)
    clock.advance(12)
    first = w.on_tick(clock.now_ns())
    for i in range(3):
        gap(w, clock, C1, f"sd-{i}", 7)
    second = run_until(w, clock, 11)
    assert [t.value for t in first] == [3] and [t.value for t in second] == [21]


def test_findings_left_open_by_a_previous_run_are_cleared_in_their_time() -> None:
    clock, w = ManualClock(), watch()
    now = clock.now_ns()
    left = Alert("a1", READINGS_LOST, Level.YELLOW, AlertStatus.FIRING, C1, "unknown", "unknown",
                 f"community:{C1}", "service", 300.0, now - 3000 * NS, now - 3000 * NS, "s")
    w.adopt(left)
    out = run_until(w, clock, 601)
    assert [(t.kind, t.episode) for t in out] == [(TransitionKind.CLEAR, "a1")]


def test_session_lost_only_on_a_reconnect_or_after_a_session_this_state_dir_had() -> None:
    clock = ManualClock()
    s = SessionWatch(client_id="cbrain-ingest", report_s=3600)
    assert s.connected(False, True, clock.now_ns()) == []  # a fresh service's first connect
    clock.advance(10)
    assert s.connected(True, True, clock.now_ns()) == []  # the broker kept it
    clock.advance(10)
    out = s.connected(False, True, clock.now_ns())
    assert len(out) == 1
    t = out[0]
    assert (t.kind, t.rule, t.level, t.community, t.device_id, t.value) == (
        TransitionKind.FIRE, SESSION_LOST, Level.YELLOW, SERVICE_WIDE, "cbrain-ingest", 1.0)
    assert s.lost_total == 1 and s.reported(clock.now_ns()) is not None
    restarted = SessionWatch(client_id="cbrain-ingest", report_s=3600, had_session=True)
    assert len(restarted.connected(False, True, clock.now_ns())) == 1


def test_session_lost_again_is_the_same_alert_and_it_resolves_after_the_report_time() -> None:
    clock = ManualClock()
    s = SessionWatch(client_id="c", report_s=600, had_session=True)
    first = s.connected(False, True, clock.now_ns())
    for _ in range(3):
        clock.advance(100)
        assert s.connected(False, True, clock.now_ns()) == []
    assert s.lost_total == 4 and s.open is not None and s.open.count == 4
    clock.advance(599)
    assert s.on_tick(clock.now_ns()) == []
    clock.advance(1)
    cleared = s.on_tick(clock.now_ns())
    assert [(c.kind, c.episode, c.value) for c in cleared] == [(TransitionKind.CLEAR, first[0].episode, 4.0)]
    assert s.reported(clock.now_ns()) is None and s.next_deadline() is None


def test_no_finding_when_the_service_did_not_ask_for_a_session() -> None:
    s = SessionWatch(client_id="c", report_s=600, had_session=True)
    assert s.connected(False, False, 0) == [] and s.connected(False, False, 1) == []
    assert s.lost_total == 0


def test_a_lost_session_left_open_by_a_previous_run_is_kept_and_cleared_in_its_time() -> None:
    clock = ManualClock()
    now = clock.now_ns()
    left = Alert("s1", SESSION_LOST, Level.YELLOW, AlertStatus.FIRING, SERVICE_WIDE, "unknown", "unknown", "c",
                 "service", 2.0, now - 1000 * NS, now - 500 * NS, "s")
    s = SessionWatch(client_id="c", report_s=600, had_session=True)
    s.adopt(left)
    clock.advance(50)
    assert s.connected(False, True, clock.now_ns()) == []  # the same episode: no second alert
    assert s.open is not None and s.open.count == 3
    clock.advance(599)
    assert s.on_tick(clock.now_ns()) == []
    clock.advance(1)
    assert [(t.kind, t.episode) for t in s.on_tick(clock.now_ns())] == [(TransitionKind.CLEAR, "s1")]
