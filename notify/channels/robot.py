"""Chat robots of the tools Chinese offices use: WeCom (企业微信) group robots and DingTalk (钉钉)
custom robots. Both take a JSON message by HTTP POST and answer `{"errcode": 0}` when they took it;
both allow 20 messages a minute per robot. The channel paces itself, and what the quota holds back
goes out grouped: the next message that may go carries every notification waiting (as many as fit
the robot's message size), so a burst costs a robot one message, not one each."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse
from collections import deque

import httpx
import orjson

from kernel.channels.dingtalk import DingTalkConfig
from kernel.channels.wecom import WeComConfig
from kernel.outgoing import Subject
from notify.channels import ChannelContext, Outcome, register_factory
from notify.notification import Notification

EVENT_WORDS = {"fired": "新告警", "escalated": "告警升级（未确认）", "level_raised": "告警级别升高",
               "acknowledged": "告警已确认", "resolved": "告警已解除", "reminder": "告警提醒",
               "call": "叫应：请立即应答",
               # Work orders (吹哨报到): the notification carries `work_order` instead of `alert`.
               "order_opened": "吹哨报到", "order_signed": "部门已签收", "order_arrived": "部门已到场",
               "order_done": "部门已办结", "order_confirmed": "办结已确认", "order_overdue": "督办：超时未办"}
# Before a notification's `on_hand` line: what the people on site can use (CONTRACT §13).
ON_HAND_WORDS = "现场可用："
PER_MINUTE = 20
# A notification waits this long at most to be carried by another's message; past it (its delivery
# may have given up on this channel and gone on to the recipient's next one) only its own retry sends it.
WAIT_CARRIED_S = 300.0
# Robot error codes that mean "too fast, try later" (WeCom 45009, DingTalk 130101 / 410100).
_TOO_FAST = {45009, 130101, 410100}


def on_hand_of(n: Notification) -> str | None:
    """The notification's `on_hand` (the nearest shelter and the supplies that fit, for the people on site)."""
    text = n.extra.get("on_hand")
    return str(text) if text else None


def text_of(n: Notification) -> tuple[str, str]:
    """A title and a markdown body: what happened in words (and what is on hand), then the notification object."""
    subject, event = n.body, n.event.value
    title = f"{EVENT_WORDS.get(event, event)}：{subject['summary']}"
    if n.group is not None:
        title += f" 等 {len(n.group.alerts)} 条"
    number = "工单编号" if n.subject is Subject.WORK_ORDER else "告警编号"
    link = f"[打开]({n.link})\n\n" if n.link and n.subject is Subject.WORK_ORDER else ""
    on_hand = on_hand_of(n)
    hand = f"{ON_HAND_WORDS}{on_hand}\n\n" if on_hand else ""
    body = (f"### {EVENT_WORDS.get(event, event)}\n\n{subject['summary']}\n\n{hand}{link}"
            f"> {number} {subject['id']} · 状态 {subject['status']} · 更新 {subject['updated_at']}\n\n"
            f"```json\n{orjson.dumps(n.wire(), option=orjson.OPT_INDENT_2).decode()}\n```")
    return title, body


def digest_of(notifications: list[Notification]) -> tuple[str, str]:
    """A title and a markdown body for several notifications: a line each, then each object."""
    title = f"告警通知 {len(notifications)} 条（合并发送）"
    lines = []
    for n in notifications:
        lines.append(f"- **{EVENT_WORDS.get(n.event.value, n.event.value)}**：{n.body['summary']}")
        on_hand = on_hand_of(n)
        if on_hand:
            lines.append(f"  {ON_HAND_WORDS}{on_hand}")  # under its notification's item
    objects = "\n".join(n.payload.decode() for n in notifications)
    return title, f"### {title}\n\n" + "\n".join(lines) + f"\n\n```json\n{objects}\n```"


