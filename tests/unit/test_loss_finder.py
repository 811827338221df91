"""The loss finder in the running service: lost sessions and gap bursts to the alerts, its table, metrics and
/health findings, with the state database on its own thread and a manual clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ingest.loss_finder import LossFinder
from ingest.state_thread import StateThread
from ingest.statedb import StateDB
from kernel.alerting import Transition, TransitionKind
from kernel.clock import ManualClock
from kernel.ids import DeviceType
from kernel.metrics import Registry
from kernel.reading import Reading
from kernel.settings import IngestSettings, MqttSettings


def make(tmp_path: Path, clock: ManualClock) -> tuple[LossFinder, list[Transition], Registry, StateThread]:
    told: list[Transition] = []

    async def apply(transitions: list[Transition]) -> None:
        told.extend(transitions)

    state = StateThread(StateDB(tmp_path / "ingest.db"))
    metrics = Registry()
    finder = LossFinder(mqtt=MqttSettings(), ingest=IngestSettings(loss_window_s=20, loss_min_devices=3),
                        client_id="cbrain-ingest", broker="127.0.0.1:1883", clock=clock, metrics=metrics,
                        state=state, apply=apply)
    return finder, told, metrics, state


async def test_a_lost_session_is_told_counted_and_on_health(tmp_path: Path) -> None:
    clock = ManualClock()
    finder, told, metrics, state = make(tmp_path, clock)
    await finder.recover([])
    finder.session(True, True)  # the first connect: the broker keeps a session from now on
    await asyncio.sleep(0.05)
    assert await state.select("SELECT client_id, broker FROM broker_sessions") == [("cbrain-ingest", "127.0.0.1:1883")]
    assert finder.findings() == []
    finder.session(False, True)
    await asyncio.sleep(0.05)
    assert [(t.kind, t.rule) for t in told] == [(TransitionKind.FIRE, "service.broker_session_lost")]
    [found] = finder.findings()
    assert (found["kind"], found["rule"], found["count"]) == ("broker_session_lost", "service.broker_session_lost", 1)
    assert "cb_mqtt_sessions_lost_total 1" in metrics.render()
    await state.close()


async def test_a_restart_on_the_same_broker_expects_its_session(tmp_path: Path) -> None:
    clock = ManualClock()
    first, _, _, state = make(tmp_path, clock)
    await first.recover([])
    first.session(True, True)
    await asyncio.sleep(0.05)
    await state.close()
    again, told, _, state = make(tmp_path, clock)
    await again.recover([])
    again.session(False, True)  # the broker forgot the session the previous run had
    await asyncio.sleep(0.05)
    assert [t.rule for t in told] == ["service.broker_session_lost"]
    await state.close()


async def test_a_gap_burst_closes_on_the_deadline_loop(tmp_path: Path) -> None:
    clock = ManualClock()
    finder, told, metrics, state = make(tmp_path, clock)
    await finder.recover([])
    task = asyncio.create_task(finder.run())
    for i in range(3):
        finder.gap(Reading("linfen-yicun", DeviceType("smoke_detector"), f"sd-{i}", clock.now_ns(), {}, 9), 4)
    assert "cb_loss_gaps_pending 3" in metrics.render()
    clock.advance(21)
    finder.deadlines.wake()
    await asyncio.sleep(0.05)
    assert [(t.kind, t.rule) for t in told] == [(TransitionKind.FIRE, "service.readings_lost")]
    [found] = finder.findings()
    assert (found["kind"], found["community"], found["readings"], found["devices"]) == (
        "readings_lost", "linfen-yicun", 12, 3)
    assert 'cb_loss_findings_total{rule="service.readings_lost"} 1' in metrics.render()
    task.cancel()
    await state.close()
