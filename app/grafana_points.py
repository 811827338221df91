"""The points the service writes for Grafana's dashboards (the street-office wall reads only InfluxDB).

    DeviceBook ──┐                                   device_state      (changed devices every device_check_s,
    AlertManager ┼─► GrafanaPointsWriter (a task) ─►   community_summary  every device once per device_state_interval_s)
    ResourceBook ┘   woken by alert and resource       building_state    (every summary_interval_s, ~1 s after
                     changes                           shelter_state      an alert or a shelter's occupancy changes)
                         └──► Store (InfluxDB, or SQLite when embedded)

The writer only reads the device book, the open alerts and the shelters' occupancy between batches, on
the event loop: the ingest path does no extra work per reading. Its points go straight to the store, not through the
spool: each is a snapshot that the next one supersedes, and the spool's commits belong to readings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from ingest.device_book import DeviceBook, DeviceState
from ingest.store_writer import Store
from kernel.alerting import LEVELS, SERVICE_WIDE, Alert, AlertStatus
from kernel.clock import NS, Clock
from kernel.devices import CATALOG
from kernel.errors import BadPointError, StoreError
from kernel.metrics import Registry
from kernel.reading import FieldValue, Point
from kernel.settings import DashboardSettings
from kernel.site import Site
from resources.book import ResourceBook

log = logging.getLogger("cbrain.grafana_points")

OFFLINE_RULE = "device.offline"
# After an alert changes, wait this long for the rest of its batch before writing the summary.
ALERT_SETTLE_S = 0.5


def worst_rank(alerts: list[Alert]) -> int:
    """0 when nothing is open, else 1 (blue) to 4 (red): the number the dashboards map to words."""
    return max((a.level.rank + 1 for a in alerts), default=0)


def _flag(value: FieldValue | None) -> float | None:
    return None if value is None else float(value is True)


@dataclass(slots=True)
class WallCounts:
    """What one pass of the writer did (for the benchmark and the tests)."""

    device_points: int = 0
    summary_points: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


class GrafanaPointsWriter:
    """Snapshots of device and alert state as InfluxDB points, written periodically and on change."""

    def __init__(self, settings: DashboardSettings, site: Site, devices: DeviceBook,
                 open_alerts: dict[str, Alert], store: Store, clock: Clock, metrics: Registry | None = None,
                 resources: ResourceBook | None = None) -> None:
        self.settings = settings
        self.site = site
        self.devices = devices
        self.open_alerts = open_alerts
        self.resources = resources  # the shelters and their occupancy (shelter_state), when the site lists some
        self.store = store
        self.clock = clock
        self._written: dict[tuple[str, str, str], tuple[object, ...]] = {}
        self._alert_changed = asyncio.Event()
        self.last = WallCounts()
        self.m_points = metrics.counter("cb_wall_points_total", "Points written for the dashboards, by measurement",
                                        ["measurement"]) if metrics else None
        self.m_seconds = metrics.counter("cb_wall_seconds_total", "Time the dashboard writer spent building points"
                                         ) if metrics else None

    def alert_changed(self, _notifications: object = None) -> None:
        """An alert or a shelter's occupancy changed (an AlertManager or ResourcesRunner listener): write the
        summary soon."""
        self._alert_changed.set()

    # ---- points ----------------------------------------------------------------------------------

    def _offline_alerts(self) -> set[tuple[str, str]]:
        return {(a.community, a.device_id) for a in self.open_alerts.values() if a.rule == OFFLINE_RULE}

    @staticmethod
    def _online(state: DeviceState, offline: set[tuple[str, str]]) -> bool:
        # A device never heard from, or one the offline rule has caught going quiet, is not online.
        return state.online is True and (state.community, state.device_id) not in offline

    def device_points(self, now_ns: int, *, every: bool) -> list[Point]:
        """device_state points of devices whose online state, battery, signal or fault changed (or all)."""
        offline = self._offline_alerts()
        points: list[Point] = []
        written = self._written
        for key, s in self.devices.devices.items():
            f = s.last_fields
            online = self._online(s, offline)
            battery, rssi = f.get("battery_pct"), f.get("rssi_dbm")
            fault, tamper = _flag(f.get("fault")), _flag(f.get("tamper"))
            # Signal in 5 dB steps: a radio's noise alone would otherwise write every device every check.
            mark = (online, battery, None if not isinstance(rssi, float) else rssi // 5, fault, tamper)
            if not every and written.get(key) == mark:
                continue
            written[key] = mark
            fields: dict[str, FieldValue] = {"online": 1.0 if online else 0.0}
            if isinstance(battery, float):
                fields["battery_pct"] = battery
            if isinstance(rssi, float):
                fields["rssi_dbm"] = rssi
            if s.last_seen_ns is not None:
                fields["silent_s"] = max(0.0, (now_ns - s.last_seen_ns) / NS)
            # 0 for a device that never reported the flag: no fault is known (and sums stay defined).
            fields["fault"] = fault or 0.0
            fields["tamper"] = tamper or 0.0
            points.append(Point("device_state", {"community": s.community, "device_id": s.device_id,
                                                 "device_type": s.device_type, "building": s.building,
                                                 "grid": s.grid}, fields, now_ns))
        return points

    def summary_points(self, now_ns: int) -> list[Point]:
        """One community_summary point per community and one building_state point per building."""
        offline = self._offline_alerts()
        by_community: dict[str, list[Alert]] = {c: [] for c in self.site.communities}
        by_building: dict[tuple[str, str], list[Alert]] = {}
        for a in self.open_alerts.values():
            if a.status is AlertStatus.RESOLVED or a.community == SERVICE_WIDE:  # the service's own, no place
                continue
            by_community.setdefault(a.community, []).append(a)
            by_building.setdefault((a.community, a.building), []).append(a)
        online: dict[str, int] = dict.fromkeys(by_community, 0)
        total: dict[str, int] = dict.fromkeys(by_community, 0)
        # The device catalog's sums per community (the charging load): summary field → community → sum.
        sums_of = {k.device_type.value: k.community_sums for k in CATALOG.values() if k.community_sums}
        sums: dict[str, dict[str, float]] = {f: {} for by in sums_of.values() for f in by}
        for s in self.devices.devices.values():
            total[s.community] = total.get(s.community, 0) + 1
            if self._online(s, offline):
                online[s.community] = online.get(s.community, 0) + 1
                for name, summed in sums_of.get(s.device_type, {}).items():
                    value = s.last_fields.get(summed)
                    if isinstance(value, float):
                        sums[name][s.community] = sums[name].get(s.community, 0.0) + value
        points: list[Point] = []
        for community in sorted(set(by_community) | set(total)):
            alerts = by_community.get(community, [])
            firing = [a for a in alerts if a.status is AlertStatus.FIRING]
            fields: dict[str, FieldValue] = {f"firing_{lv.value}": float(sum(a.level is lv for a in firing))
                                             for lv in LEVELS}
            fields["unacknowledged"] = float(len(firing))
            fields["acknowledged"] = float(len(alerts) - len(firing))
            fields["oldest_unacked_age_s"] = max(((now_ns - a.started_ns) / NS for a in firing), default=0.0)
            fields["worst_level"] = float(worst_rank(alerts))
            fields["devices_online"] = float(online.get(community, 0))
            fields["devices_offline"] = float(total.get(community, 0) - online.get(community, 0))
            for name, by_community_sum in sums.items():
                fields[name] = by_community_sum.get(community, 0.0)
            c = self.site.communities.get(community)
            # The name as a tag: dashboards name each community's series by it ($tag_name).
            tags = {"community": community, "name": c.name if c else community}
            points.append(Point("community_summary", tags, fields, now_ns))
        for c in self.site.communities.values():
            for i, b in enumerate(c.buildings):
                alerts = by_building.get((c.id, b.id), [])
                bfields: dict[str, FieldValue] = {
                    "worst_level": float(worst_rank(alerts)), "open_alerts": float(len(alerts)),
                    "firing": float(sum(a.status is AlertStatus.FIRING for a in alerts)), "name": b.name}
                if b.location is not None and b.location.lat is not None and b.location.lon is not None:
                    bfields["lat"], bfields["lon"] = b.location.lat, b.location.lon
                # A nanosecond apart: a store keyed without the building tag (SQLite) keeps them all.
                points.append(Point("building_state", {"community": c.id, "building": b.id, "grid": b.grid},
                                    bfields, now_ns + i))
        return points + self.shelter_points(now_ns)

    def shelter_points(self, now_ns: int) -> list[Point]:
        """One shelter_state point per shelter: where it is, its capacity, how many are there and their share."""
        if self.resources is None:
            return []
        catalog, occupancy = self.resources.catalog, self.resources.occupancy
        points: list[Point] = []
        for i, (shelter_id, (community, sh)) in enumerate(catalog.shelters.items()):
            occupied = occupancy.get(shelter_id, 0)
            fields: dict[str, FieldValue] = {"capacity": float(sh.capacity), "occupancy": float(occupied),
                                             "share": round(occupied / sh.capacity, 3)}
            where = catalog.where(community, None, sh.location)
            if where is not None:
                fields["lat"], fields["lon"] = where
            # The name as a tag, as community_summary's: the map's tooltip names the shelter by it.
            points.append(Point("shelter_state", {"community": community, "shelter": shelter_id, "name": sh.name},
                                fields, now_ns + i))
        return points

    # ---- the task --------------------------------------------------------------------------------

    async def write_once(self, *, devices: bool, every_device: bool, summary: bool) -> WallCounts:
        """Build and write one round of points."""
        started = time.perf_counter()
        now = self.clock.now_ns()
        counts = WallCounts()
        points: list[Point] = []
        if devices:
            points += self.device_points(now, every=every_device)
            counts.device_points = len(points)
        if summary:
            points += self.summary_points(now)
            counts.summary_points = len(points) - counts.device_points
        counts.seconds = time.perf_counter() - started
        if self.m_seconds is not None:
            self.m_seconds.inc(counts.seconds)
        if points:
            try:
                await self.store.write(points)
            except (StoreError, BadPointError) as exc:
                # A lost snapshot is replaced by the next; the store's own health says it is down.
                counts.errors.append(str(exc))
                log.debug("dashboard points not written: %s", exc)
                self._written.clear()  # write every device again once the store is back
            else:
                if self.m_points is not None:
                    if counts.device_points:
                        self.m_points.inc(counts.device_points, "device_state")
                    if counts.summary_points:
                        self.m_points.inc(counts.summary_points, "summary")
        self.last = counts
        return counts

    async def run(self) -> None:
        """Write on change and on the intervals, forever."""
        s = self.settings
        loop = asyncio.get_running_loop()
        next_check = next_all = next_summary = loop.time()
        while True:
            now = loop.time()
            due_all = now >= next_all
            due_summary = now >= next_summary or self._alert_changed.is_set()
            if self._alert_changed.is_set():
                self._alert_changed.clear()
            await self.write_once(devices=due_all or now >= next_check, every_device=due_all, summary=due_summary)
            if due_all:
                next_all = now + s.device_state_interval_s
            if now >= next_check:
                next_check = now + s.device_check_s
            if due_summary:
                next_summary = now + s.summary_interval_s
            wait = max(0.0, min(next_check, next_all, next_summary) - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._alert_changed.wait(), wait)
                # Let the rest of the change's batch (its other alerts, its acknowledgement) land first.
                await asyncio.sleep(ALERT_SETTLE_S)
