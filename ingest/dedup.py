"""Per-device `seq` tracking: duplicates, gaps (readings lost before the service), late arrivals, resets."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

# How far behind the newest seq a late reading is still recognised (and a repeat still caught).
WINDOW = 1024
_FULL = (1 << WINDOW) - 1


class SeqVerdict(IntEnum):
    """What one seq means for its device."""

    NEW = 0  # newer than anything seen (may leave a gap)
    LATE = 1  # older than the newest but not seen before: fills a gap
    DUPLICATE = 2  # seen before: not stored again
    RESET = 3  # the device restarted its counter


@dataclass(slots=True)
class SeqMark:
    """The newest seq of a device, which of the WINDOW before it were seen, and the newest's timestamp."""

    high: int = -1
    mask: int = 0  # bit i set: seq (high - i) was seen
    high_ts_ns: int = 0

    def observe(self, seq: int, ts_ns: int, device_ts: bool) -> tuple[SeqVerdict, int]:
        """Record seq; return the verdict and how many seqs this one skipped."""
        if self.high < 0:
            self.high, self.mask, self.high_ts_ns = seq, 1, ts_ns
            return SeqVerdict.NEW, 0
        if seq > self.high:
            shift = seq - self.high
            self.mask = ((self.mask << shift) | 1) & _FULL if shift < WINDOW else 1
            self.high, self.high_ts_ns = seq, ts_ns
            return SeqVerdict.NEW, shift - 1
        offset = self.high - seq
        # A reading the device measured after the newest one, yet numbered no higher: its counter restarted.
        restarted = (device_ts and ts_ns > self.high_ts_ns) or (not device_ts and seq == 0 and self.high > 0)
        if not restarted:
            if offset < WINDOW:
                bit = 1 << offset
                if self.mask & bit:
                    return SeqVerdict.DUPLICATE, 0
                self.mask |= bit
                return SeqVerdict.LATE, 0
            if device_ts:
                # Older than the window and measured before the newest: a very late reading. Its own
                # timestamp keys it in the store, so a repeat of it cannot be stored twice.
                return SeqVerdict.LATE, 0
        self.high, self.mask, self.high_ts_ns = seq, 1, ts_ns
        return SeqVerdict.RESET, 0

    def to_bytes(self) -> bytes:
        """The seen-mask, for storage."""
        return self.mask.to_bytes(WINDOW // 8, "little")

    @classmethod
    def restore(cls, high: int, mask: bytes, high_ts_ns: int) -> SeqMark:
        """A mark as stored."""
        return cls(high, int.from_bytes(mask, "little"), high_ts_ns)
