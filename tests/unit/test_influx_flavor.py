"""Which InfluxDB answers (from /ping and /health as 1.x, 2.x and 3 answer), the influx settings for
2.x and 3, and what the store tells when a token, bucket or DBRP mapping is missing."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from ingest.influx import InfluxStore
from ingest.influx_flavor import bucket_for, detect, flavor_of_health, flavor_of_version, missing_mapping
from kernel.errors import ConfigError, StoreError
from kernel.settings import InfluxSettings, parse_settings


@pytest.mark.parametrize(("version", "build", "flavor"), [
    ("1.8.10", "OSS", "v1"), ("1.6.7~rc0", "OSS", "v1"), ("v2.7.12", "OSS", "v2"), ("2.0.0", None, "v2"),
    ("3.10.1", "Core", "v3"), ("3.2.0", "Enterprise", "v3"), (None, "Core", "v3"), ("dev", "OSS", None),
    (None, None, None),
])
def test_flavor_from_the_version_header(version: str | None, build: str | None, flavor: str | None) -> None:
    assert flavor_of_version(version, build) == flavor


def test_flavor_from_health() -> None:
    v2 = json.dumps({"name": "influxdb", "status": "pass", "version": "v2.7.12", "commit": "x"}).encode()
    v18 = json.dumps({"name": "influxdb", "status": "pass", "version": "1.8.10"}).encode()
    assert flavor_of_health(200, "application/json; charset=utf-8", v2) == "v2"
    assert flavor_of_health(200, "application/json", v18) == "v1"
    assert flavor_of_health(200, "text/plain; charset=utf-8", b"OK") == "v3"
    assert flavor_of_health(404, "text/plain", b"404 page not found") is None
    assert flavor_of_health(200, "text/html", b"<html>") is None


def serve(answer: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url="http://influx.test", transport=httpx.MockTransport(answer))


@pytest.mark.parametrize(("answer", "expected"), [
    (lambda r: httpx.Response(204, headers={"X-Influxdb-Version": "1.8.10", "X-Influxdb-Build": "OSS"}),
     ("v1", "1.8.10")),
    (lambda r: httpx.Response(204, headers={"X-Influxdb-Version": "v2.7.12", "X-Influxdb-Build": "OSS"}),
     ("v2", "v2.7.12")),
    (lambda r: httpx.Response(200, headers={"X-Influxdb-Version": "3.10.1", "X-Influxdb-Build": "Core"},
                              json={"version": "3.10.1", "product_name": "InfluxDB 3 Core"}), ("v3", "3.10.1")),
    # 3 asks for its token on /ping too; 1.x and 2.x never do.
    (lambda r: httpx.Response(401, json={"error": "the request was not authenticated"}), ("v3", None)),
    # A proxy that drops the headers: /health's version tells.
    (lambda r: httpx.Response(204) if r.url.path == "/ping" else httpx.Response(
        200, json={"name": "influxdb", "status": "pass", "version": "v2.7.12"}), ("v2", "v2.7.12")),
    (lambda r: httpx.Response(204) if r.url.path == "/ping" else httpx.Response(404), (None, None)),
])
async def test_detect(answer: Callable[[httpx.Request], httpx.Response],
                      expected: tuple[str | None, str | None]) -> None:
    async with serve(answer) as client:
        assert await detect(client) == expected


def test_influx_settings_for_2x_and_3() -> None:
    s = parse_settings("", env={"CB_INFLUX_TOKEN": "tok", "CB_INFLUX_ORG": "city", "CB_INFLUX_BUCKET": "cb",
                                "CB_INFLUX_FLAVOR": "v2"}).influx
    assert (s.token, s.org, s.bucket, s.flavor) == ("tok", "city", "cb", "v2")
    assert parse_settings("", env={}).influx.flavor == "auto"
    for env, says in [({"CB_INFLUX_BUCKET": "cb", "CB_INFLUX_TOKEN": "t"}, "needs org"),
                      ({"CB_INFLUX_BUCKET": "cb", "CB_INFLUX_ORG": "o"}, "needs token"),
                      ({"CB_INFLUX_BUCKET": "cb", "CB_INFLUX_ORG": "o", "CB_INFLUX_TOKEN": "t",
                        "CB_INFLUX_FLAVOR": "v3"}, "not flavor v3"),
                      ({"CB_INFLUX_FLAVOR": "v4"}, "flavor"),
                      ({"CB_INFLUX_TOKEN": "two words"}, "token")]:
        with pytest.raises(ConfigError, match=says):
            parse_settings("", env=env)


def test_the_bucket_a_database_maps_to() -> None:
    assert bucket_for(InfluxSettings()) == "community_brain"
    assert bucket_for(InfluxSettings(retention_policy="autogen")) == "community_brain"
    assert bucket_for(InfluxSettings(retention_policy="year")) == "community_brain/year"
    said = missing_mapping(InfluxSettings(org="city"), "community_brain", None, "no dbrp mapping found")
    assert "`influx bucket create --name community_brain --org city`" in said
    assert "`influx v1 dbrp create --db community_brain --rp autogen --bucket-id <id> --default --org city`" in said


async def test_where_points_go_is_fixed_at_construction() -> None:
    v1 = InfluxStore(InfluxSettings(username="cb", password="pw", retention_policy="autogen"))
    assert (v1.write_path, v1.params) == ("/write", {"db": "community_brain", "precision": "ns", "rp": "autogen"})
    assert v1.client.auth is not None and "Authorization" not in v1.client.headers
    v2 = InfluxStore(InfluxSettings(token="tok", org="city", bucket="cb/year"))
    assert (v2.write_path, v2.params) == ("/api/v2/write", {"org": "city", "bucket": "cb/year", "precision": "ns"})
    assert v2.client.headers["Authorization"] == "Token tok"
    assert v2.query_params == {"db": "cb", "rp": "year", "epoch": "ns"}
    await v1.close()
    await v2.close()


def v2_server(requests: list[httpx.Request]) -> Callable[[httpx.Request], httpx.Response]:
    """InfluxDB 2.x without a bucket or DBRP mapping for anything."""
    def answer(r: httpx.Request) -> httpx.Response:
        requests.append(r)
        if r.url.path == "/ping":
            return httpx.Response(204, headers={"X-Influxdb-Version": "v2.7.12", "X-Influxdb-Build": "OSS"})
        if r.headers.get("Authorization") != "Token tok":
            return httpx.Response(401, json={"code": "unauthorized", "message": "unauthorized access"})
        if r.url.path == "/write":
            return httpx.Response(404, json={"code": "not found", "message": "no dbrp mapping found"})
        return httpx.Response(200, json={"results": [{"statement_id": 0, "error": "database not found: cb"}]})
    return answer


async def test_2x_without_a_mapping_names_it_and_sends_no_create_database() -> None:
    requests: list[httpx.Request] = []
    store = InfluxStore(InfluxSettings(url="http://influx.test", database="cb", token="tok"))
    store.client = serve(v2_server(requests))
    store.client.headers["Authorization"] = "Token tok"
    for _ in range(2):
        with pytest.raises(StoreError) as err:
            await store.write_body(b"m f=1 1")
        assert err.value.status == 404
        assert str(err.value).startswith("InfluxDB 2.x has no bucket or DBRP mapping for database 'cb'")
        assert "influx v1 dbrp create --db cb --rp autogen" in str(err.value)
    with pytest.raises(StoreError, match="database not found: cb"):
        await store.select('SELECT * FROM "m"')
    assert [r.url.path for r in requests] == ["/ping", "/write", "/write", "/query"]  # asked once; no CREATE
    await store.close()


async def test_a_refused_token_names_the_setting() -> None:
    store = InfluxStore(InfluxSettings(url="http://influx.test", database="cb", token="wrong", flavor="v3"))
    store.client = serve(lambda r: httpx.Response(401, json={"error": "the request was not authenticated"}))
    with pytest.raises(StoreError) as err:
        await store.write_body(b"m f=1 1")
    assert err.value.status == 401
    assert "refused influx.token (CB_INFLUX_TOKEN)" in str(err.value)
    assert "influxdb3 create token --admin" in str(err.value)
    await store.close()
