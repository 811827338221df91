"""Bearer tokens: who is calling, and what their role and scope let them see."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException, Request

from kernel.settings import Scope, Settings


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: a role, a scope (None for everything), and the recipient it acts for."""

    role: str
    scope: Scope | None
    recipient: str | None = None


class TokenBook:
    """Tokens of the site file, resolved to principals."""

    def __init__(self, settings: Settings) -> None:
        recipients = {r.id: r for r in settings.recipients}
        self._recipients = recipients
        self._by_token: dict[str, Principal] = {}
        for t in settings.api_tokens:
            if t.recipient is not None:
                r = recipients[t.recipient]
                self._by_token[t.token] = Principal(r.role, _effective(r.role, t.scope or r.scope), r.id)
            else:
                assert t.role is not None
                self._by_token[t.token] = Principal(t.role, _effective(t.role, t.scope))

    def lookup(self, token: str) -> Principal | None:
        """The principal of a token, or None."""
        return self._by_token.get(token.strip())

    def of_recipient(self, recipient: str) -> Principal | None:
        """The principal a recipient acts as (for a link sent to them), or None."""
        r = self._recipients.get(recipient)
        return None if r is None else Principal(r.role, _effective(r.role, r.scope), r.id)

    def principal(self, request: Request) -> Principal:
        """The caller of a request, or HTTP 401."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "missing bearer token (Authorization: Bearer <token>)",
                                headers={"WWW-Authenticate": "Bearer"})
        found = self._by_token.get(token.strip())
        if found is None:
            raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
        return found


def _effective(role: str, scope: Scope | None) -> Scope | None:
    """Admins and the bureau see everything; a street office sees its whole street."""
    if role in ("admin", "bureau") or scope is None:
        return None
    if scope.community is None and scope.grid is None:
        return None
    return scope
