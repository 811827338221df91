"""The configuration file (the site file, examples/site.yaml) and its environment overrides.

    base       the models' common base (unknown keys are errors; settings are frozen)
    service    mqtt, influx, ingest, http, dashboards: the service's own parts
    alerting   routes, inhibitions, 叫应 answering, alert timings
    place      the street, communities, grids, buildings, devices, the duty roster
    resources  shelters, supplies and vulnerable residents (CONTRACT §13)
    people     recipients, their scopes and channels, API tokens
    whistles   吹哨报到: departments and work orders
    site_file  Settings, the whole file, and the checks of references between its parts
    parsing    YAML, the CB_* environment overrides, located one-line errors
"""

from kernel.settings.alerting import AlertSettings, AnswerSettings, InhibitSettings, RouteKey, RouteSettings, TierName
from kernel.settings.cluster import ClusterSettings
from kernel.settings.location import Location
from kernel.settings.parsing import ENV_OVERRIDES, apply_env, locate_line, parse_settings, parse_yaml
from kernel.settings.people import ApiToken, Channel, Recipient, Role, Scope
from kernel.settings.place import Building, Community, DeviceEntry, Duty, Grid, Street
from kernel.settings.problems import ReferenceProblem
from kernel.settings.resources import ResilienceSettings, Shelter, Supply, Vulnerable
from kernel.settings.service import DashboardSettings, HttpSettings, InfluxSettings, IngestSettings, MqttSettings
from kernel.settings.site_file import Settings
from kernel.settings.whistles import Department, DepartmentKind, StepTargets, WhistleSettings

__all__ = [
    "ENV_OVERRIDES",
    "AlertSettings",
    "AnswerSettings",
    "ApiToken",
    "Building",
    "Channel",
    "ClusterSettings",
    "Community",
    "DashboardSettings",
    "Department",
    "DepartmentKind",
    "DeviceEntry",
    "Duty",
    "Grid",
    "HttpSettings",
    "InfluxSettings",
    "IngestSettings",
    "InhibitSettings",
    "Location",
    "MqttSettings",
    "Recipient",
    "ReferenceProblem",
    "ResilienceSettings",
    "Role",
    "RouteKey",
    "RouteSettings",
    "Scope",
    "Settings",
    "Shelter",
    "StepTargets",
    "Street",
    "Supply",
    "TierName",
    "Vulnerable",
    "WhistleSettings",
    "apply_env",
    "locate_line",
    "parse_settings",
    "parse_yaml",
]
