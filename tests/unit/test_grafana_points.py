"""The dashboard writer: what device_state, community_summary, building_state and shelter_state say."""

from __future__ import annotations

import asyncio
from pathlib import Path

from app.config import load_settings
from app.grafana_points import GrafanaPointsWriter
from ingest.device_book import DeviceBook
from kernel.alerting import Alert, AlertStatus, Level
from kernel.clock import ManualClock
from kernel.ids import DeviceType
from kernel.reading import Point, Reading
from kernel.site import Site

SITE = Path(__file__).resolve().parents[2] / "examples" / "scenario-site.yaml"
NOW = 1_800_000_000 * 10**9


class ListStore:
    """Keeps what was written (the writer's only use of a store is write())."""

    name = "list"
    url = "list://"

    def __init__(self) -> None:
        self.points: list[Point] = []

    async def write(self, points: list[Point]) -> None:
        self.points += points

    async def close(self) -> None:
        pass


def alert(aid: str, rule: str, level: Level, status: AlertStatus, community: str, building: str,
          device_id: str, started_ns: int) -> Alert:
    return Alert(aid, rule, level, status, community, building, "g1", device_id, "smoke_detector", 1.0,
                 started_ns, started_ns, "")


def make() -> tuple[GrafanaPointsWriter, DeviceBook, dict[str, Alert], ListStore]:
    settings = load_settings(SITE)
    site = Site(settings)
    book = DeviceBook(site)
    alerts: dict[str, Alert] = {}
    store = ListStore()
    clock = ManualClock(NOW)
    return GrafanaPointsWriter(settings.dashboards, site, book, alerts, store, clock), book, alerts, store


def reading(device_id: str, community: str, **fields: float | bool) -> Reading:
    return Reading(community, DeviceType.SMOKE_DETECTOR, device_id, NOW - 10**9, dict(fields), received_ns=NOW - 10**9)


def test_summary_counts_firing_by_level_unacked_and_devices() -> None:
    wall, book, alerts, _ = make()
    book.observe(reading("sd-b01-0501", "linfen-yicun", obscuration_pct_m=0.0))
    alerts["a1"] = alert("a1", "smoke.multi", Level.RED, AlertStatus.FIRING, "linfen-yicun", "b01", "building:b01",
                         NOW - 90 * 10**9)
    alerts["a2"] = alert("a2", "smoke.alarm", Level.ORANGE, AlertStatus.ACKNOWLEDGED, "linfen-yicun", "b01",
                         "sd-b01-0502", NOW - 300 * 10**9)
    points = {(p.measurement, p.tags.get("community"), p.tags.get("building")): p.fields
              for p in wall.summary_points(NOW)}
    yicun = points[("community_summary", "linfen-yicun", None)]
    assert (yicun["firing_red"], yicun["firing_orange"], yicun["unacknowledged"], yicun["acknowledged"]) == (1, 0, 1, 1)
    assert yicun["oldest_unacked_age_s"] == 90.0 and yicun["worst_level"] == 4.0
    registered = sum(1 for k in book.devices if k[0] == "linfen-yicun")
    assert (yicun["devices_online"], yicun["devices_offline"]) == (1.0, registered - 1)
    ercun = points[("community_summary", "linfen-ercun", None)]
    assert ercun["firing_red"] == 0 and ercun["unacknowledged"] == 0 and ercun["worst_level"] == 0
    b01 = points[("building_state", "linfen-yicun", "b01")]
    assert b01["worst_level"] == 4.0 and b01["lat"] == 31.31742 and b01["name"] == "1号楼"
    assert points[("building_state", "linfen-yicun", "b02")]["worst_level"] == 0.0


def test_the_charging_load_sums_the_catalogs_field_over_online_ports() -> None:
    wall, book, _, _ = make()
    for device_id, current in (("ev-x-1", 3.5), ("ev-x-2", 4.0)):
        book.observe(Reading("linfen-yicun", DeviceType.EBIKE_CHARGER, device_id, NOW - 10**9,
                             {"current_a": current}, received_ns=NOW - 10**9))
    book.observe(reading("sd-b01-0501", "linfen-yicun", obscuration_pct_m=0.0))  # not a charging port
    points = {p.tags["community"]: p.fields for p in wall.summary_points(NOW) if p.measurement == "community_summary"}
    assert points["linfen-yicun"]["charging_a"] == 7.5
    assert points["linfen-ercun"]["charging_a"] == 0.0


