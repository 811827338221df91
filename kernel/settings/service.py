"""The settings of the service's own parts: the broker, InfluxDB, ingest, the HTTP listener, the dashboards."""

from __future__ import annotations

from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator, model_validator

from kernel.ids import Identifier
from kernel.settings.base import _Model


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
    """InfluxDB 1.x, 2.x or 3 (docs/storage.md); no url means the embedded SQLite store.

    Points go to the v1 API's `/write` (db, rp), or with `bucket` to 2.x's `/api/v2/write` (org,
    bucket); queries are InfluxQL through `/query` on every version."""

    url: str | None = "http://127.0.0.1:8086"
    database: str = Field(default="community_brain", pattern=r"^[A-Za-z0-9_-]+$")
    username: str | None = None
    password: str | None = None
    retention_policy: str | None = None
    create_database: bool = True
    timeout_s: float = Field(default=10.0, gt=0)
    # An API token (2.x, 3), sent as `Authorization: Token ...`; it wins over username/password.
    token: str | None = Field(default=None, pattern=r"^\S+$")
    # Which server: "auto" asks /ping and /health; it decides whether CREATE DATABASE is sent (1.x
    # only) and what an error tells to create (a 2.x bucket or DBRP mapping).
    flavor: Literal["auto", "v1", "v2", "v3"] = "auto"
    # InfluxDB 2.x's API: with bucket set, points go to /api/v2/write?org=&bucket= (org required).
    org: str | None = Field(default=None, min_length=1)
    bucket: str | None = Field(default=None, min_length=1)

    @field_validator("token", "org", "bucket", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _v2_api(self) -> InfluxSettings:
        if self.bucket is not None:
            if self.org is None:
                raise ValueError("bucket (InfluxDB 2.x's /api/v2/write) needs org")
            if self.token is None:
                raise ValueError("bucket (InfluxDB 2.x's /api/v2/write) needs token")
            if self.flavor in ("v1", "v3"):
                raise ValueError(f"bucket is InfluxDB 2.x's write API, not flavor {self.flavor}")
        return self

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
    # most every flush_interval_s; below it, at most every commit_spacing_s. A reading that changes
    # an alert does not wait for either (push_commit_spacing_s).
    flush_interval_s: float = Field(default=0.025, gt=0, le=60)
    batch_above_rate: float = Field(default=2000.0, ge=0)
    # Below that rate, commits are at least this far apart. A reading that changes an alert does not
    # wait for it (push_commit_spacing_s); at a light load each commit costs ~1 ms of CPU whatever
    # it holds (bench/README.md, "Measured 2026-12-07, late night"), so the default is the flush
    # interval's: 40 transactions a second at most, not one for every few readings.
    commit_spacing_s: float = Field(default=0.025, ge=0, le=1)
    # While a batch holds a platform's HTTP push, whose sender waits for the commit (one push at a
    # time per connection), or a reading that changed a rule's level (its alert waits for the
    # commit), commits are at most this far apart whatever the rate.
    push_commit_spacing_s: float = Field(default=0.004, ge=0, le=1)
    # A write to the reading store gathers for up to this long (readings only; alerts do not wait).
    store_gather_s: float = Field(default=0.1, ge=0, le=10)
    # Under load (more than a light load's points wait after store_gather_s), a write to InfluxDB
    # goes on gathering until this many points wait (at most batch_size) or its oldest reading has
    # waited store_gather_max_s: influxd spends about half the CPU per point on writes of 5,000
    # points as on writes of 500 (bench/influx_batches.py).
    store_write_points: int = Field(default=5000, ge=1, le=100_000)
    store_gather_max_s: float = Field(default=0.5, ge=0, le=60)
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
    # Free space on state_dir's filesystem (docs/operations.md, "Disk"): below disk_low_free_mb the
    # service raises service.disk_low; below disk_pause_free_mb it stops taking readings (the broker
    # keeps them) and raises service.disk_full. None: the pause at the larger of 256 MB and 5 % of
    # the filesystem, but at most 10 % of it, and "low" at twice the pause. 0: no pause before a
    # write fails. disk_reserve_mb is kept in state_dir as a file, given up when the disk is full
    # so that the alert about it can still be written.
    disk_pause_free_mb: float | None = Field(default=None, ge=0)
    disk_low_free_mb: float | None = Field(default=None, ge=0)
    disk_reserve_mb: float = Field(default=4.0, ge=0, le=1024)
    # The CPU slice the service's threads ask Linux (6.12 and later) for: a woken thread with a
    # shorter slice gets a busy core sooner, with the same share of the CPU (docs/operations.md,
    # "Configuration"). 0: the kernel's own (0.75 ms x (1 + log2 of the cores)); otherwise 0.1 to 100 ms.
    cpu_slice_ms: float = Field(default=0.3, ge=0, le=100)

    @field_validator("cpu_slice_ms")
    @classmethod
    def _cpu_slice(cls, value: float) -> float:
        if 0 < value < 0.1:
            raise ValueError("must be 0 (the kernel's own slice) or 0.1 to 100 ms, the range Linux takes")
        return value

    @model_validator(mode="after")
    def _disk_marks(self) -> IngestSettings:
        if (self.disk_low_free_mb is not None and self.disk_pause_free_mb is not None
                and self.disk_low_free_mb < self.disk_pause_free_mb):
            raise ValueError("disk_low_free_mb must be at least disk_pause_free_mb (the warning comes first)")
        return self


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
