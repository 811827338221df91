"""The webhook channel (docs/alerts.md): a signed HTTP POST of the notification JSON."""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx

from kernel.channels.webhook import WebhookConfig
from notify.channels import ChannelContext, Outcome, register_factory
from notify.notification import Notification


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class Webhook:
    """POST to a URL; 2xx delivers, 429/5xx/timeouts are retried, other answers refuse.

    While a secret is rotated, `previous_secret` signs too: `X-CB-Signature` carries the new
    secret's signature and `X-CB-Signature-Previous` the old one's, so a receiver still holding the
    old secret goes on verifying until it is given the new one."""

    type = "webhook"

    def __init__(self, url: str, secret: str, client: httpx.AsyncClient, *,
                 previous_secret: str | None = None) -> None:
        self.url = url
        self.secret = secret
        self.previous_secret = previous_secret
        self.client = client

    async def send(self, n: Notification) -> Outcome:
        """One attempt."""
        event_id, payload = n.event_id, n.payload
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-CB-Event-Id": event_id, "X-CB-Timestamp": ts,
                   "X-CB-Signature": signature(self.secret, ts, payload)}
        if self.previous_secret is not None:
            headers["X-CB-Signature-Previous"] = signature(self.previous_secret, ts, payload)
        try:
            r = await self.client.post(self.url, content=payload, headers=headers)
        except httpx.TimeoutException:
            return Outcome(False, retryable=True, error="timeout")
        except httpx.HTTPError as exc:
            return Outcome(False, retryable=True, error=f"unreachable: {type(exc).__name__}")
        if 200 <= r.status_code < 300:
            return Outcome(True)
        retryable = r.status_code == 429 or r.status_code >= 500 or r.status_code == 408
        return Outcome(False, retryable=retryable, retry_after_s=_retry_after(r), error=f"HTTP {r.status_code}")


def make_webhook(config: WebhookConfig, context: ChannelContext) -> Webhook:
    """A webhook signing with its secret (and its previous one during a rotation)."""
    return Webhook(config.url, config.secret, context.http_client, previous_secret=config.previous_secret)


register_factory("webhook", make_webhook)
