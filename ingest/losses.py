"""Readings lost before they reached the service, turned into findings that people are told of.

    MqttSource CONNACK (session present?) ──► SessionWatch ──► service.broker_session_lost (yellow, the service)
    Pipeline: a seq gap, a late reading ─────► GapWatch ──┬──► service.readings_lost (yellow, a community's burst)
                                                          └──► device.gaps (blue, one device's repeated gaps)

Both are pure and clock-free, like the rule engine: every call says what time it is, `on_tick(now)`
returns the transitions due and `next_deadline()` says when to call it again. The app hands the
transitions to the alerts as it hands over the rule engine's. A gap costs O(1) here; a reading
without a gap costs nothing (the pipeline calls in only for gaps and late readings).
"""

from __future__ import annotations

import hashlib
import heapq
from collections import deque
from dataclasses import dataclass, field

from kernel.alerting import SERVICE_WIDE, Alert, Level, Loss, Transition, TransitionKind
from kernel.clock import NS
from kernel.ids import UNKNOWN

SESSION_LOST = "service.broker_session_lost"
READINGS_LOST = "service.readings_lost"
DEVICE_GAPS = "device.gaps"
LOSS_RULES = frozenset({SESSION_LOST, READINGS_LOST, DEVICE_GAPS})
# Alerts about the service itself (and about a whole community's readings) name this device type.
SERVICE_TYPE = "service"

# What the log says, once per episode, when the broker lost the service's session.
SESSION_LOST_EXPLANATION = (
    "the MQTT broker answered 'session present: False' although the service asked it to keep its "
    "session (client id {client_id}): every reading the broker held for the service while it was "
    "away, or while the broker restarted, is lost, and the seq gaps that follow count them. Check on "
    "the broker: persistence true with a writable persistence_location (the broker's log says "
    "'Error saving in-memory database' when it cannot write it) and a short autosave_interval; "
    "persistent_client_expiration longer than the service's worst outage; max_queued_messages and "
    "max_queued_bytes large enough for that outage; and that nothing else connects with the "
    "service's client id. docs/operations.md, 'Readings lost before the service', shows how."
)


def _episode(rule: str, community: str, device_id: str, started_ns: int) -> str:
    return hashlib.sha1(f"{rule}|{community}|{device_id}|{started_ns}".encode()).hexdigest()[:20]


@dataclass(slots=True)
class SessionLost:
    """The open episode of lost sessions: when it began, the last loss, how many."""

    episode: str
    started_ns: int
    last_ns: int
    count: int


class SessionWatch:
    """Whether the broker kept the session the service asked it to keep, at every connect."""

    def __init__(self, *, client_id: str, report_s: float, had_session: bool = False) -> None:
        self.client_id = client_id
        self.report_ns = int(report_s * NS)
        # Whether the broker had (or should have) a session of ours: after our first connect, or at a
        # start whose state_dir says we had one on this broker.
        self.had_session = had_session
        self.lost_total = 0
        self.open: SessionLost | None = None

    def connected(self, session_present: bool, asked: bool, now: int) -> list[Transition]:
        """A CONNACK; `asked`: whether the service asked the broker to keep its session."""
        if not asked:
            self.had_session = False
            return []
        lost = self.had_session and not session_present
        self.had_session = True
        if not lost:
            return []
        self.lost_total += 1
        if self.open is not None:
            # One episode is one alert: a loss again extends how long it is reported.
            self.open.last_ns, self.open.count = now, self.open.count + 1
            return []
        self.open = SessionLost(_episode(SESSION_LOST, SERVICE_WIDE, self.client_id, now), now, now, 1)
        return [self._transition(TransitionKind.FIRE, now)]

    def on_tick(self, now: int) -> list[Transition]:
        """The episode clears report_s after its last loss."""
        due = self.next_deadline()
        if due is None or due > now:
            return []
        tr = self._transition(TransitionKind.CLEAR, now)
        self.open = None
        return [tr]

    def next_deadline(self) -> int | None:
        """When the open episode clears, if none follows."""
        return None if self.open is None else self.open.last_ns + self.report_ns

    def adopt(self, alert: Alert) -> None:
        """An open alert a previous run left: this watch clears it (its last change counts as its last loss)."""
        if alert.rule == SESSION_LOST and self.open is None:
            count = int(alert.value) if alert.value is not None else 1
            self.open = SessionLost(alert.id, alert.started_ns, alert.updated_ns, count)

    def reported(self, now: int) -> SessionLost | None:
        """The episode while it is reported (for /health)."""
        return self.open if self.open is not None and now < self.open.last_ns + self.report_ns else None

    def _transition(self, kind: TransitionKind, now: int) -> Transition:
        e = self.open
        assert e is not None
        return Transition(kind, SESSION_LOST, e.episode, Level.YELLOW if kind is not TransitionKind.CLEAR else None,
                          Level.YELLOW if kind is TransitionKind.CLEAR else None, SERVICE_WIDE, UNKNOWN, UNKNOWN,
                          self.client_id, SERVICE_TYPE, float(e.count), now, e.started_ns,
                          loss=Loss(None, 0, e.count, e.started_ns, e.last_ns))


