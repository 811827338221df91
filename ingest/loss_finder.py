"""Readings lost before the service, found as they happen and told to the alerts.

    MqttSource on_session (CONNACK) ─► LossFinder.session ─► SessionWatch ┐
    Pipeline on_gap / on_late ───────► LossFinder.gap / late ─► GapWatch ─┴─► apply (the alerts runner's)
    the service clock (one DeadlineLoop) ─► bursts close, findings clear ──┘
    /health ◄── findings()

The watches (ingest/losses.py) are pure and clock-free; this is their place in the running service:
the clock, the loop of their deadlines, the broker_sessions table (which broker had a session of
the service, so that a start can tell a lost session from a first one), their metrics and what
/health says of them. A reading without a gap costs nothing here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from ingest.losses import (
    DEVICE_GAPS,
    LOSS_RULES,
    READINGS_LOST,
    SESSION_LOST,
    SESSION_LOST_EXPLANATION,
    GapWatch,
    SessionWatch,
)
from ingest.state_thread import StateThread
from kernel.alerting import Alert, Transition, TransitionKind
from kernel.clock import Clock, rfc3339
from kernel.deadlines import DeadlineLoop, earliest
from kernel.metrics import Registry
from kernel.reading import Reading
from kernel.settings import IngestSettings, MqttSettings

log = logging.getLogger("cbrain")

# Which broker had a session of the service (so that a start can tell a lost session from a first one).
BROKER_SESSIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS broker_sessions (
    client_id TEXT NOT NULL, broker TEXT NOT NULL, since_ns INTEGER NOT NULL,
    PRIMARY KEY (client_id, broker)
);
"""
SELECT_BROKER_SESSION = "SELECT since_ns FROM broker_sessions WHERE client_id = ? AND broker = ?"
INSERT_BROKER_SESSION = "INSERT OR IGNORE INTO broker_sessions VALUES (?, ?, ?)"

Apply = Callable[[list[Transition]], Awaitable[None]]


