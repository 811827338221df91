"""Which InfluxDB answers (1.x, 2.x or 3), and what to tell an operator whose server lacks a database,
bucket, DBRP mapping or token.

What each version answers (their sources: 1.8 services/httpd/handler.go, 2.7 http/handler.go,
http/legacy/ping_handler.go and http/health.go, 3 Core influxdb3_server/src/http.rs):

    /ping    1.x  204, X-Influxdb-Version: 1.8.10, X-Influxdb-Build: OSS
             2.x  204, X-Influxdb-Version: v2.7.12, X-Influxdb-Build: OSS (no token needed)
             3    200, X-Influxdb-Version: 3.10.1, X-Influxdb-Build: Core (or Enterprise), a JSON
                  body {"version", "revision", "process_id", "product_name"}; a token is needed
                  unless the server runs with --disable-authz ping (so a 401 there is 3's)
    /health  1.8  200 {"name": "influxdb", "status": "pass", "version": "1.8.10", ...} (1.7 and
                  older: 404)
             2.x  200 {"name": "influxdb", "status": "pass", "version": "v2.7.12", "commit": ...}
             3    200 "OK" (text/plain), behind the token as /ping is
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Literal

import httpx
import orjson

from kernel.errors import StoreError
from kernel.settings import InfluxSettings

log = logging.getLogger("cbrain.ingest")

Flavor = Literal["v1", "v2", "v3"]
_MAJOR = re.compile(r"^v?(\d+)\.")


def flavor_of_version(version: str | None, build: str | None = None) -> Flavor | None:
    """The flavor a version string (X-Influxdb-Version, /health's "version") and build name tell."""
    if build and build.strip().lower() in ("core", "enterprise"):
        return "v3"
    m = _MAJOR.match((version or "").strip())
    if m is None:
        return None
    return {"1": "v1", "2": "v2", "3": "v3"}.get(m.group(1))  # type: ignore[return-value]


def flavor_of_health(status: int, content_type: str, body: bytes) -> Flavor | None:
    """The flavor a /health answer tells: 1.8's and 2.x's JSON carry a version, 3's is a plain "OK"."""
    if status != 200:
        return None
    if content_type.startswith("text/plain") and body.strip() == b"OK":
        return "v3"
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return flavor_of_version(str(doc.get("version", ""))) if isinstance(doc, dict) else None


async def detect(client: httpx.AsyncClient) -> tuple[Flavor | None, str | None]:
    """(flavor, version) from /ping, else /health; (None, None) when the server answered neither
    in a way that tells. Raises httpx.HTTPError when it does not answer at all."""
    r = await client.get("/ping")
    if r.status_code == 401:
        return "v3", None  # 1.x and 2.x answer /ping to anyone; 3 asks for its token
    version = r.headers.get("X-Influxdb-Version")
    flavor = flavor_of_version(version, r.headers.get("X-Influxdb-Build")) if r.status_code < 300 else None
    if flavor is not None:
        return flavor, version
    h = await client.get("/health")
    flavor = flavor_of_health(h.status_code, h.headers.get("content-type", ""), h.content)
    if flavor is not None and flavor != "v3":
        version = str(orjson.loads(h.content).get("version"))
    return flavor, version if flavor else None


def bucket_for(settings: InfluxSettings) -> str:
    """The 2.x bucket whose virtual DBRP mapping (2.1 and later) serves the v1 API's db and rp:
    `db` for rp autogen (or none), `db/rp` otherwise."""
    rp = settings.retention_policy
    return settings.database if rp in (None, "autogen") else f"{settings.database}/{rp}"


def query_db_rp(settings: InfluxSettings) -> tuple[str, str | None]:
    """The db and rp InfluxQL queries name: the database, or with 2.x's API the bucket's own mapping."""
    if settings.bucket is None:
        return settings.database, settings.retention_policy
    db, _, rp = settings.bucket.partition("/")
    return db, rp or None


def server_said(text: str) -> str:
    """What an error body says: the "message" of 2.x's JSON errors, the "error" of 1.x's and 3's, or the text."""
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text.strip()[:300]
    if isinstance(doc, dict):
        said = doc.get("message") or doc.get("error")
        if isinstance(said, str):
            return said.strip()[:300]
    return text.strip()[:300]


def missing_mapping(settings: InfluxSettings, db: str, rp: str | None, said: str) -> str:
    """One line: InfluxDB 2.x has no bucket or DBRP mapping for db/rp, and the commands that make one."""
    rp = rp or "autogen"
    org = f" --org {settings.org}" if settings.org else ""
    bucket = db if rp == "autogen" else f"{db}/{rp}"
    return (f"InfluxDB 2.x has no bucket or DBRP mapping for database {db!r}, retention policy {rp!r} ({said}):"
            f" create a bucket of that name, `influx bucket create --name {bucket}{org}`, or map an existing"
            f" bucket, `influx v1 dbrp create --db {db} --rp {rp} --bucket-id <id> --default{org}`")


def missing_bucket(settings: InfluxSettings, said: str) -> str:
    """One line: 2.x's /api/v2/write found no such organization or bucket, and what to do."""
    if "organization" in said:
        return (f"InfluxDB 2.x has no organization {settings.org!r} ({said}): set influx.org (CB_INFLUX_ORG)"
                " to one `influx org list` shows")
    return (f"InfluxDB 2.x has no bucket {settings.bucket!r} in organization {settings.org!r} ({said}): create it,"
            f" `influx bucket create --name {settings.bucket} --org {settings.org}`")


def refused_credentials(settings: InfluxSettings, flavor: Flavor | None, status: int, said: str) -> str:
    """One line: the server refused our credentials (or wanted some), and which setting to fix."""
    if settings.token is not None:
        what = "refused influx.token (CB_INFLUX_TOKEN)"
    elif settings.username is not None:
        what = f"refused user {settings.username!r}"
    else:
        what = "asks for credentials"
    if flavor is None and settings.token is None and settings.username is None:
        fix = "influx.token (CB_INFLUX_TOKEN) for InfluxDB 2.x or 3, or username/password for 1.x"
    elif flavor == "v3":
        fix = "a token from `influxdb3 create token --admin` in influx.token"
    elif flavor == "v2" or settings.bucket is not None:
        fix = ("an API token with write access to the bucket (`influx auth create --write-bucket <id>"
               " --read-bucket <id>`) in influx.token, or a v1 user (`influx v1 auth create`) in username/password")
    else:
        fix = "username/password of a user with write access to the database"
    return f"InfluxDB {what} ({status}: {said}): give it {fix}"


def check_v2_setup(settings: InfluxSettings) -> tuple[int, str] | None:
    """Ask InfluxDB 2.x (through influxdb-client) whether what the service writes to exists; None if it
    does, else the HTTP status a write would meet and one line naming what to create. Blocking: run
    it in a thread, once at start.

    influxdb-client's API is synchronous (urllib3); the points themselves keep to the service's own
    measured writer (ingest/influx.py), so the library costs nothing per write."""
    from influxdb_client import InfluxDBClient
    from influxdb_client.rest import ApiException
    from influxdb_client.service.dbr_ps_service import DBRPsService

    assert settings.url is not None and settings.token is not None
    client = InfluxDBClient(url=settings.url, token=settings.token, org=settings.org,
                            timeout=int(settings.timeout_s * 1000))
    try:
        if settings.bucket is not None:
            if client.buckets_api().find_bucket_by_name(settings.bucket) is None:
                return 404, missing_bucket(settings, f'bucket "{settings.bucket}" not found')
            return None
        if client.buckets_api().find_bucket_by_name(bucket_for(settings)) is not None:
            return None  # its virtual DBRP mapping serves database/rp
        if settings.org is None:
            return None  # explicit DBRP mappings are listed per organization; the writes will tell
        db, rp = settings.database, settings.retention_policy
        found = DBRPsService(client.api_client).get_dbr_ps(
            org=settings.org, db=db, **({"rp": rp} if rp else {"default": True}))
        return None if found.content else (404, missing_mapping(settings, db, rp, "no dbrp mapping found"))
    except ApiException as exc:
        said = server_said(str(exc.body or exc.reason))
        if exc.status in (401, 403):
            return exc.status, refused_credentials(settings, "v2", exc.status, said)
        return exc.status, f"InfluxDB 2.x answered {exc.status} to the check of buckets and DBRP mappings: {said}"
    finally:
        client.close()


async def check_at_start(settings: InfluxSettings, flavor: Flavor | None) -> StoreError | None:
    """What is missing on the server for the service's writes, as far as can be told before one:
    2.x's buckets and DBRP mappings (with a token), through influxdb-client in a thread. The error
    says what a failed write would (the writer logs it once, not again for each retry)."""
    if flavor != "v2" or settings.token is None:
        return None
    try:
        problem = await asyncio.to_thread(check_v2_setup, settings)
    except Exception as exc:  # the check only advises; the writes report what really fails
        log.warning("could not check InfluxDB 2.x's buckets and DBRP mappings: %s: %s", type(exc).__name__, exc)
        return None
    if problem is None:
        return None
    return StoreError(problem[1], retryable=True, status=problem[0])
