"""GET /health and GET /metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from app.view import ServiceView


def router(view: ServiceView) -> APIRouter:
    """Health and metrics (no token: a load balancer and Prometheus ask)."""
    r = APIRouter()

    @r.get("/health", responses={503: {"description": "A part is down: the body names it"}},
           summary="State of broker, store and channels; 503 while a part is down")
    async def health() -> JSONResponse:
        ok, body = view.health()
        return JSONResponse(body, status_code=200 if ok else 503)

    @r.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(view.metrics_text(), media_type="text/plain; version=0.0.4")

    return r
