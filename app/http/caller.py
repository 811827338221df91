"""Who is calling the API: a FastAPI dependency over the token book, and scope checks."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import HTTPException, Request

from app.auth import Principal, TokenBook
from app.view import ActedBy


def bearer(tokens: TokenBook) -> Callable[[Request], Principal]:
    """The dependency that answers the caller of a request, or HTTP 401."""
    def caller(request: Request) -> Principal:
        return tokens.principal(request)
    return caller


def check_community(who: Principal, community: str | None) -> None:
    """HTTP 403 when a filter names a community outside the caller's scope."""
    if community is not None and who.scope is not None and who.scope.community not in (None, community):
        raise HTTPException(403, f"community {community!r} is outside your scope")


def acted_by(who: Principal, request: Request) -> ActedBy:
    """Who acts, for the audit log: the caller's role and client address."""
    return ActedBy(who.role, request.client.host if request.client is not None else None)
