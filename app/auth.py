"""Bearer tokens: who is calling, and what their role and scope let them see."""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request

from kernel.settings import Scope, Settings

# A client address that presents this many unknown tokens within the window is refused (429) until
# the oldest of them leaves the window: guessing a 128-bit token stays hopeless, and a typo costs
# a legitimate user nothing.
FAILURES_ALLOWED = 10
FAILURE_WINDOW_S = 60.0
# Addresses remembered at most; the least recently failing one is forgotten first.
TRACKED_ADDRESSES = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: a role, a scope (None for everything), and the recipient it acts for."""

    role: str
    scope: Scope | None
    recipient: str | None = None


class FailureLimiter:
    """Failed authentications per client address within a sliding window."""

    def __init__(self, allowed: int = FAILURES_ALLOWED, window_s: float = FAILURE_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic, tracked: int = TRACKED_ADDRESSES) -> None:
        self.allowed = allowed
        self.window_s = window_s
        self.clock = clock
        self.tracked = tracked
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, address: str) -> float:
        """Seconds until address may try again; 0 when it may now."""
        times = self._failures.get(address)
        if times is None:
            return 0.0
        now = self.clock()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[address]
            return 0.0
        if len(times) < self.allowed:
            return 0.0
        return times[0] + self.window_s - now

    def failed(self, address: str) -> None:
        """Count one failed authentication from address."""
        times = self._failures.pop(address, None) or deque(maxlen=self.allowed)
        times.append(self.clock())
        self._failures[address] = times
        while len(self._failures) > self.tracked:
            self._failures.popitem(last=False)


class TokenBook:
    """Tokens of the site file, kept as SHA-256 digests and resolved to principals."""

    def __init__(self, settings: Settings, limiter: FailureLimiter | None = None) -> None:
        recipients = {r.id: r for r in settings.recipients}
        self._recipients = recipients
        self._by_digest: list[tuple[bytes, Principal]] = []
        for t in settings.api_tokens:
            if t.recipient is not None:
                r = recipients[t.recipient]
                principal = Principal(r.role, _effective(r.role, t.scope or r.scope), r.id)
            else:
                assert t.role is not None
                principal = Principal(t.role, _effective(t.role, t.scope))
            self._by_digest.append((bytes.fromhex(t.digest), principal))
        self.limiter = limiter or FailureLimiter()

    def of_recipient(self, recipient: str) -> Principal | None:
        """The principal a recipient acts as (for a link sent to them), or None."""
        r = self._recipients.get(recipient)
        return None if r is None else Principal(r.role, _effective(r.role, r.scope), r.id)

    def principal(self, request: Request) -> Principal:
        """The caller of a request, or HTTP 401 (429 after too many unknown tokens from its address)."""
        address = address_of(request)
        self.refuse_if_limited(address)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "missing bearer token (Authorization: Bearer <token>)",
                                headers={"WWW-Authenticate": "Bearer"})
        found = self.lookup(token.strip())
        if found is None:
            self.limiter.failed(address)
            raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return found

    def refuse_if_limited(self, address: str) -> None:
        """HTTP 429 while address has failed too often."""
        wait = self.limiter.retry_after(address)
        if wait > 0:
            raise HTTPException(429, "too many failed authentications from this address; try again later",
                                headers={"Retry-After": str(max(1, math.ceil(wait)))})

    def log_in(self, request: Request, token: str) -> Principal | None:
        """The principal of a token typed into the login form; a wrong one counts as a failure of the address."""
        address = address_of(request)
        self.refuse_if_limited(address)
        found = self.lookup(token) if token else None
        if found is None:
            self.limiter.failed(address)
        return found

    def lookup(self, token: str) -> Principal | None:
        """The principal of a token, comparing its digest with every known one in constant time."""
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for known, principal in self._by_digest:
            if hmac.compare_digest(known, digest) and found is None:
                found = principal
        return found


def address_of(request: Request) -> str:
    """The client address of a request, as the failure limit counts it."""
    return request.client.host if request.client is not None else "-"


def _effective(role: str, scope: Scope | None) -> Scope | None:
    """Admins and the bureau see everything; a street office sees its whole street."""
    if role in ("admin", "bureau") or scope is None:
        return None
    if scope.community is None and scope.grid is None:
        return None
    return scope
