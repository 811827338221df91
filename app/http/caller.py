"""Who is calling the API: a FastAPI dependency over the token book."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

from app.auth import Principal, TokenBook


def bearer(tokens: TokenBook) -> Callable[[Request], Principal]:
    """The dependency that answers the caller of a request, or HTTP 401."""
    def caller(request: Request) -> Principal:
        return tokens.principal(request)
    return caller
