"""The configuration file (the site file, examples/site.yaml) and its environment overrides."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from datetime import date
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kernel.channels import CHANNEL_CONFIGS, AnyChannel, ChannelConfig
from kernel.errors import ConfigError
from kernel.ids import DeviceType, Identifier

ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "CB_MQTT_URL": ("mqtt", "url"),
    "CB_INFLUX_URL": ("influx", "url"),
    "CB_INFLUX_DB": ("influx", "database"),
    "CB_HTTP_PORT": ("http", "port"),
    "CB_STATE_DIR": ("state_dir",),
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttSettings(_Model):
    """Broker connection and subscription."""

    url: str = "mqtt://127.0.0.1:1883"
    prefix: str = Field(default="cb", pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")
    client_id: str = Field(default="cbrain-ingest", min_length=1, max_length=128)
    # Scaling out: each instance serves a partition of the communities (per-device state stays on one
    # instance), or several instances share one stream through `$share/{shared_group}/...`.
    communities: list[Identifier] | None = None
    shared_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+$")
    protocol: Literal["auto", "5", "3.1.1"] = "auto"
    receive_maximum: int = Field(default=20000, ge=1, le=65535)
    session_expiry_s: int = Field(default=7 * 86400, ge=0)
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    # The service's broker account (`cbrain mqtt provision` makes one); these win over user:pass in url.
    username: str | None = Field(default=None, min_length=1, max_length=128)
    password: str | None = None
    # TLS (with mqtts://): the CA that signed the broker's certificate (none: the system's CAs), and
    # optionally the service's own client certificate and key.
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    # A reconnect on which the broker no longer has the session the service asked it to keep
    # (readings it held were lost) is shown on /health and alerted for this long after the last one.
    session_lost_report_s: float = Field(default=3600.0, gt=0)
    # Whether a start with a state_dir that had a session on this broker expects the broker to still
    # have it; false for a broker that starts and stops with the service (the demo's embedded one).
    expect_session_at_start: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
            raise ValueError("must look like mqtt://host:1883 or mqtts://user:pass@host:8883")
        return value

    @model_validator(mode="after")
    def _tls_files(self) -> MqttSettings:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file")
        if (self.ca_file or self.cert_file) and not self.tls:
            raise ValueError("ca_file and cert_file need a TLS url (mqtts://host:8883)")
        return self

    @property
    def tls(self) -> bool:
        """Whether the broker is reached over TLS."""
        return urlsplit(self.url).scheme in ("mqtts", "ssl")

    def credentials(self) -> tuple[str | None, str | None]:
        """The user name and password the service logs in with: username/password, else the url's."""
        parts = urlsplit(self.url)
        url_password = unquote(parts.password) if parts.password is not None else None
        if self.username is not None:
            return self.username, self.password if self.password is not None else url_password
        if parts.username:
            return unquote(parts.username), self.password if self.password is not None else url_password
        return None, None


class InfluxSettings(_Model):
    """InfluxDB through its v1 HTTP API; no url means the embedded SQLite store."""

    url: str | None = "http://127.0.0.1:8086"
    database: str = Field(default="community_brain", pattern=r"^[A-Za-z0-9_-]+$")
    username: str | None = None
    password: str | None = None
    retention_policy: str | None = None
    create_database: bool = True
    timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must look like http://host:8086")
        return value.rstrip("/")


