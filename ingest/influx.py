"""The InfluxDB reading store, through the v1 HTTP API (`/write` line protocol, `/query` InfluxQL).

InfluxDB 1.x, 2.x (v1 compatibility) and 3 all serve it.
"""

from __future__ import annotations

from typing import Any

import httpx

from ingest.lineproto import encode_batch
from kernel.errors import BadPointError, StoreError
from kernel.reading import FieldValue, Point
from kernel.settings import InfluxSettings


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
        auth = (settings.username, settings.password or "") if settings.username else None
        self.client = httpx.AsyncClient(base_url=settings.url, timeout=settings.timeout_s, auth=auth)
        self.params = {"db": settings.database, "precision": "ns"}
        if settings.retention_policy:
            self.params["rp"] = settings.retention_policy
        self._db_checked = False

    async def close(self) -> None:
        """Release connections."""
        await self.client.aclose()

    async def _ensure_database(self) -> None:
        if self._db_checked or not self.settings.create_database:
            return
        # CREATE DATABASE is idempotent; a server that refuses it (v1 compatibility APIs) is told so below.
        r = await self.client.post("/query", data={"q": f'CREATE DATABASE "{self.settings.database}"'})
        if r.status_code < 300:
            self._db_checked = True

    async def write(self, points: list[Point]) -> None:
        """Write one batch; raise StoreError (retryable or not) or BadPointError on HTTP 400."""
        await self.write_body(encode_batch(points))

    async def write_body(self, body: bytes) -> None:
        """Write a body of line protocol, as write() does."""
        try:
            await self._ensure_database()
            r = await self.client.post("/write", params=self.params, content=body)
        except httpx.TimeoutException as exc:
            raise StoreError(f"InfluxDB timed out: {type(exc).__name__}", retryable=True) from exc
        except httpx.HTTPError as exc:
            raise StoreError(f"InfluxDB unreachable: {exc or type(exc).__name__}", retryable=True) from exc
        if r.status_code < 300:
            return
        text = r.text.strip()[:300]
        if r.status_code == 400:
            raise BadPointError(text)
        if r.status_code == 404:
            self._db_checked = False
            raise StoreError(f"InfluxDB database {self.settings.database!r} not found: {text}",
                             retryable=True, status=404)
        if r.status_code in (401, 403):
            raise StoreError(f"InfluxDB refused our credentials ({r.status_code}): {text}",
                             retryable=True, status=r.status_code)
        raise StoreError(f"InfluxDB answered {r.status_code}: {text}", retryable=True, status=r.status_code,
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
        """The series (name, tags, columns, values; times in ns) an InfluxQL SELECT answers, through /query."""
        params = {"db": self.settings.database, "q": q, "epoch": "ns"}
        if self.settings.retention_policy:
            params["rp"] = self.settings.retention_policy
        try:
            r = await self.client.get("/query", params=params)
        except httpx.HTTPError as exc:
            raise StoreError(f"InfluxDB unreachable: {exc or type(exc).__name__}", retryable=True) from exc
        if r.status_code >= 300:
            raise StoreError(f"InfluxDB answered {r.status_code}: {r.text.strip()[:300]}", retryable=True,
                             status=r.status_code)
        return [s for result in r.json().get("results", []) for s in result.get("series", [])]

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
