"""Pushes answered ahead of the application (app/http/push.py push_first), as its own route would."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.http.push import MAX_PUSH_BYTES, push_first
from app.source_view import PushAnswer


class View:
    def __init__(self, unwritable: str | None = None) -> None:
        self.unwritable = unwritable
        self.pushed: list[tuple[str, str, str, dict[str, str], bytes]] = []
        self.sources = self

    def state_unwritable(self) -> str | None:
        return self.unwritable

    async def push(self, source_type: str, source_id: str, method: str, query: dict[str, str],
                   body: bytes) -> PushAnswer:
        self.pushed.append((source_type, source_id, method, query, body))
        return PushAnswer(200, "ok")


async def behind(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 299, "headers": []})
    await send({"type": "http.response.body", "body": b"the application"})


async def call(view: View, method: str, url: str, body: bytes = b"") -> httpx.Response:
    app = push_first(behind, view)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.request(method, url, content=body)


async def test_a_push_reaches_the_sources_with_its_query_as_sent() -> None:
    view = View()
    r = await call(view, "GET", "/ingest/onenet/mobile?msg=a%2Bb&nonce=n&signature=ab+c%3D%3D")
    assert (r.status_code, r.text) == (200, "ok")
    # '+' in a query is a space, as any web framework reads it (the OneNET adapter puts it back)
    assert view.pushed == [("onenet", "mobile", "GET", {"msg": "a+b", "nonce": "n", "signature": "ab c=="}, b"")]


@pytest.mark.parametrize("url", ["/health", "/ingest/ctwing", "/ingest/ctwing/aep/more", "/api/v1/devices"])
async def test_everything_else_goes_to_the_application(url: str) -> None:
    view = View()
    r = await call(view, "POST", url, b"{}")
    assert (r.status_code, r.text) == (299, "the application") and view.pushed == []


async def test_too_large_and_unwritable_are_refused_before_the_sources() -> None:
    view = View()
    r = await call(view, "POST", "/ingest/ctwing/aep?token=x", b"x" * (MAX_PUSH_BYTES + 1))
    assert r.status_code == 413 and view.pushed == []
    view.unwritable = "disk full"
    r = await call(view, "POST", "/ingest/ctwing/aep?token=x", b"{}")
    assert (r.status_code, r.text) == (503, "not now: disk full") and view.pushed == []
    r = await call(view, "GET", "/ingest/onenet/mobile?msg=a&nonce=b&signature=c")
    assert r.status_code == 200  # a URL check writes nothing