class IngestSettings(_Model):
    """Batching, spooling and validation windows."""

    batch_size: int = Field(default=5000, ge=1, le=100_000)
    # Above this many messages a second, batches are committed (and their messages acknowledged) at
    # most every flush_interval_s; below it, at most every commit_spacing_s. A reading waits for at
    # most one interval plus one commit before its alerts can go out.
    flush_interval_s: float = Field(default=0.025, gt=0, le=60)
    batch_above_rate: float = Field(default=2000.0, ge=0)
    # Below that rate, commits are at least this far apart (what an alert may wait at most).
    commit_spacing_s: float = Field(default=0.01, ge=0, le=1)
    # A write to the reading store gathers for up to this long (readings only; alerts do not wait).
    store_gather_s: float = Field(default=0.1, ge=0, le=10)
    spool_max_mb: float = Field(default=1024, gt=0)
    max_past_s: float = Field(default=7 * 86400, gt=0)
    max_future_s: float = Field(default=300, ge=0)
    rejection_log_size: int = Field(default=1000, ge=1, le=100_000)
    retry_max_s: float = Field(default=30.0, gt=0)
    # Durability of the state database: "normal" survives a killed process, "full" also a power cut.
    fsync: Literal["normal", "full"] = "normal"
    # Where spooled readings are written to InfluxDB: "process" in a child process of the service
    # that reads the spool from the state database (off the interpreter that acknowledges), "inline"
    # in the service's event loop. The SQLite reading store is always written inline.
    writer: Literal["process", "inline"] = "process"
    # Readings lost before the service (seq gaps, docs/alerts.md): gaps of one community within
    # loss_window_s at loss_min_devices devices or more are one service.readings_lost alert, shown for
    # loss_report_s; a device with device_gaps gaps (outside such bursts) within device_gaps_window_s
    # is a device.gaps finding.
    loss_window_s: float = Field(default=20.0, gt=0, le=3600)
    loss_min_devices: int = Field(default=3, ge=1)
    loss_report_s: float = Field(default=3600.0, gt=0)
    device_gaps: int = Field(default=3, ge=1, le=1000)
    device_gaps_window_s: float = Field(default=3600.0, gt=0)


RouteKey = Literal["level", "rule", "device_type", "community", "grid", "building"]
TierName = Literal["grid_worker", "community", "street_office", "bureau"]


class RouteSettings(_Model):
    """A node of the routing tree: alerts matching every key of `match` (values listed) take this
    route. Options not given are inherited from the parent; the root carries the defaults of docs/alerts.md."""

    name: str | None = None
    match: dict[RouteKey, list[str]] = {}
    # Also tell these recipients (by id), at every tier.
    recipients: list[Identifier] = []
    # Escalate no higher than this tier.
    max_tier: TierName | None = None
    ack_timeout_s: dict[Literal["blue", "yellow", "orange", "red"], float] | None = None
    # Go on to the next sibling route after matching this one.
    continue_: bool = Field(default=False, alias="continue")
    routes: list[RouteSettings] = []


class InhibitSettings(_Model):
    """While an alert of a `source` rule fires, alerts of `target` rules at the same `equal` places
    say nothing to the recipients the source already tells."""

    source: list[str] = Field(min_length=1)
    target: list[str] = Field(min_length=1)
    equal: list[Literal["community", "building", "grid", "device_id"]] = ["community", "building"]


class AnswerSettings(_Model):
    """叫应, call until answered (docs/response.md): alerts at or above `min_level` must be answered by
    every duty called, within the level's deadline; unanswered, the B person, then the next tier's duties."""

    min_level: Literal["blue", "yellow", "orange", "red"] = "orange"
    deadline_s: dict[Literal["blue", "yellow", "orange", "red"], float] = {"red": 300.0, "orange": 600.0,
                                                                          "yellow": 900.0, "blue": 1800.0}
    # A roster verified longer ago than this is reported to its community (rule service.roster_stale).
    roster_max_age_days: int = Field(default=365, ge=1)
    # The key a called person presses in the voice call to answer.
    voice_answer_key: str = Field(default="1", pattern=r"^[0-9*#]$")
    # The secret part of the voice provider's callback URL (POST /api/v1/answer/voice/{secret});
    # none: no voice callback is taken.
    voice_callback_secret: str | None = Field(default=None, min_length=16)

    @field_validator("deadline_s")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        for level, seconds in value.items():
            if seconds <= 0:
                raise ValueError(f"the deadline of {level} must be more than 0 seconds")
        return value


class AlertSettings(_Model):
    """Delivery of notifications."""

    # Keep retrying a channel this long before falling back to the recipient's next channel.
    give_up_s: float = Field(default=3600.0, gt=0)
    retry_min_s: float = Field(default=1.0, gt=0)
    retry_max_s: float = Field(default=60.0, gt=0)
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    # Acknowledgement deadlines per level (docs/alerts.md): re-send and escalate one tier up after them.
    ack_timeout_s: dict[Literal["blue", "yellow", "orange", "red"], float] = {
        "red": 120.0, "orange": 300.0, "yellow": 900.0, "blue": 3600.0}
    # A storm: more than storm_threshold new alerts of one rule in one community for one recipient
    # within storm_window_s; further ones wait up to group_wait_s and go as one message with the list.
    storm_threshold: int = Field(default=5, ge=0)
    storm_window_s: float = Field(default=60.0, gt=0)
    group_wait_s: float = Field(default=5.0, ge=0)
    # The routing tree below the default route (docs/alerts.md, routing tree).
    routes: list[RouteSettings] = []
    # A building's red smoke.multi speaks for its detectors' own alarms.
    inhibit: list[InhibitSettings] = [InhibitSettings(source=["smoke.multi"],
                                                      target=["smoke.alarm", "smoke.obscuration"])]
    # 叫应: call the duty roster until somebody answers.
    answer: AnswerSettings = AnswerSettings()


