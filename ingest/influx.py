"""The InfluxDB reading store: points as line protocol to the v1 API's `/write` (1.x, 2.x's v1
compatibility, 3) or to 2.x's `/api/v2/write` (influx.bucket), queries as InfluxQL through `/query`.

Which server it is (influx.flavor, or asked once: ingest/influx_flavor.py) decides whether the
database is made with CREATE DATABASE (1.x only) and what an error tells the operator to create.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from ingest.influx_flavor import (
    Flavor,
    check_at_start,
    detect,
    missing_bucket,
    missing_mapping,
    query_db_rp,
    refused_credentials,
    server_said,
)
from ingest.lineproto import encode_batch
from kernel.errors import BadPointError, StoreError
from kernel.reading import FieldValue, Point
from kernel.settings import InfluxSettings

log = logging.getLogger("cbrain.ingest")
# A statement's error when InfluxQL names a database (1.x, 3) or db/rp (2.x's v1 API) the server lacks.
NO_DATABASE = ("database not found", "retention policy not found", "default retention policy not set")


def retry_after_s(response: httpx.Response) -> float | None:
    """Seconds a server asked us to wait, when it said so in seconds."""
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class InfluxStore:
    """Writes batches of points; raises StoreError that says whether a retry can help."""

    name = "influxdb"

    def __init__(self, settings: InfluxSettings) -> None:
        assert settings.url is not None
        self.settings = settings
        self.url = settings.url
        # A token (2.x, 3) as InfluxDB documents it, `Authorization: Token ...`; else a 1.x user.
        headers = {"Authorization": f"Token {settings.token}"} if settings.token else None
        auth = (settings.username, settings.password or "") if settings.username and not settings.token else None
        self.client = httpx.AsyncClient(base_url=settings.url, timeout=settings.timeout_s, auth=auth, headers=headers)
        # Where points go, fixed here: a write only picks these up.
        self.write_path = "/write"
        self.params = {"db": settings.database, "precision": "ns"}
        if settings.bucket is not None:
            assert settings.org is not None
            self.write_path = "/api/v2/write"
            self.params = {"org": settings.org, "bucket": settings.bucket, "precision": "ns"}
        elif settings.retention_policy:
            self.params["rp"] = settings.retention_policy
        self.query_db, self.query_rp = query_db_rp(settings)
        self.query_params = {"db": self.query_db, "epoch": "ns"}
        if self.query_rp:
            self.query_params["rp"] = self.query_rp
        self.flavor: Flavor | None = None if settings.flavor == "auto" else settings.flavor
        self.version: str | None = None
        self._prepared = False
        self._preparing = asyncio.Lock()

    async def close(self) -> None:
        """Release connections."""
        await self.client.aclose()

    async def prepare(self) -> None:
        """Before the first write: which server this is (unless influx.flavor says), and on 1.x the
        database. Raises httpx.HTTPError when the server does not answer."""
        async with self._preparing:  # the writer, the pages and the service's own points may all be first
            if not self._prepared:
                await self._prepare()

    async def _prepare(self) -> None:
        if self.settings.flavor == "auto" and self.flavor is None:
            self.flavor, self.version = await detect(self.client)
            if self.flavor is not None:
                log.info("InfluxDB %s at %s (%s)", self.version or "?", self.url, self.flavor)
        if self.flavor in (None, "v1") and self.settings.create_database and self.settings.bucket is None:
            # CREATE DATABASE is idempotent; 2.x has none (a bucket or DBRP mapping), 3 makes a
            # database at its first write. A server that refuses it is asked again at the next write.
            r = await self.client.post("/query", data={"q": f'CREATE DATABASE "{self.settings.database}"'})
            if r.status_code >= 300:
                return
        self._prepared = True

    async def check_at_start(self) -> StoreError | None:
        """What a write would meet, asked at start where the server can tell (2.x's buckets and DBRP
        mappings); None when nothing is known to be missing or the server does not answer yet."""
        try:
            await self.prepare()
        except httpx.HTTPError:
            return None
        return await check_at_start(self.settings, self.flavor)

    async def write(self, points: list[Point]) -> None:
        """Write one batch; raise StoreError (retryable or not) or BadPointError on HTTP 400."""
        await self.write_body(encode_batch(points))

    async def write_body(self, body: bytes) -> None:
        """Write a body of line protocol, as write() does."""
        try:
            if not self._prepared:
                await self.prepare()
            r = await self.client.post(self.write_path, params=self.params, content=body)
        except httpx.TimeoutException as exc:
            raise StoreError(f"InfluxDB timed out: {type(exc).__name__}", retryable=True) from exc
        except httpx.HTTPError as exc:
            raise StoreError(f"InfluxDB unreachable: {exc or type(exc).__name__}", retryable=True) from exc
        if r.status_code >= 300:
            raise self._write_error(r)

    def _write_error(self, r: httpx.Response) -> StoreError:
        """The error a refused write raises: one line, the same for each retry, naming what to fix."""
        text = r.text.strip()[:300]
        if r.status_code == 400:
            return BadPointError(text)
        said = server_said(text)
        if r.status_code == 404:
            if self.settings.bucket is not None:
                return StoreError(missing_bucket(self.settings, said), retryable=True, status=404)
            if self.flavor == "v2" or "dbrp" in said:
                return StoreError(missing_mapping(self.settings, self.settings.database,
                                                  self.settings.retention_policy, said), retryable=True, status=404)
            self._prepared = False  # 1.x: the database was dropped; CREATE DATABASE again
            return StoreError(f"InfluxDB database {self.settings.database!r} not found: {text}",
                              retryable=True, status=404)
        if r.status_code in (401, 403):
            return StoreError(refused_credentials(self.settings, self.flavor, r.status_code, said),
                              retryable=True, status=r.status_code)
        return StoreError(f"InfluxDB answered {r.status_code}: {text}", retryable=True, status=r.status_code,
                          retry_after_s=retry_after_s(r))

    async def recent(self, measurement: str, community: str, device_id: str, since_ns: int,
                     limit: int) -> list[tuple[int, dict[str, FieldValue]]]:
        """One device's readings since since_ns (the latest `limit` of them), oldest first, through /query."""
        q = (f'SELECT * FROM "{_ident(measurement)}" WHERE "community" = \'{_literal(community)}\' '
             f'AND "device_id" = \'{_literal(device_id)}\' AND time >= {int(since_ns)} '
             f'ORDER BY time DESC LIMIT {int(limit)}')
        out: list[tuple[int, dict[str, FieldValue]]] = []
        for series in await self.select(q):
            columns = series["columns"]
            for values in series["values"]:
                row = dict(zip(columns, values, strict=True))
                ts = int(row.pop("time"))
                fields = {k: v for k, v in row.items() if k not in _TAGS and v is not None}
                out.append((ts, fields))
        out.sort(key=lambda x: x[0])
        return out

    async def select(self, q: str) -> list[dict[str, Any]]:
        """The series (name, tags, columns, values; times in ns) an InfluxQL SELECT answers, through /query.

        A database not made yet is no series (1.x makes it at the first write, 3 at its first
        point); 2.x without a bucket or DBRP mapping for it raises StoreError naming what to create."""
        try:
            if not self._prepared:
                await self.prepare()
            r = await self.client.get("/query", params={**self.query_params, "q": q})
        except httpx.HTTPError as exc:
            raise StoreError(f"InfluxDB unreachable: {exc or type(exc).__name__}", retryable=True) from exc
        if r.status_code >= 300:
            said = server_said(r.text)
            if r.status_code in (401, 403):
                raise StoreError(refused_credentials(self.settings, self.flavor, r.status_code, said),
                                 retryable=True, status=r.status_code)
            if r.status_code == 404 and self.flavor == "v3" and "not found" in said:
                return []
            raise StoreError(f"InfluxDB answered {r.status_code}: {r.text.strip()[:300]}", retryable=True,
                             status=r.status_code)
        series: list[dict[str, Any]] = []
        for result in r.json().get("results", []):
            error = result.get("error")
            if isinstance(error, str) and error.startswith(NO_DATABASE):
                if self.flavor == "v2":
                    raise StoreError(missing_mapping(self.settings, self.query_db, self.query_rp, error),
                                     retryable=True, status=404)
                continue
            series.extend(result.get("series", []))
        return series

    async def ping(self) -> bool:
        """Whether the server answers."""
        try:
            r = await self.client.get("/ping")
        except httpx.HTTPError:
            return False
        return r.status_code < 300


_TAGS = frozenset(("community", "device_id", "building", "grid"))


def _ident(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')


def _literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")