class _Robot:
    type = "robot"
    max_bytes = 4000  # of a message's markdown

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self.url = url
        self.client = client
        self._sent: deque[float] = deque()
        self._waiting: dict[str, tuple[float, Notification]] = {}  # held back by the quota, oldest first
        self._in_flight: set[str] = set()  # inside a grouped message being sent
        self._carried: set[str] = set()  # delivered inside a grouped message; their own retry says so

    def _pace(self) -> float | None:
        """Seconds to wait before the next message may go, if the minute's quota is used."""
        now = time.monotonic()
        while self._sent and now - self._sent[0] >= 60:
            self._sent.popleft()
        if len(self._sent) >= PER_MINUTE:
            return 60 - (now - self._sent[0]) + 0.1
        return None

    def _message(self, title: str, body: str) -> dict[str, object]:
        raise NotImplementedError

    def _target(self) -> str:
        return self.url

    def _group(self, n: Notification) -> list[Notification]:
        """This notification and the waiting ones that fit one message with it, oldest first."""
        stale = time.monotonic() - WAIT_CARRIED_S
        for e in [e for e, (since, _p) in self._waiting.items() if since < stale]:
            del self._waiting[e]
        members = [*(p for e, (_s, p) in self._waiting.items() if e != n.event_id), n]
        while len(members) > 1 and len(digest_of(members)[1].encode()) > self.max_bytes:
            members.pop(-2)  # the newest waiting ones go in the next message
        return members

    async def send(self, n: Notification) -> Outcome:
        """One attempt, within the robot's quota; those it holds back go out grouped."""
        event_id = n.event_id
        if event_id in self._carried:
            self._carried.discard(event_id)
            return Outcome(True)
        if event_id in self._in_flight:
            return Outcome(False, retryable=True, retry_after_s=1.0, error="in a grouped message being sent")
        wait = self._pace()
        if wait is not None:
            self._waiting.setdefault(event_id, (time.monotonic(), n))
            return Outcome(False, retryable=True, retry_after_s=wait,
                           error="robot quota: 20 messages a minute; goes grouped in the next message")
        members = self._group(n) if self._waiting else [n]
        others = [m.event_id for m in members if m.event_id != event_id]
        held = {e: self._waiting.pop(e) for e in others}
        self._waiting.pop(event_id, None)
        self._in_flight.update(others)
        message = self._message(*(text_of(n) if not others else digest_of(members)))
        try:
            outcome = await self._post(message)
        finally:
            self._in_flight.difference_update(others)
        if outcome.ok:
            self._carried.update(others)
        else:  # they wait for the next message again (or their own retries send them)
            self._waiting = held | self._waiting
        return outcome

    async def _post(self, message: dict[str, object]) -> Outcome:
        self._sent.append(time.monotonic())
        try:
            r = await self.client.post(self._target(), content=orjson.dumps(message),
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
    max_bytes = 4000  # WeCom takes markdown of up to 4,096 bytes

    def _message(self, title: str, body: str) -> dict[str, object]:
        return {"msgtype": "markdown", "markdown": {"content": body}}


class DingTalkRobot(_Robot):
    """A DingTalk custom robot; with a secret, each request is signed as DingTalk documents."""

    type = "dingtalk"
    max_bytes = 18_000  # DingTalk takes messages of up to 20,000 bytes

    def __init__(self, url: str, secret: str | None, client: httpx.AsyncClient) -> None:
        super().__init__(url, client)
        self.secret = secret

    def _target(self) -> str:
        if not self.secret:
            return self.url
        timestamp, sign = dingtalk_sign(self.secret, int(time.time() * 1000))
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}timestamp={timestamp}&sign={sign}"

    def _message(self, title: str, body: str) -> dict[str, object]:
        return {"msgtype": "markdown", "markdown": {"title": title, "text": body}}


def dingtalk_sign(secret: str, timestamp_ms: int) -> tuple[str, str]:
    """(timestamp, sign): base64 HMAC-SHA256 of "timestamp\\nsecret" with the secret, URL-quoted."""
    ts = str(timestamp_ms)
    mac = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
    return ts, urllib.parse.quote_plus(base64.b64encode(mac))


def make_wecom(config: WeComConfig, context: ChannelContext) -> WeComRobot:
    """A WeCom robot at its webhook URL."""
    return WeComRobot(config.url, context.http_client)


def make_dingtalk(config: DingTalkConfig, context: ChannelContext) -> DingTalkRobot:
    """A DingTalk robot, signing when it has a secret."""
    return DingTalkRobot(config.url, config.secret, context.http_client)


register_factory("wecom", make_wecom)
register_factory("dingtalk", make_dingtalk)
