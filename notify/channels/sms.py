"""The SMS channel: Alibaba Cloud SendSms with the template's ${level}, ${summary} and ${link}."""

from __future__ import annotations

import httpx
import orjson

from kernel.channels.sms import SmsConfig
from notify.channels import ChannelContext, Outcome, register_factory
from notify.channels.aliyun import call
from notify.notification import Notification

LEVEL_WORDS = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}
# A template variable holds at most 35 characters (the provider's rule for ordinary variables).
VARIABLE_MAX = 35


def template_param(n: Notification) -> str:
    """The TemplateParam JSON of one notification: the level in words, the summary, the answer link."""
    alert = n.body
    summary = str(alert.get("summary") or alert.get("rule"))
    if len(summary) > VARIABLE_MAX:
        summary = summary[: VARIABLE_MAX - 1] + "…"
    return orjson.dumps({"level": LEVEL_WORDS.get(alert["level"], alert["level"]), "summary": summary,
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
