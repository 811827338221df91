"""`cbrain dashboards push`: the data source, the folder and every dashboard into a running Grafana,
through its HTTP API with grafana-client; running it again overwrites, never duplicates."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import niquests
from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaTimeoutError

from dashboards.build import generate
from dashboards.influxql import DATASOURCE_TYPE, DATASOURCE_UID
from kernel.errors import CBError
from kernel.settings import Settings

FOLDER_UID = "community-brain"
FOLDER_TITLE = "社区大脑"
DATASOURCE_NAME = "community_brain"


class PushError(CBError):
    """Grafana could not be reached or refused what was sent; the message is one line."""


@dataclass(frozen=True)
class PushResult:
    """What was uploaded."""

    datasource: str  # "created" or "updated"
    folder: str
    dashboards: list[str]


def datasource_model(influx_url: str, database: str, token: str | None = None) -> dict[str, Any]:
    """The InfluxDB data source as Grafana's /api/datasources takes it (the same as deploy/grafana provisions):
    InfluxQL, with InfluxDB 2.x's or 3's token as an `Authorization: Token ...` header when there is one."""
    model: dict[str, Any] = {
        "name": DATASOURCE_NAME, "uid": DATASOURCE_UID, "type": DATASOURCE_TYPE, "access": "proxy",
        "url": influx_url, "database": database, "isDefault": True, "readOnly": False,
        "jsonData": {"version": "InfluxQL", "dbName": database, "httpMode": "POST", "timeInterval": "10s"}}
    if token:
        model["jsonData"]["httpHeaderName1"] = "Authorization"
        model["secureJsonData"] = {"httpHeaderValue1": f"Token {token}"}
    return model


def _explain(exc: Exception, url: str) -> PushError:
    if isinstance(exc, GrafanaException):
        status = exc.status_code
        if status == 401:
            return PushError(f"Grafana at {url} refused the token (401 Unauthorized): check --token")
        if status == 403:
            return PushError(f"Grafana at {url} forbids this token to change data sources, folders or dashboards "
                             "(403 Forbidden): use a service-account token with the Admin role")
        if isinstance(exc, GrafanaTimeoutError):
            return PushError(f"Grafana at {url} did not answer in time")
        text = str(getattr(exc, "message", "") or exc).splitlines()[0][:200] if str(exc) else ""
        return PushError(f"Grafana at {url} answered {status}: {text}")
    first = (str(exc) or type(exc).__name__).splitlines()[0][:200]
    return PushError(f"Grafana at {url} is unreachable: {first}")


def _missing(exc: GrafanaClientError) -> bool:
    return bool(exc.status_code == 404)


def push(url: str, token: str, *, settings: Settings | None = None, influx_url: str | None = None,
         timeout_s: float = 10.0) -> PushResult:
    """Upload the data source, the folder and every dashboard; raise PushError with a one-line reason."""
    api = GrafanaApi.from_url(url, credential=token, timeout=timeout_s)
    database = settings.influx.database if settings is not None else "community_brain"
    source_url = influx_url or (settings.influx.url if settings is not None and settings.influx.url else None) \
        or "http://influxdb:8086"
    try:
        api.client.GET("/health")  # reachability; unauthenticated in Grafana
        model = datasource_model(source_url, database, settings.influx.token if settings is not None else None)
        try:
            api.datasource.get_datasource_by_uid(DATASOURCE_UID)
        except GrafanaClientError as exc:
            if not _missing(exc):
                raise
            api.datasource.create_datasource(model)
            ds_done = "created"
        else:
            api.datasource.update_datasource_by_uid(DATASOURCE_UID, model)
            ds_done = "updated"
        try:
            api.folder.get_folder(FOLDER_UID)
        except GrafanaClientError as exc:
            if not _missing(exc):
                raise
            api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
            folder_done = "created"
        else:
            api.folder.update_folder(FOLDER_UID, title=FOLDER_TITLE, overwrite=True)
            folder_done = "updated"
        uploaded = []
        for _path, text in generate(settings).items():
            dashboard = json.loads(text)
            dashboard.pop("id", None)  # Grafana finds the dashboard by uid; an id would have to match its own
            api.dashboard.update_dashboard({"dashboard": dashboard, "folderUid": FOLDER_UID, "overwrite": True,
                                            "message": "cbrain dashboards push"})
            uploaded.append(str(dashboard["uid"]))
    except (GrafanaException, niquests.exceptions.RequestException, OSError) as exc:
        raise _explain(exc, url) from None
    return PushResult(ds_done, folder_done, uploaded)
