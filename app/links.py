"""Links: signed ones for departments (a work order's page and actions, opened without logging in), and a
URL as it may be shown (without its password)."""

from __future__ import annotations

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer


class OrderLinks:
    """Signs (work order, contact) into a token; the token in the link is the only credential it needs."""

    def __init__(self, key: str, ttl_s: float, public_url: str | None) -> None:
        self.signer = URLSafeTimedSerializer(key, salt="cb-work-order-link")
        self.ttl_s = ttl_s
        self.base = public_url.rstrip("/") if public_url else None

    def make(self, order_id: str, recipient: str) -> tuple[str, str | None]:
        """The token for one contact of one work order, and the absolute link when the public URL is known."""
        token = self.signer.dumps({"o": order_id, "p": recipient})
        return token, f"{self.base}/wo/{token}" if self.base else None

    def whistle_page(self, whistle_id: str) -> str | None:
        """The whistle's page (behind the log-in) for the whistle-blower and the supervisors."""
        return f"{self.base}/whistle/{whistle_id}" if self.base else None

    def open(self, token: str) -> tuple[str, str] | None:
        """(work order id, contact) of a token still valid, or None."""
        try:
            data = self.signer.loads(token, max_age=max(1, int(self.ttl_s)))
        except (BadSignature, SignatureExpired):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("o"), str) or not isinstance(data.get("p"), str):
            return None
        return data["o"], data["p"]


def redact_url(url: str) -> str:
    """A URL without its password."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
