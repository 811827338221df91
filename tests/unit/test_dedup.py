"""Per-device seq tracking: duplicates, gaps, late arrivals, counter restarts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.dedup import WINDOW, SeqMark, SeqVerdict

NEW, LATE, DUP, RESET = SeqVerdict.NEW, SeqVerdict.LATE, SeqVerdict.DUPLICATE, SeqVerdict.RESET
T0 = 1_780_000_000_000_000_000


def ts(seq: int) -> int:
    """A device timestamp that grows with seq."""
    return T0 + seq * 1_000_000_000


def feed(mark: SeqMark, seqs: list[int], device_ts: bool = True) -> list[tuple[SeqVerdict, int]]:
    return [mark.observe(s, ts(s), device_ts) for s in seqs]


def test_first_seq_is_new_without_gap() -> None:
    mark = SeqMark()
    assert mark.observe(17, ts(17), True) == (NEW, 0)
    assert (mark.high, mark.mask, mark.high_ts_ns) == (17, 1, ts(17))


def test_consecutive_then_duplicate() -> None:
    mark = SeqMark()
    assert feed(mark, [0, 1, 2, 2, 1, 0]) == [(NEW, 0), (NEW, 0), (NEW, 0), (DUP, 0), (DUP, 0), (DUP, 0)]
    assert mark.high == 2


def test_gap_is_counted() -> None:
    mark = SeqMark()
    assert feed(mark, [5, 6, 10, 11, 100]) == [(NEW, 0), (NEW, 0), (NEW, 3), (NEW, 0), (NEW, 88)]


def test_late_arrival_fills_a_gap_once() -> None:
    mark = SeqMark()
    assert feed(mark, [1, 4, 2, 3, 2, 3, 4]) == [(NEW, 0), (NEW, 2), (LATE, 0), (LATE, 0), (DUP, 0), (DUP, 0),
                                                 (DUP, 0)]


def test_window_edge() -> None:
    high = 5000
    mark = SeqMark()
    mark.observe(high, ts(high), True)
    assert mark.observe(high - (WINDOW - 1), ts(high - (WINDOW - 1)), True) == (LATE, 0)
    assert mark.observe(high - (WINDOW - 1), ts(high - (WINDOW - 1)), True) == (DUP, 0)
    assert mark.high == high
    # Beyond the window but measured earlier: a very late reading, accepted without moving the mark.
    assert mark.observe(high - WINDOW, ts(high - WINDOW), True) == (LATE, 0)
    assert mark.high == high
    assert mark.observe(high + 1, ts(high + 1), True) == (NEW, 0)


def test_window_edge_without_device_ts() -> None:
    mark = SeqMark()
    mark.observe(3000, 0, False)
    assert mark.observe(3000 - WINDOW + 1, 0, False) == (LATE, 0)
    assert mark.observe(3000 - WINDOW, 0, False) == (RESET, 0)


def test_mask_keeps_bits_across_a_large_jump_within_the_window() -> None:
    mark = SeqMark()
    feed(mark, [0, 2])
    assert mark.observe(WINDOW - 1, ts(WINDOW - 1), True) == (NEW, WINDOW - 4)
    assert mark.observe(0, ts(0), True) == (DUP, 0)
    assert mark.observe(1, ts(1), True) == (LATE, 0)
    assert mark.observe(WINDOW, ts(WINDOW), True) == (NEW, 0)
    assert mark.observe(1, ts(1), True) == (DUP, 0)
    assert mark.observe(0, ts(0), True) == (LATE, 0)  # beyond the window, older: very late, not a reset


def test_jump_beyond_the_window_forgets_older_seqs() -> None:
    mark = SeqMark()
    feed(mark, [0, 1])
    assert mark.observe(1 + WINDOW, ts(1 + WINDOW), True) == (NEW, WINDOW - 1)
    assert mark.mask == 1


def test_counter_restart_detected_by_device_time() -> None:
    mark = SeqMark()
    feed(mark, [500, 501, 502])
    later = ts(502) + 1
    assert mark.observe(3, later, True) == (RESET, 0)
    assert (mark.high, mark.mask, mark.high_ts_ns) == (3, 1, later)
    assert mark.observe(4, later + 1, True) == (NEW, 0)
    assert mark.observe(3, later, True) == (DUP, 0)


def test_lower_seq_with_older_device_time_is_late_not_a_restart() -> None:
    mark = SeqMark()
    feed(mark, [500, 502])
    assert mark.observe(501, ts(501), True) == (LATE, 0)


def test_counter_restart_without_device_time_needs_seq_zero() -> None:
    mark = SeqMark()
    for s in (7, 8, 9):
        mark.observe(s, 0, False)
    assert mark.observe(8, 0, False) == (DUP, 0)
    assert mark.observe(3, 0, False) == (LATE, 0)
    assert mark.observe(0, 0, False) == (RESET, 0)
    assert (mark.high, mark.mask) == (0, 1)
    assert mark.observe(0, 0, False) == (DUP, 0)
    assert mark.observe(1, 0, False) == (NEW, 0)
    assert mark.observe(1, 0, False) == (DUP, 0)


def test_without_device_time_seq_zero_after_higher_always_counts_as_restart() -> None:
    mark = SeqMark()
    feed(mark, [0, 1], device_ts=False)
    assert mark.observe(0, 0, False) == (RESET, 0)


def test_seq_zero_repeated_at_start_is_a_duplicate() -> None:
    mark = SeqMark()
    assert mark.observe(0, 0, False) == (NEW, 0)
    assert mark.observe(0, 0, False) == (DUP, 0)


def test_to_bytes_and_restore_round_trip() -> None:
    mark = SeqMark()
    feed(mark, [10, 12, 15, 11, 15 + WINDOW - 5])
    raw = mark.to_bytes()
    assert len(raw) == WINDOW // 8
    again = SeqMark.restore(mark.high, raw, mark.high_ts_ns)
    assert again == mark
    for s in (10, 11, 12, 13, 14, 15, 16):
        assert again.observe(s, ts(s), True) == mark.observe(s, ts(s), True)
    assert SeqMark.restore(-1, SeqMark().to_bytes(), 0) == SeqMark()


@st.composite
def deliveries(draw: st.DrawFn) -> list[int]:
    """Seqs in blocks spanning less than WINDOW, each block shuffled with repeats, blocks in order."""
    out: list[int] = []
    start = draw(st.integers(0, 10**12))
    for _ in range(draw(st.integers(1, 4))):
        offsets = draw(st.sets(st.integers(0, WINDOW - 1), min_size=1, max_size=40))
        block = [start + o for o in offsets]
        repeats = draw(st.lists(st.sampled_from(block), max_size=20))
        out += draw(st.permutations(block + repeats))
        start += WINDOW + draw(st.integers(0, 3 * WINDOW))
    return out


@settings(max_examples=200, deadline=None)
@given(deliveries())
def test_every_distinct_seq_is_accepted_exactly_once(seqs: list[int]) -> None:
    mark = SeqMark()
    accepted = [s for s in seqs if mark.observe(s, ts(s), True)[0] in (NEW, LATE, RESET)]
    assert sorted(accepted) == sorted(set(seqs))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=1, max_size=200))
def test_within_the_window_nothing_resets_and_gaps_add_up(seqs: list[int]) -> None:
    mark = SeqMark()
    results = feed(mark, seqs)
    verdicts = [v for v, _ in results]
    assert RESET not in verdicts
    assert verdicts.count(NEW) + verdicts.count(LATE) == len(set(seqs))
    first, high = seqs[0], max(seqs)
    late_above_first = sum(1 for s, (v, _) in zip(seqs, results, strict=True) if v is LATE and s > first)
    still_missing = (high - first + 1) - len({s for s in seqs if s >= first})
    assert sum(gap for _, gap in results) - late_above_first == still_missing


class SeenSet:
    """The same verdicts kept the plain way: the set of seqs seen since the last restart."""

    def __init__(self) -> None:
        self.high, self.high_ts, self.seen = -1, 0, set[int]()

    def observe(self, seq: int, ts_ns: int, device_ts: bool) -> tuple[SeqVerdict, int]:
        if self.high < 0 or seq > self.high:
            gap = seq - self.high - 1 if self.high >= 0 else 0
            self.high, self.high_ts = seq, ts_ns
            self.seen.add(seq)
            return NEW, gap
        restarted = (device_ts and ts_ns > self.high_ts) or (not device_ts and seq == 0 and self.high > 0)
        if not restarted and self.high - seq < WINDOW:
            if seq in self.seen:
                return DUP, 0
            self.seen.add(seq)
            return LATE, 0
        if not restarted and device_ts:
            return LATE, 0
        self.high, self.high_ts, self.seen = seq, ts_ns, {seq}
        return RESET, 0

    def mask(self) -> int:
        return sum(1 << i for i in range(WINDOW) if self.high - i in self.seen)


@st.composite
def wandering(draw: st.DrawFn) -> list[tuple[int, int, bool]]:
    """(seq, device time, whether the device sends its time): runs in order, repeats, steps back,
    jumps within and beyond the window, restarts."""
    out: list[tuple[int, int, bool]] = []
    seq, t = draw(st.integers(0, 3 * WINDOW)), T0
    for _ in range(draw(st.integers(1, 60))):
        move = draw(st.sampled_from(["next", "next", "next", "repeat", "back", "skip", "far", "restart"]))
        if move == "next":
            seq += 1
        elif move == "back":
            seq = max(0, seq - draw(st.integers(1, 2 * WINDOW)))
        elif move == "skip":
            seq += draw(st.integers(2, WINDOW + 2))
        elif move == "far":
            seq += draw(st.integers(WINDOW, 4 * WINDOW))
        elif move == "restart":
            seq = 0
        t += draw(st.sampled_from([-1, 0, 1_000_000_000]))
        out.append((seq, t, draw(st.booleans())))
    return out


@settings(max_examples=300, deadline=None)
@given(wandering())
def test_the_holes_give_the_verdicts_and_mask_of_the_seqs_seen(steps: list[tuple[int, int, bool]]) -> None:
    mark, plain = SeqMark(), SeenSet()
    for seq, t, device_ts in steps:
        assert mark.observe(seq, t, device_ts) == plain.observe(seq, t, device_ts), (seq, t, device_ts)
        assert (mark.high, mark.high_ts_ns, mark.mask) == (plain.high, plain.high_ts, plain.mask())
        assert SeqMark.restore(mark.high, mark.to_bytes(), mark.high_ts_ns) == mark