def test_device_state_is_written_on_change_and_all_on_the_interval() -> None:
    wall, book, alerts, _ = make()
    everything = wall.device_points(NOW, every=True)
    assert len(everything) == len(book.devices)
    assert wall.device_points(NOW, every=False) == []
    book.observe(reading("sd-b01-0501", "linfen-yicun", obscuration_pct_m=0.0, battery_pct=80.0))
    changed = wall.device_points(NOW, every=False)
    assert [p.tags["device_id"] for p in changed] == ["sd-b01-0501"]
    assert changed[0].fields["online"] == 1.0 and changed[0].fields["battery_pct"] == 80.0
    assert changed[0].fields["silent_s"] == 1.0
    # The offline rule caught it going quiet: the wall counts it offline although no status said so.
    alerts["o"] = alert("o", "device.offline", Level.YELLOW, AlertStatus.FIRING, "linfen-yicun", "b01",
                        "sd-b01-0501", NOW)
    again = wall.device_points(NOW, every=False)
    assert [(p.tags["device_id"], p.fields["online"]) for p in again] == [("sd-b01-0501", 0.0)]


def test_an_alert_change_writes_the_summary_within_a_second() -> None:
    async def scenario() -> list[Point]:
        wall, _, alerts, store = make()
        task = asyncio.create_task(wall.run())
        await asyncio.sleep(0.1)
        store.points.clear()
        alerts["a1"] = alert("a1", "water.level", Level.ORANGE, AlertStatus.FIRING, "linfen-ercun", "b12",
                             "wl-garage", NOW)
        wall.alert_changed()
        await asyncio.sleep(ALERT_WAIT)
        task.cancel()
        return store.points

    ALERT_WAIT = 1.0
    points = asyncio.run(scenario())
    ercun = [p for p in points if p.measurement == "community_summary" and p.tags["community"] == "linfen-ercun"]
    assert ercun and ercun[-1].fields["firing_orange"] == 1.0


def test_alert_points_carry_the_seconds_since_the_alert_started() -> None:
    from alerts.manager import alert_payload
    from alerts.runner import alert_points

    a = alert("a1", "smoke.alarm", Level.ORANGE, AlertStatus.ACKNOWLEDGED, "linfen-yicun", "b01", "sd-b01-0501",
              NOW - 75 * 10**9)
    (point,) = alert_points([(alert_payload(a), "acknowledged", NOW)])
    assert point.fields["age_s"] == 75.0 and point.tags["event"] == "acknowledged"


def test_each_shelter_is_a_point_on_the_map_with_its_occupancy() -> None:
    from resources.book import ResourceBook
    from resources.catalog import Catalog

    settings = load_settings(SITE.parent / "site.yaml")  # the example site lists two shelters
    # One shelter without coordinates: counted, not placed.
    yicun = settings.communities[0].model_copy(update={"shelters": [
        *settings.communities[0].shelters,
        settings.communities[0].shelters[0].model_copy(update={"id": "sh-hall", "name": "社区活动室", "capacity": 80,
                                                               "location": None})]})
    settings = settings.model_copy(update={"communities": [yicun, *settings.communities[1:]]})
    site = Site(settings)
    resources = ResourceBook(Catalog(settings))
    wall = GrafanaPointsWriter(settings.dashboards, site, DeviceBook(site), {}, ListStore(), ManualClock(NOW),
                               resources=resources)
    resources.occupy("sh-school", 546, "committee-yicun", NOW - 10**9)
    shelters = [p for p in wall.summary_points(NOW) if p.measurement == "shelter_state"]
    assert [(p.tags, p.fields) for p in shelters] == [
        ({"community": "linfen-yicun", "shelter": "sh-school", "name": "临汾路小学操场"},
         {"capacity": 600.0, "occupancy": 546.0, "share": 0.91, "lat": 31.31905, "lon": 121.45402}),
        ({"community": "linfen-yicun", "shelter": "sh-hall", "name": "社区活动室"},
         {"capacity": 80.0, "occupancy": 0.0, "share": 0.0}),
        ({"community": "linfen-ercun", "shelter": "sh-park", "name": "临汾绿地"},
         {"capacity": 400.0, "occupancy": 0.0, "share": 0.0, "lat": 31.3132, "lon": 121.4554})]
    assert len({p.ts_ns for p in shelters}) == 3  # apart: a store keyed without the shelter tag keeps them all
    # A site without shelters (or a writer not given them) writes none.
    assert not [p for p in make()[0].summary_points(NOW) if p.measurement == "shelter_state"]