class LossFinder:
    """The session and gap watches of one service, their deadlines, table, metrics and findings."""

    def __init__(self, *, mqtt: MqttSettings, ingest: IngestSettings, client_id: str, broker: str, clock: Clock,
                 metrics: Registry, state: StateThread, apply: Apply) -> None:
        """`broker` is the broker's host:port; `apply` hands transitions to the alerts."""
        self.client_id = client_id
        self.broker = broker
        self.clock = clock
        self.state = state
        self.apply = apply
        self.expect_session_at_start = mqtt.expect_session_at_start
        self.sessions = SessionWatch(client_id=client_id, report_s=mqtt.session_lost_report_s)
        i = ingest
        self.gaps = GapWatch(window_s=i.loss_window_s, min_devices=i.loss_min_devices, report_s=i.loss_report_s,
                             device_gaps=i.device_gaps, device_window_s=i.device_gaps_window_s)
        self.deadlines = DeadlineLoop(clock, self._next_deadline, self._fire)
        self._tasks: set[asyncio.Task[None]] = set()
        self._session_stored = False
        self.m_sessions_lost = metrics.counter(
            "cb_mqtt_sessions_lost_total", "Connects on which the broker no longer had the session the service "
            "asked it to keep (readings it held were lost)")
        self.m_findings = metrics.counter(
            "cb_loss_findings_total", "Findings about readings lost before the service, by rule", ["rule"])
        metrics.gauge("cb_loss_gaps_pending", "Devices with seq gaps in bursts not yet closed",
                      source=lambda: float(self.gaps.pending()))

    # ---- told by the pipeline and the source (in the event loop) -------------------------------

    def gap(self, reading: Reading, skipped: int) -> None:
        """A seq gap: `skipped` readings of this device never reached the service."""
        self.gaps.gap(reading.community, reading.device_type.value, reading.device_id, reading.building,
                      reading.grid, skipped, self.clock.now_ns())
        self.deadlines.wake()

    def late(self, reading: Reading) -> None:
        """A reading that filled a gap after all."""
        self.gaps.late(reading.community, reading.device_id)

    def session(self, present: bool, asked: bool) -> None:
        """A connect accepted by the broker."""
        before = self.sessions.lost_total
        transitions = self.sessions.connected(present, asked, self.clock.now_ns())
        if self.sessions.lost_total > before:
            self.m_sessions_lost.inc()
            lost = self.sessions.open
            if transitions:
                log.warning("MQTT session lost: %s", SESSION_LOST_EXPLANATION.format(client_id=self.client_id))
            elif lost is not None:
                log.warning("MQTT session lost again (%d times since %s); see the warning above",
                            lost.count, rfc3339(lost.started_ns))
        self._spawn(self._raise(transitions))
        if asked and not self._session_stored:
            self._session_stored = True
            row = (self.client_id, self.broker, self.clock.now_ns())
            self._spawn(self.state.write([(INSERT_BROKER_SESSION, [row])]))

    # ---- start-up and the deadline task ----------------------------------------------------------

    async def recover(self, open_alerts: Iterable[Alert]) -> None:
        """Whether this broker had our session before, and the open findings a previous run left."""
        await self.state.script(BROKER_SESSIONS_SCHEMA)
        rows = await self.state.select(SELECT_BROKER_SESSION, (self.client_id, self.broker))
        self.sessions.had_session = bool(rows) and self.expect_session_at_start
        for alert in list(open_alerts):
            if alert.rule in LOSS_RULES:
                self.sessions.adopt(alert)
                self.gaps.adopt(alert)

    async def run(self) -> None:
        """Close gap bursts and clear findings as they fall due on the service clock."""
        await self.deadlines.run()

    def _next_deadline(self) -> int | None:
        return earliest(self.sessions.next_deadline(), self.gaps.next_deadline())

    async def _fire(self, now: int) -> None:
        await self._raise(self.sessions.on_tick(now) + self.gaps.on_tick(now))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work, name="loss-finding")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _raise(self, transitions: list[Transition]) -> None:
        for tr in transitions:
            if tr.kind is TransitionKind.FIRE:
                self.m_findings.inc(1, tr.rule)
                if tr.loss is not None and tr.rule != SESSION_LOST:
                    log.warning("%s at %s/%s: %s readings from %d devices lost before the service", tr.rule,
                                tr.community, tr.device_id, tr.loss.readings, tr.loss.devices)
        await self.apply(transitions)

    # ---- /health -----------------------------------------------------------------------------------

    def findings(self) -> list[dict[str, Any]]:
        """Readings lost before the service, while they are reported (they do not make /health 503)."""
        now = self.clock.now_ns()
        out: list[dict[str, Any]] = []
        lost = self.sessions.reported(now)
        if lost is not None:
            out.append({"kind": "broker_session_lost", "rule": SESSION_LOST, "count": lost.count,
                        "since": rfc3339(lost.started_ns), "last_at": rfc3339(lost.last_ns),
                        "until": rfc3339(lost.last_ns + self.sessions.report_ns),
                        "message": "the broker lost the service's persistent session: readings it held for the "
                                   "service were lost; check its persistence, persistent_client_expiration and "
                                   "max_queued_messages (docs/operations.md)"})
        for r in self.gaps.reported.values():
            if r.rule == READINGS_LOST and r.loss is not None and now < r.clears_ns:
                out.append({"kind": "readings_lost", "rule": r.rule, "community": r.community,
                            "readings": r.loss.readings, "devices": r.loss.devices,
                            "first_at": rfc3339(r.loss.first_ns), "last_at": rfc3339(r.loss.last_ns),
                            "until": rfc3339(r.clears_ns)})
        gaps = sum(1 for r in self.gaps.reported.values() if r.rule != READINGS_LOST)
        if gaps:
            out.append({"kind": "device_gaps", "rule": DEVICE_GAPS, "devices": gaps})
        return out
