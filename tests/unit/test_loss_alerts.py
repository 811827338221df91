"""Alerts about readings lost before the service: who is told, and what the summary says (zh-CN, English)."""

from __future__ import annotations

from pathlib import Path

import yaml

from alerts.manager import AlertManager
from alerts.route import Router
from alerts.summary import summarise
from ingest.losses import GapWatch, SessionWatch
from kernel.alerting import Alert, TransitionKind
from kernel.settings import parse_settings
from kernel.site import Site

SITE_TEXT = (Path(__file__).resolve().parents[2] / "examples" / "site.yaml").read_text(encoding="utf-8")
T0 = 1_784_000_000 * 1_000_000_000  # 2026-07-14 03:33:20 UTC


def settings_with_admin():  # type: ignore[no-untyped-def]
    raw = yaml.safe_load(SITE_TEXT)
    raw["recipients"].append({"id": "ops", "name": "运维值班", "role": "admin", "channels": [{"type": "log"}]})
    return parse_settings(yaml.safe_dump(raw, allow_unicode=True), env={})


def fired(manager: AlertManager, transitions: list) -> tuple[Alert, set[str]]:  # type: ignore[type-arg]
    changes = manager.on_transitions(transitions, T0)
    alert = manager.open[transitions[0].episode]
    return alert, {n.recipient for n in changes.messages}


def session_lost() -> list:  # type: ignore[type-arg]
    w = SessionWatch(client_id="cbrain-ingest", report_s=3600, had_session=True)
    return w.connected(False, True, T0)


def readings_lost() -> list:  # type: ignore[type-arg]
    w = GapWatch(window_s=20, min_devices=3, report_s=3600, device_gaps=3, device_window_s=3600)
    for i in range(4):
        w.gap("linfen-yicun", "smoke_detector", f"sd-{i}", "b01", "g1", 10 + i, T0 + i * 1_000_000_000)
    return w.on_tick(T0 + 30 * 1_000_000_000)


def device_gaps() -> list:  # type: ignore[type-arg]
    w = GapWatch(window_s=20, min_devices=3, report_s=3600, device_gaps=3, device_window_s=3600)
    out: list = []  # type: ignore[type-arg]
    for k in range(3):
        w.gap("linfen-yicun", "smoke_detector", "sd-b01-0501", "b01", "g1", 2, T0 + k * 60_000_000_000)
        out += w.on_tick(T0 + (k * 60 + 30) * 1_000_000_000)
    return out


def test_the_lost_session_reaches_the_admins_and_the_street_office_not_the_communities() -> None:
    settings = settings_with_admin()
    manager = AlertManager(Site(settings))
    alert, told = fired(manager, session_lost())
    assert told == {"ops", "street-office"}
    # Escalated to the top it also reaches the bureau, never a community's or grid's people.
    assert {r.id for r in Router(settings).tier_recipients(alert, 3)} == {"ops", "street-office", "bureau"}


def test_a_communitys_lost_readings_reach_its_committee_and_the_admins() -> None:
    manager = AlertManager(Site(settings_with_admin()))
    _alert, told = fired(manager, readings_lost())
    assert told == {"committee-yicun", "ops"}


def test_a_devices_repeated_gaps_reach_its_grid_worker_only() -> None:
    manager = AlertManager(Site(settings_with_admin()))
    transitions = device_gaps()
    assert [t.kind for t in transitions] == [TransitionKind.FIRE]
    _alert, told = fired(manager, transitions)
    assert told == {"worker-g1"}


def test_summaries_say_the_numbers_in_both_languages() -> None:
    site = Site(parse_settings(SITE_TEXT, env={}))
    for transitions, zh, en in [
        (session_lost(),
         "【黄色预警（III级）】社区大脑服务（cbrain-ingest）：MQTT 代理丢失了服务的持久会话，其间排队的读数已丢失"
         "（2026-07-14 03:33:20 UTC 起 1 次）；请检查代理的持久化",
         "[yellow (III)] community brain service (cbrain-ingest): the MQTT broker lost the service's persistent "
         "session and the readings it held for the service (once since 2026-07-14 03:33:20 UTC); check the "
         "broker's persistence"),
        (readings_lost(),
         "【黄色预警（III级）】临汾一村：读数在到达服务前丢失（4 台设备共 46 条，"
         "2026-07-14 03:33:20 至 03:33:23 UTC 发现）",
         "[yellow (III)] 临汾一村: readings lost before they reached the service (46 readings from 4 devices, "
         "noticed 2026-07-14 03:33:20 to 03:33:23 UTC)"),
        (device_gaps(),
         "【蓝色预警（IV级）】临汾一村 1号楼 （第一网格） 烟感 sd-b01-0501：读数多次缺失（3 次缺失，共 6 条，"
         "2026-07-14 03:33:20 至 03:35:20 UTC）",
         "[blue (IV)] 临汾一村 1号楼 (第一网格) smoke detector sd-b01-0501: readings missing again and again "
         "(3 gaps, 6 readings, 2026-07-14 03:33:20 to 03:35:20 UTC)"),
    ]:
        manager = AlertManager(site)
        alert, _ = fired(manager, transitions)
        assert alert.summary.startswith(zh), alert.summary
        assert summarise(site, alert, "en").startswith(en), summarise(site, alert, "en")


def test_a_restored_finding_keeps_its_summary_with_the_numbers() -> None:
    site = Site(parse_settings(SITE_TEXT, env={}))
    manager = AlertManager(site)
    alert, _ = fired(manager, readings_lost())
    alert.loss = None  # as restored from the store, which keeps the summary but not the counts
    assert summarise(site, alert, "zh-CN") == alert.summary and "46 条" in alert.summary
