"""The SMS channel: Alibaba Cloud SendSms with the template's ${level}, ${summary} and ${link} (and, in
${summary}, the first thing on hand for the people on site when the notification says: `on_hand`)."""

from __future__ import annotations

import re

import httpx
import orjson

from kernel.channels.sms import SmsConfig
from notify.channels import ChannelContext, Outcome, register_factory
from notify.channels.aliyun import call
from notify.notification import Notification

LEVEL_WORDS = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}
# A template variable holds at most 35 characters (the provider's rule for ordinary variables).
VARIABLE_MAX = 35
# With `on_hand`, the summary keeps at least this much of the variable; what is on hand gets the rest.
SUMMARY_MIN = 20
ON_HAND_SEP = "｜"
WORD_MAX = 6  # a cut this close after a space goes back to the space
_LEVEL_MARK = re.compile(r"^(【[^】]*】|\[[^\]]*\])\s*")  # 【橙色预警（II级）】, [orange (II)]
_ASIDE = re.compile(r"\s*(（[^）]*）|\([^)]*\))")  # （容量 600，已有 0）, (capacity 600, 0 there)


def cut(text: str, most: int) -> str:
    """At most `most` characters, the last an ellipsis when cut: at a space when one is near the end (no "2…"
    left of "291 m"), with no space before the ellipsis."""
    if len(text) <= most:
        return text
    kept = text[: max(0, most - 1)]
    space = kept.rfind(" ")
    if space > 0 and len(kept) - space <= WORD_MAX:
        kept = kept[:space]
    return kept.rstrip() + "…"


def on_hand_brief(on_hand: str) -> str:
    """The first thing on hand (the nearest shelter, else the first supply), its figures in brackets left out."""
    first = re.split(r"；|; ", on_hand, maxsplit=1)[0]
    return _ASIDE.sub("", first).strip()


def summary_param(n: Notification) -> str:
    """${summary}: the alert's summary; with `on_hand`, its level mark left out (${level} says it) and the
    first thing on hand after it, both cut to fit one variable."""
    summary = str(n.body.get("summary") or n.body.get("rule"))
    brief = on_hand_brief(str(n.extra.get("on_hand") or ""))
    if not brief:
        return cut(summary, VARIABLE_MAX)
    head = cut(_LEVEL_MARK.sub("", summary), max(SUMMARY_MIN, VARIABLE_MAX - len(ON_HAND_SEP) - len(brief)))
    return head + ON_HAND_SEP + cut(brief, VARIABLE_MAX - len(ON_HAND_SEP) - len(head))


def template_param(n: Notification) -> str:
    """The TemplateParam JSON of one notification: the level in words, the summary, the answer link."""
    alert = n.body
    return orjson.dumps({"level": LEVEL_WORDS.get(alert["level"], alert["level"]), "summary": summary_param(n),
                         "link": str(n.link or "")}).decode()


class Sms:
    """SendSms to one number."""

    type = "sms"

    def __init__(self, config: SmsConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self.client = client

    async def send(self, n: Notification) -> Outcome:
        """One attempt; OutId carries the notification's id (it comes back in the provider's receipts)."""
        c = self.config
        params = {"PhoneNumbers": c.phone, "SignName": c.sign_name, "TemplateCode": c.template_code,
                  "TemplateParam": template_param(n), "OutId": n.event_id}
        return await call(self.client, c.endpoint, "SendSms", params, access_key_id=c.access_key_id,
                          access_key_secret=c.access_key_secret, region_id=c.region_id)


def make_sms(config: SmsConfig, context: ChannelContext) -> Sms:
    """An SMS channel on the service's HTTP client."""
    return Sms(config, context.http_client)


register_factory("sms", make_sms)