class HttpSettings(_Model):
    """The HTTP API listener."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # The address people reach the pages at (links in notifications); none: no links are added.
    public_url: str | None = Field(default=None, pattern=r"^https?://")
    # How long a page session lasts, and an alert link's login.
    session_ttl_s: float = Field(default=12 * 3600, gt=0)
    link_ttl_s: float = Field(default=2 * 3600, gt=0)
    # The key that signs sessions and links; none: one is made once and kept in state_dir.
    session_key: str | None = Field(default=None, min_length=16)


class DashboardSettings(_Model):
    """What the service writes for Grafana's wall, and the wall's map tiles."""

    # community_summary and building_state every this many seconds, and soon after an alert changes.
    summary_interval_s: float = Field(default=30.0, ge=1, le=3600)
    # device_state for devices whose online state, battery or signal changed, checked this often.
    device_check_s: float = Field(default=5.0, ge=1, le=3600)
    # device_state for every device at least this often (so that "latest" is never older).
    device_state_interval_s: float = Field(default=300.0, ge=5, le=86400)
    # Raster tiles for the Geomap ({z}/{x}/{y}); its coordinate system must be the one of the site's
    # coordinates (GCJ-02 for AutoNavi/Tencent tiles, WGS-84 for OpenStreetMap).
    map_tile_url: str = "https://webrd01.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}"
    map_attribution: str = "© 高德地图 AutoNavi (GCJ-02)"
    map_center_lat: float | None = Field(default=None, ge=-90, le=90)
    map_center_lon: float | None = Field(default=None, ge=-180, le=180)
    map_zoom: float = Field(default=16, ge=1, le=20)


class Duty(_Model):
    """A duty of the roster (网格员, 社区应急负责人, 街道值班): its A person, and the B person called when A does
    not answer (recipient ids)."""

    duty: str = Field(min_length=1, max_length=40)
    a: Identifier
    b: Identifier | None = None


class Street(_Model):
    """The street office the site belongs to."""

    id: Identifier
    name: str
    # The street's duties (街道值班) and when their roster was last verified.
    duties: list[Duty] = []
    roster_verified: date | None = None


class Grid(_Model):
    """A grid (网格) of a community, with its grid worker."""

    id: Identifier
    name: str
    duties: list[Duty] = []


class Location(_Model):
    """Where a building or device is: coordinates (lat and lon together, in the coordinate system of
    the map's tiles: GCJ-02 for Chinese web maps) and a text that people read ("3号楼2单元一楼")."""

    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    text: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _both_or_neither(self) -> Location:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("give lat and lon together")
        return self


class Building(_Model):
    """A building of a community, in one grid."""

    id: Identifier
    name: str
    grid: Identifier
    location: Location | None = None


class Community(_Model):
    """A community (社区/小区)."""

    id: Identifier
    name: str
    grids: list[Grid] = []
    buildings: list[Building] = []
    # The community's duties (社区应急负责人), and when the roster of the community and its grids was last verified.
    duties: list[Duty] = []
    roster_verified: date | None = None


class DeviceEntry(_Model):
    """A registered device and where it is."""

    id: Identifier
    type: DeviceType
    community: Identifier
    building: Identifier | None = None
    name: str | None = None
    location: Location | None = None


class Scope(_Model):
    """What a recipient or token covers: a grid, a community, a street, or (empty) everything."""

    community: Identifier | None = None
    grid: Identifier | None = None
    street: Identifier | None = None

    @model_validator(mode="after")
    def _grid_needs_community(self) -> Scope:
        if self.grid is not None and self.community is None:
            raise ValueError("a grid scope needs its community")
        return self


# A way to reach a recipient: one of the models of kernel/channels/, chosen by `type`.
Channel = ChannelConfig


# An admin recipient runs the service: told of the service's own findings (service.* rules), and of
# other alerts only where a route names it. A department contact (吹哨报到) is a recipient too, reached
# on its channels; alerts never route to it.
Role = Literal["grid_worker", "community", "street_office", "bureau", "admin", "department"]


class Recipient(_Model):
    """Somebody who is told about alerts."""

    id: Identifier
    name: str
    role: Role
    scope: Scope = Scope()
    channels: list[AnyChannel] = []


class ApiToken(_Model):
    """A bearer token for the API (the token itself, or its hex SHA-256 as token_sha256); acts as its
    recipient, or with the role given."""

    token: str | None = Field(default=None, min_length=8)
    token_sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    recipient: Identifier | None = None
    role: Literal["admin", "grid_worker", "community", "street_office", "bureau"] | None = None
    scope: Scope | None = None

    @model_validator(mode="after")
    def _one_identity(self) -> ApiToken:
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError("a token is given either as token or as token_sha256 (not both)")
        if (self.recipient is None) == (self.role is None):
            raise ValueError("a token names either a recipient or a role")
        return self

    @property
    def digest(self) -> str:
        """The hex SHA-256 of the token, lower case."""
        if self.token_sha256 is not None:
            return self.token_sha256.lower()
        assert self.token is not None
        return hashlib.sha256(self.token.encode()).hexdigest()



class StepTargets(_Model):
    """Seconds from the whistle by which a department must have signed, arrived and finished."""

    sign_s: float = Field(gt=0)
    arrive_s: float = Field(gt=0)
    done_s: float = Field(gt=0)

    @model_validator(mode="after")
    def _in_order(self) -> StepTargets:
        if not self.sign_s <= self.arrive_s <= self.done_s:
            raise ValueError("targets must not shrink from step to step: sign_s <= arrive_s <= done_s")
        return self


# The defaults of docs/response.md: urgent on site within 30 minutes (Beijing), sign within 1 hour for a
# general whistle (Nanjing 鼓楼); the rest are this project's assumptions, each overridable per department.
DEFAULT_TARGETS: dict[str, StepTargets] = {
    "urgent": StepTargets(sign_s=600, arrive_s=1800, done_s=86400),
    "general": StepTargets(sign_s=3600, arrive_s=86400, done_s=7 * 86400),
}

DepartmentKind = Literal["fire", "police", "urban", "property", "power", "water", "gas", "other"]


class Department(_Model):
    """A department a whistle can summon (消防救援站, 派出所, 城管, 物业, 供电, 供水, 燃气), its contacts (recipient
    ids, told on their own channels) and its response targets per grade."""

    id: Identifier
    name: str = Field(min_length=1, max_length=100)
    kind: DepartmentKind = "other"
    contacts: list[Identifier] = Field(min_length=1)
    targets: dict[Literal["general", "urgent"], StepTargets] = {}

    def targets_for(self, grade: str) -> StepTargets:
        """The targets of a grade: the department's own, else the defaults."""
        return next((v for k, v in self.targets.items() if k == grade), DEFAULT_TARGETS[grade])


class WhistleSettings(_Model):
    """吹哨报到: who may blow a whistle, who is told of overdue work orders (督办), the departments' links."""

    blowers: list[Literal["grid_worker", "community", "street_office"]] = ["grid_worker", "community",
                                                                           "street_office"]
    # Told when a work order is overdue at any step; none listed: every street_office recipient.
    supervisors: list[Identifier] = []
    # How long a department's link to its work order stays valid (it must outlive the order).
    link_ttl_s: float = Field(default=30 * 86400, gt=0)
    # Work-order stats (work_orders) for the dashboards every this many seconds, and soon after a change.
    stats_interval_s: float = Field(default=60.0, ge=1, le=3600)
    # Orders the stats cover: those opened within this window.
    stats_window_s: float = Field(default=30 * 86400, gt=0)


class Settings(_Model):
    """The whole configuration file."""

    mqtt: MqttSettings = MqttSettings()
    influx: InfluxSettings = InfluxSettings()
    http: HttpSettings = HttpSettings()
    ingest: IngestSettings = IngestSettings()
    alerts: AlertSettings = AlertSettings()
    dashboards: DashboardSettings = DashboardSettings()
    state_dir: str = "./var"
    # A rules file (see rules/defaults.yaml); none means the built-in rules.
    rules: str | None = None
    # Overrides of rule settings for this site, as in a rules file's `overrides:` (applied after them).
    rule_overrides: list[dict[str, Any]] = []
    locale: Literal["zh-CN", "en"] = "zh-CN"
    street: Street | None = None
    communities: list[Community] = []
    devices: list[DeviceEntry] = []
    recipients: list[Recipient] = []
    api_tokens: list[ApiToken] = []
    # 吹哨报到 (docs/response.md): the departments a whistle can summon, and how whistles work.
    departments: list[Department] = []
    whistles: WhistleSettings = WhistleSettings()

    @model_validator(mode="after")
    def _refs(self) -> Settings:
        # Raised as ReferenceProblem (not ValueError) so the problem keeps its own location.
        _unique("community", [c.id for c in self.communities], ("communities", "id"))
        _unique("recipient", [r.id for r in self.recipients], ("recipients", "id"))
        _unique("token", [t.digest for t in self.api_tokens], ("api_tokens", "token"))
        for ci, c in enumerate(self.communities):
            _unique("grid", [g.id for g in c.grids], ("communities", ci, "grids", "id"))
            _unique("building", [b.id for b in c.buildings], ("communities", ci, "buildings", "id"))
            grids = {g.id for g in c.grids}
            for bi, b in enumerate(c.buildings):
                if b.grid not in grids:
                    raise ReferenceProblem(("communities", ci, "buildings", bi, "grid"),
                                           f"building {b.id!r} names grid {b.grid!r}, which community {c.id!r} lacks")
        seen: set[tuple[str, str]] = set()
        communities = {c.id: c for c in self.communities}
        for i, d in enumerate(self.devices):
            if (d.community, d.id) in seen:
                raise ReferenceProblem(("devices", i, "id"),
                                       f"device {d.id!r} is listed twice in community {d.community!r}")
            seen.add((d.community, d.id))
            community = communities.get(d.community)
            if community is None:
                raise ReferenceProblem(("devices", i, "community"),
                                       f"device {d.id!r} names community {d.community!r}, which is not listed")
            if d.building is not None and d.building not in {b.id for b in community.buildings}:
                raise ReferenceProblem(("devices", i, "building"), f"device {d.id!r} names building "
                                       f"{d.building!r}, which community {d.community!r} lacks")
        recipients = {r.id for r in self.recipients}
        for i, r in enumerate(self.recipients):
            self._check_scope(r.scope, f"recipient {r.id!r}", ("recipients", i, "scope"))
        self._check_routes(self.alerts.routes, ("alerts", "routes"), recipients)
        self._check_roster(recipients)
        for i, t in enumerate(self.api_tokens):
            if t.recipient is not None and t.recipient not in recipients:
                raise ReferenceProblem(("api_tokens", i, "recipient"),
                                       f"a token names recipient {t.recipient!r}, which is not listed")
            if t.scope is not None:
                self._check_scope(t.scope, "a token", ("api_tokens", i, "scope"))
        self._check_departments(recipients)
        return self

    def _check_departments(self, recipients: set[str]) -> None:
        _unique("department", [d.id for d in self.departments], ("departments", "id"))
        for i, d in enumerate(self.departments):
            for j, rid in enumerate(d.contacts):
                if rid not in recipients:
                    raise ReferenceProblem(("departments", i, "contacts", j),
                                           f"department {d.id!r} names contact {rid!r}, "
                                           "which is not a listed recipient")
        for j, rid in enumerate(self.whistles.supervisors):
            if rid not in recipients:
                raise ReferenceProblem(("whistles", "supervisors", j),
                                       f"supervisor {rid!r} is not a listed recipient")

    def _check_routes(self, routes: list[RouteSettings], loc: tuple[str | int, ...], recipients: set[str]) -> None:
        for i, r in enumerate(routes):
            for j, rid in enumerate(r.recipients):
                if rid not in recipients:
                    raise ReferenceProblem((*loc, i, "recipients", j), f"route names recipient {rid!r}, "
                                           "which is not listed")
            self._check_routes(r.routes, (*loc, i, "routes"), recipients)

    def _check_roster(self, recipients: set[str]) -> None:
        """Every duty names listed recipients, A and B two different people."""
        rosters: list[tuple[tuple[str | int, ...], list[Duty]]] = []
        if self.street is not None:
            rosters.append((("street", "duties"), self.street.duties))
        for ci, c in enumerate(self.communities):
            rosters.append((("communities", ci, "duties"), c.duties))
            rosters += [(("communities", ci, "grids", gi, "duties"), g.duties) for gi, g in enumerate(c.grids)]
        for loc, duties in rosters:
            _unique("duty", [d.duty for d in duties], (*loc, "duty"))
            for di, d in enumerate(duties):
                for key in ("a", "b"):
                    rid = getattr(d, key)
                    if rid is not None and rid not in recipients:
                        raise ReferenceProblem((*loc, di, key), f"duty {d.duty!r} names recipient {rid!r}, "
                                               "which is not listed")
                if d.a == d.b:
                    raise ReferenceProblem((*loc, di, "b"), f"duty {d.duty!r} has the same A and B person")

    def _check_scope(self, scope: Scope, who: str, loc: tuple[str | int, ...]) -> None:
        communities = {c.id: c for c in self.communities}
        if scope.community is not None:
            community = communities.get(scope.community)
            if community is None:
                raise ReferenceProblem((*loc, "community"),
                                       f"{who} has scope community {scope.community!r}, which is not listed")
            if scope.grid is not None and scope.grid not in {g.id for g in community.grids}:
                raise ReferenceProblem((*loc, "grid"),
                                       f"{who} has scope grid {scope.grid!r}, which {scope.community!r} lacks")
        if scope.street is not None and (self.street is None or scope.street != self.street.id):
            raise ReferenceProblem((*loc, "street"),
                                   f"{who} has scope street {scope.street!r}, which is not the site's street")


class ReferenceProblem(Exception):
    """A reference between parts of the file that does not resolve, with where it is."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def _unique(what: str, ids: list[str], loc: tuple[str | int, ...]) -> None:
    """loc is the list's path then the key: the index of the second occurrence goes between them."""
    seen: set[str] = set()
    for i, value in enumerate(ids):
        if value in seen:
            raise ReferenceProblem((*loc[:-1], i, loc[-1]), f"{what} id {value!r} appears twice")
        seen.add(value)


def apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Return raw with the CB_* environment overrides of docs/operations.md applied."""
    out = dict(raw)
    for var, path in ENV_OVERRIDES.items():
        value = env.get(var)
        if value is None:
            continue
        node = out
        for key in path[:-1]:
            child = node.get(key)
            node[key] = dict(child) if isinstance(child, dict) else {}
            node = node[key]
        node[path[-1]] = value
    return out


def parse_settings(text: str, *, source: str = "config", env: Mapping[str, str] | None = None) -> Settings:
    """Parse and validate a YAML configuration; raise ConfigError with a one-line, located reason."""
    raw = parse_yaml(text, source)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, not {type(raw).__name__}")
    raw = apply_env(raw, os.environ if env is None else env)
    try:
        return Settings.model_validate(raw)
    except ReferenceProblem as exc:
        line = locate_line(text, exc.loc)
        where = f"{source}:{line}" if line else source
        raise ConfigError(f"{where}: {'.'.join(map(str, exc.loc))}: {exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = _without_union_tags(tuple(err["loc"]))
        line = locate_line(text, loc)
        where = f"{source}:{line}" if line else source
        path = ".".join(str(p) for p in loc) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        env_hint = next((f" (from {var})" for var, p in ENV_OVERRIDES.items()
                         if p == loc[: len(p)] and var in (os.environ if env is None else env)), "")
        raise ConfigError(f"{where}: {path}: {msg}{env_hint}{more}") from None


def _without_union_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Pydantic's path names the channel type it tried (`channels.0.webhook.secret`): not a key of the file."""
    return tuple(k for i, k in enumerate(loc)
                 if not (i >= 2 and loc[i - 2] == "channels" and isinstance(loc[i - 1], int) and k in CHANNEL_CONFIGS))


def parse_yaml(text: str, source: str) -> Any:
    """The YAML document in text; ConfigError naming source:line when it is not valid YAML."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None


def locate_line(text: str, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the YAML node at loc (keys and list indexes), or of its nearest parent."""
    try:
        node: Any = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for key in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if k.value == str(key):
                    line, nxt = k.start_mark.line + 1, v
                    break
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            node = None
    return line

