"""Who is looking at a page: signed, expiring session cookies, alert links and 叫应 answer links, all timed
on the service clock (so a test can sign a link as of any time)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from starlette.requests import Request

from app.auth import Principal
from app.view import ServiceView
from kernel.clock import NS
from kernel.settings import Scope

COOKIE = "cb_session"


def session_key(view: ServiceView) -> str:
    """The configured signing key, or the one kept in state_dir (made once, so restarts keep sessions)."""
    if view.settings.http.session_key:
        return view.settings.http.session_key
    path = Path(view.settings.state_dir) / "session.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


def _timed(key: str, salt: str, now_s: Callable[[], float]) -> URLSafeTimedSerializer:
    """A serializer whose timestamps (when signed, how old) come from a given clock (epoch seconds)."""

    class Clocked(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(now_s())

    return URLSafeTimedSerializer(key, salt=salt, signer=Clocked)


class Sessions:
    """Signed, expiring session cookies and alert links."""

    def __init__(self, key: str, ttl_s: float, link_ttl_s: float, now_s: Callable[[], float]) -> None:
        self.cookies = _timed(key, "cb-session", now_s)
        self.links = _timed(key, "cb-alert-link", now_s)
        self.answers = _timed(key, "cb-answer-link", now_s)
        self.ttl = ttl_s
        self.link_ttl = link_ttl_s

    @classmethod
    def of(cls, view: ServiceView) -> Sessions:
        """The sessions of a service: its key, its settings' lifetimes, its clock."""
        http = view.settings.http
        return cls(session_key(view), http.session_ttl_s, http.link_ttl_s, lambda: view.now_ns() / NS)

    def make(self, who: Principal, alert: str | None = None) -> str:
        """A cookie value for a principal (limited to one alert for a link's login)."""
        scope = who.scope.model_dump(exclude_none=True) if who.scope is not None else None
        return self.cookies.dumps({"r": who.role, "s": scope, "p": who.recipient, "c": secrets.token_urlsafe(16),
                                   "a": alert})

    def read(self, request: Request) -> dict[str, Any] | None:
        """The session of a request, or None."""
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data: dict[str, Any] = self.cookies.loads(raw, max_age=int(self.ttl))
        except (BadSignature, SignatureExpired):
            return None
        return data

    def link(self, alert_id: str, recipient: str) -> str:
        """The signed part of a link that logs a recipient in for one alert."""
        return self.links.dumps({"a": alert_id, "p": recipient})

    def answer_link(self, alert_id: str, recipient: str) -> str:
        """The signed part of a 叫应 answer link (the SMS's): it answers one call of one person."""
        return self.answers.dumps({"a": alert_id, "p": recipient})

    def open_answer_link(self, signed: str) -> tuple[str, str] | None:
        """(alert id, recipient) of an answer link still valid, or None."""
        return self._open(self.answers, signed)

    def open_link(self, signed: str) -> tuple[str, str] | None:
        """(alert id, recipient) of a link still valid, or None."""
        return self._open(self.links, signed)

    def _open(self, signer: URLSafeTimedSerializer, signed: str) -> tuple[str, str] | None:
        try:
            data = signer.loads(signed, max_age=max(1, int(self.link_ttl)))
        except (BadSignature, SignatureExpired):
            return None
        return str(data["a"]), str(data["p"])


def principal_of(session: dict[str, Any]) -> Principal:
    """The principal a session acts as."""
    return Principal(session["r"], Scope(**session["s"]) if session["s"] is not None else None, session["p"])


def home_of(who: Principal) -> str:
    """The page for a role: the inbox for grid workers, the wall for everybody else."""
    return "/inbox" if who.role == "grid_worker" else "/wall"
