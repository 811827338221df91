"""The whole configuration file, and the checks of the references between its parts."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import PrivateAttr, ValidationInfo, model_validator

from kernel.settings.alerting import AlertSettings, RouteSettings
from kernel.settings.base import _Model
from kernel.settings.cluster import ClusterSettings
from kernel.settings.people import ApiToken, Recipient, Scope
from kernel.settings.place import Community, DeviceEntry, Duty, Street
from kernel.settings.problems import ReferenceProblem, _unique
from kernel.settings.profiles import Profile
from kernel.settings.resources import ResilienceSettings, ResourceSettings, check_resources
from kernel.settings.service import DashboardSettings, HttpSettings, InfluxSettings, IngestSettings, MqttSettings
from kernel.settings.sources import check_sources
from kernel.settings.whistles import Department, WhistleSettings
from kernel.sources import AnySource, SourceConfig, TimeZone


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
    # Shelters, supplies and door knocks (CONTRACT §13): their timings.
    resources: ResourceSettings = ResourceSettings()
    # The resilience scorecard (docs/resilience.md): how often its history is written.
    resilience: ResilienceSettings = ResilienceSettings()
    # Devices that report through other systems (docs/devices.md): the systems, and the profiles that
    # map their messages (here, in `profile_files`, or built in).
    sources: list[AnySource] = []
    profiles: list[Profile] = []
    profile_files: list[str] = []
    # The time zone of local times without an offset (Tasmota's `Time`), unless a source names its own.
    timezone: TimeZone = "Asia/Shanghai"
    # Several instances over a NATS JetStream cluster (CONTRACT §12); none: one process holds the site.
    cluster: ClusterSettings | None = None
    # The built-in profiles (app/defaults/profiles), given by whoever reads the file.
    _library: dict[str, Profile] = PrivateAttr(default_factory=dict)

    def all_profiles(self) -> dict[str, Profile]:
        """Every profile by id: the built-in ones, and the site's own over them."""
        return {**self._library, **{p.id: p for p in self.profiles}}

    def source(self, source_id: str) -> SourceConfig | None:
        """The source of that id, or None."""
        return next((s for s in self.sources if s.id == source_id), None)

    @model_validator(mode="after")
    def _refs(self, info: ValidationInfo) -> Settings:
        library = (info.context or {}).get("library") if info is not None else None
        if library:
            self._library = dict(library)
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
        check_resources(self)
        check_sources(self.sources, self.profiles, self.all_profiles(), self.devices)
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
