"""The HTTP API (docs/api.md): one router per noun, all over ServiceView."""

from __future__ import annotations

from fastapi import APIRouter

from app.auth import TokenBook
from app.view import ServiceView


def api_routers(view: ServiceView, tokens: TokenBook) -> list[APIRouter]:
    """Every router of the API, in the order they are mounted."""
    from app.http import (
        alerts,
        audit,
        call_ledger,
        communities,
        devices,
        drills,
        events,
        health,
        push,
        rejections,
        resilience,
        resources,
        silences,
    )

    return [health.router(view), devices.router(view, tokens), communities.router(view, tokens),
            alerts.router(view, tokens), silences.router(view, tokens), rejections.router(view, tokens),
            events.router(view, tokens), audit.router(view, tokens), call_ledger.router(view, tokens),
            push.router(view, tokens), resources.router(view, tokens),
            resilience.router(view, tokens), drills.router(view, tokens)]