@dataclass(slots=True)
class _Pending:
    """One device's gaps within an open burst."""

    device_type: str
    building: str
    grid: str
    lost: int = 0
    gaps: int = 0


@dataclass(slots=True)
class _Burst:
    """A community's gaps since its first one, until the window closes."""

    first_ns: int
    last_ns: int
    closes_ns: int
    devices: dict[tuple[str, str], _Pending] = field(default_factory=dict)


@dataclass(slots=True)
class _Reported:
    """An open alert of this watch and when it clears."""

    episode: str
    rule: str
    community: str
    device_id: str
    device_type: str
    building: str
    grid: str
    value: float
    started_ns: int
    clears_ns: int
    loss: Loss | None = None


@dataclass(slots=True)
class _DeviceHistory:
    """A device's recent gaps (time, readings lost), oldest first."""

    gaps: deque[tuple[int, int]] = field(default_factory=deque)


class GapWatch:
    """Seq gaps grouped like a storm: many devices of a community at once is one community alert;
    a device's own repeated gaps are a finding of that device."""

    def __init__(self, *, window_s: float, min_devices: int, report_s: float, device_gaps: int,
                 device_window_s: float) -> None:
        self.window_ns = int(window_s * NS)
        self.min_devices = min_devices
        self.report_ns = int(report_s * NS)
        self.device_gaps = device_gaps
        self.device_window_ns = int(device_window_s * NS)
        self.bursts: dict[str, _Burst] = {}
        self.history: dict[tuple[str, str], _DeviceHistory] = {}
        # (rule, community, device_id) of device.gaps, (rule, community, episode) of service.readings_lost
        self.reported: dict[tuple[str, str, str], _Reported] = {}
        self._heap: list[tuple[int, int, str, tuple[str, ...]]] = []
        self._pushes = 0
        self.readings_lost_reported = 0  # readings named by community alerts since start

    # ---- inputs: O(1) each ---------------------------------------------------------------------

    def gap(self, community: str, device_type: str, device_id: str, building: str, grid: str, skipped: int,
            now: int) -> None:
        """A reading of this device skipped `skipped` seqs."""
        burst = self.bursts.get(community)
        if burst is None:
            burst = self.bursts[community] = _Burst(now, now, now + self.window_ns)
            self._push(burst.closes_ns, "burst", (community,))
        key = (community, device_id)
        pending = burst.devices.get(key)
        if pending is None:
            pending = burst.devices[key] = _Pending(device_type, building, grid)
        pending.lost += skipped
        pending.gaps += 1
        burst.last_ns = now

    def late(self, community: str, device_id: str) -> None:
        """A late reading of this device filled one seq of a gap (a redelivery, not a loss)."""
        burst = self.bursts.get(community)
        if burst is not None:
            pending = burst.devices.get((community, device_id))
            if pending is not None and pending.lost > 0:
                pending.lost -= 1

    def adopt(self, alert: Alert) -> None:
        """An open alert a previous run left: this watch clears it in its time (from its last change)."""
        if alert.rule == READINGS_LOST:
            clears = alert.updated_ns + self.report_ns
        elif alert.rule == DEVICE_GAPS:
            clears = alert.updated_ns + self.device_window_ns
        else:
            return
        key = (alert.rule, alert.community, alert.id if alert.rule == READINGS_LOST else alert.device_id)
        self.reported[key] = _Reported(alert.id, alert.rule, alert.community, alert.device_id, alert.device_type,
                                       alert.building, alert.grid, alert.value or 0.0, alert.started_ns, clears)
        self._push(clears, "clear", key)

    # ---- deadlines -----------------------------------------------------------------------------

    def next_deadline(self) -> int | None:
        """When on_tick has something to do."""
        while self._heap and not self._valid(self._heap[0]):
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def on_tick(self, now: int) -> list[Transition]:
        """Close the bursts whose window ended, clear the findings whose time is up."""
        out: list[Transition] = []
        while self._heap and self._heap[0][0] <= now:
            entry = heapq.heappop(self._heap)
            if not self._valid(entry):
                continue
            _due, _n, what, key = entry
            if what == "burst":
                out += self._close(key[0], self.bursts.pop(key[0]), now)
            else:
                r = self.reported.pop((key[0], key[1], key[2]))
                out.append(self._transition(TransitionKind.CLEAR, r, now))
        return out

    def pending(self) -> int:
        """Devices with gaps in bursts not yet closed."""
        return sum(len(b.devices) for b in self.bursts.values())

    # ---- inside --------------------------------------------------------------------------------

    def _push(self, due: int, what: str, key: tuple[str, ...]) -> None:
        self._pushes += 1
        heapq.heappush(self._heap, (due, self._pushes, what, key))

    def _valid(self, entry: tuple[int, int, str, tuple[str, ...]]) -> bool:
        due, _n, what, key = entry
        if what == "burst":
            burst = self.bursts.get(key[0])
            return burst is not None and burst.closes_ns == due
        r = self.reported.get((key[0], key[1], key[2]))
        return r is not None and r.clears_ns == due

    def _close(self, community: str, burst: _Burst, now: int) -> list[Transition]:
        lost = {k: p for k, p in burst.devices.items() if p.lost > 0}
        if not lost:
            return []  # every gap was filled by late readings: redelivered, not lost
        if len(lost) >= self.min_devices:
            readings = sum(p.lost for p in lost.values())
            gaps = sum(p.gaps for p in lost.values())
            self.readings_lost_reported += readings
            loss = Loss(readings, len(lost), gaps, burst.first_ns, burst.last_ns)
            device_id = f"community:{community}"
            # Each burst is its own alert: it says what was lost, and when (bursts of one community are
            # at least a window apart).
            episode = _episode(READINGS_LOST, community, device_id, burst.first_ns)
            r = _Reported(episode, READINGS_LOST, community, device_id, SERVICE_TYPE, UNKNOWN, UNKNOWN,
                          float(readings), burst.first_ns, now + self.report_ns, loss)
            self.reported[(READINGS_LOST, community, episode)] = r
            self._push(r.clears_ns, "clear", (READINGS_LOST, community, episode))
            return [self._transition(TransitionKind.FIRE, r, now)]
        out: list[Transition] = []
        for (c, device_id), p in lost.items():
            out += self._device_gaps(c, device_id, p, burst.last_ns, now)
        return out

    def _device_gaps(self, community: str, device_id: str, p: _Pending, at: int, now: int) -> list[Transition]:
        h = self.history.get((community, device_id))
        if h is None:
            h = self.history[(community, device_id)] = _DeviceHistory()
        # One entry per gap; the first carries the readings they lost together.
        h.gaps.append((at, p.lost))
        h.gaps.extend((at, 0) for _ in range(p.gaps - 1))
        while h.gaps and h.gaps[0][0] <= at - self.device_window_ns:
            h.gaps.popleft()
        while len(h.gaps) > self.device_gaps:  # only the last few matter
            h.gaps.popleft()
        key = (DEVICE_GAPS, community, device_id)
        r = self.reported.get(key)
        if r is not None:
            # Still losing readings: the finding stands for another window.
            r.clears_ns = at + self.device_window_ns
            self._push(r.clears_ns, "clear", key)
            return []
        if len(h.gaps) < self.device_gaps:
            return []
        readings = sum(n for _t, n in h.gaps)
        first = h.gaps[0][0]
        loss = Loss(readings, 1, len(h.gaps), first, at)
        r = _Reported(_episode(DEVICE_GAPS, community, device_id, first), DEVICE_GAPS, community, device_id,
                      p.device_type, p.building, p.grid, float(readings), first, at + self.device_window_ns, loss)
        self.reported[key] = r
        self._push(r.clears_ns, "clear", key)
        h.gaps.clear()
        return [self._transition(TransitionKind.FIRE, r, now)]

    def _transition(self, kind: TransitionKind, r: _Reported, now: int) -> Transition:
        level = Level.YELLOW if r.rule == READINGS_LOST else Level.BLUE
        return Transition(kind, r.rule, r.episode, None if kind is TransitionKind.CLEAR else level,
                          level if kind is TransitionKind.CLEAR else None, r.community, r.building, r.grid,
                          r.device_id, r.device_type, r.value, now, r.started_ns, loss=r.loss)
