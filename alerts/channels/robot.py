"""Chat robots of the tools Chinese offices use: WeCom (企业微信) group robots and DingTalk (钉钉)
custom robots. Both take a JSON message by HTTP POST and answer `{"errcode": 0}` when they took it;
both allow 20 messages a minute per robot, so the channel paces itself and asks to retry later
rather than being refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse
from collections import deque

import httpx
import orjson

from alerts.channels import Outcome

EVENT_WORDS = {"fired": "新告警", "escalated": "告警升级（未确认）", "level_raised": "告警级别升高",
               "acknowledged": "告警已确认", "resolved": "告警已解除", "reminder": "告警提醒"}
PER_MINUTE = 20
# Robot error codes that mean "too fast, try later" (WeCom 45009, DingTalk 130101 / 410100).
_TOO_FAST = {45009, 130101, 410100}


def text_of(payload: bytes) -> tuple[str, str]:
    """A title and a markdown body: what happened in words, then the notification object itself."""
    n = orjson.loads(payload)
    alert = n["alert"]
    title = f"{EVENT_WORDS.get(n['event'], n['event'])}：{alert['summary']}"
    if "group" in n:
        title += f" 等 {n['group']['count']} 条"
    body = (f"### {EVENT_WORDS.get(n['event'], n['event'])}\n\n{alert['summary']}\n\n"
            f"> 告警编号 {alert['id']} · 状态 {alert['status']} · 更新 {alert['updated_at']}\n\n"
            f"```json\n{orjson.dumps(n, option=orjson.OPT_INDENT_2).decode()}\n```")
    return title, body


class _Robot:
    type = "robot"

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self.url = url
        self.client = client
        self._sent: deque[float] = deque()

    def _pace(self) -> float | None:
        """Seconds to wait before the next message may go, if the minute's quota is used."""
        now = time.monotonic()
        while self._sent and now - self._sent[0] >= 60:
            self._sent.popleft()
        if len(self._sent) >= PER_MINUTE:
            return 60 - (now - self._sent[0]) + 0.1
        return None

    def _message(self, payload: bytes) -> dict[str, object]:
        raise NotImplementedError

    def _target(self) -> str:
        return self.url

    async def send(self, event_id: str, payload: bytes) -> Outcome:
        """One attempt, within the robot's quota."""
        wait = self._pace()
        if wait is not None:
            return Outcome(False, retryable=True, retry_after_s=wait, error="robot quota: 20 messages a minute")
        self._sent.append(time.monotonic())
        try:
            r = await self.client.post(self._target(), content=orjson.dumps(self._message(payload)),
                                       headers={"Content-Type": "application/json"})
        except httpx.TimeoutException:
            return Outcome(False, retryable=True, error="timeout")
        except httpx.HTTPError as exc:
            return Outcome(False, retryable=True, error=f"unreachable: {type(exc).__name__}")
        if r.status_code >= 500 or r.status_code == 429:
            return Outcome(False, retryable=True, error=f"HTTP {r.status_code}")
        if r.status_code >= 300:
            return Outcome(False, error=f"HTTP {r.status_code}")
        try:
            code = int(r.json().get("errcode", -1))
        except (ValueError, AttributeError):
            return Outcome(False, error="the robot did not answer JSON")
        if code == 0:
            return Outcome(True)
        if code in _TOO_FAST:
            return Outcome(False, retryable=True, retry_after_s=60, error=f"robot errcode {code}: too fast")
        return Outcome(False, error=f"robot errcode {code}: {r.json().get('errmsg', '')}")


class WeComRobot(_Robot):
    """A WeCom group robot (its webhook URL carries the key)."""

    type = "wecom"

    def _message(self, payload: bytes) -> dict[str, object]:
        _title, body = text_of(payload)
        return {"msgtype": "markdown", "markdown": {"content": body}}


class DingTalkRobot(_Robot):
    """A DingTalk custom robot; with a secret, each request is signed as DingTalk documents."""

    type = "dingtalk"

    def __init__(self, url: str, secret: str | None, client: httpx.AsyncClient) -> None:
        super().__init__(url, client)
        self.secret = secret

    def _target(self) -> str:
        if not self.secret:
            return self.url
        timestamp, sign = dingtalk_sign(self.secret, int(time.time() * 1000))
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}timestamp={timestamp}&sign={sign}"

    def _message(self, payload: bytes) -> dict[str, object]:
        title, body = text_of(payload)
        return {"msgtype": "markdown", "markdown": {"title": title, "text": body}}


def dingtalk_sign(secret: str, timestamp_ms: int) -> tuple[str, str]:
    """(timestamp, sign): base64 HMAC-SHA256 of "timestamp\\nsecret" with the secret, URL-quoted."""
    ts = str(timestamp_ms)
    mac = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
    return ts, urllib.parse.quote_plus(base64.b64encode(mac))
