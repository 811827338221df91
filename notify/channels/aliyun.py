"""Alibaba Cloud's RPC API (dysmsapi, dyvmsapi): the documented request signing, and one signed call.

Signature version 1.0 (help.aliyun.com/document_detail/28839, 签名机制): the parameters except Signature,
sorted by name, each name and value percent-encoded (RFC 3986: A-Z a-z 0-9 - _ . ~ kept, a space as
%20), joined as name=value with &; StringToSign = METHOD & percentEncode("/") & percentEncode(that);
Signature = Base64(HMAC-SHA1(AccessKeySecret + "&", StringToSign)).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import orjson

from notify.channels import Outcome

VERSION = "2017-05-25"  # of both dysmsapi and dyvmsapi
# Codes that say "later": flow control and the provider's own trouble. Every other code refuses.
RETRY_CODES = frozenset({"isv.BUSINESS_LIMIT_CONTROL", "Throttling", "Throttling.User", "Throttling.Api",
                         "ServiceUnavailable", "InternalError", "isp.SYSTEM_ERROR", "isp.RAM_PERMISSION_DENY"})


def percent_encode(value: str) -> str:
    """RFC 3986 encoding as the signing documents it (space %20, * %2A, ~ kept)."""
    return quote(value, safe="-_.~")


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """METHOD&%2F&percentEncode(canonicalized query)."""
    canonical = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()))
    return f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"


def signature(secret: str, method: str, params: Mapping[str, str]) -> str:
    """Base64(HMAC-SHA1(secret + "&", StringToSign))."""
    mac = hmac.new((secret + "&").encode(), string_to_sign(method, params).encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def signed_params(action: str, params: Mapping[str, str], *, access_key_id: str, access_key_secret: str,
                  region_id: str, method: str = "POST", now: datetime | None = None) -> dict[str, str]:
    """The common parameters, the action's own, and their Signature."""
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = {"AccessKeyId": access_key_id, "Action": action, "Format": "JSON", "RegionId": region_id,
           "SignatureMethod": "HMAC-SHA1", "SignatureNonce": uuid.uuid4().hex, "SignatureVersion": "1.0",
           "Timestamp": when, "Version": VERSION, **params}
    out["Signature"] = signature(access_key_secret, method, out)
    return out


async def call(client: httpx.AsyncClient, endpoint: str, action: str, params: Mapping[str, str], *,
               access_key_id: str, access_key_secret: str, region_id: str) -> Outcome:
    """One signed POST (form body); Code OK delivers, flow control and 5xx are retried, the rest refuse."""
    body = signed_params(action, params, access_key_id=access_key_id, access_key_secret=access_key_secret,
                         region_id=region_id)
    try:
        r = await client.post(endpoint, data=body)
    except httpx.TimeoutException:
        return Outcome(False, retryable=True, error="timeout")
    except httpx.HTTPError as exc:
        return Outcome(False, retryable=True, error=f"unreachable: {type(exc).__name__}")
    try:
        answer = orjson.loads(r.content)
        code, message = str(answer.get("Code")), str(answer.get("Message"))
    except (orjson.JSONDecodeError, AttributeError):
        return Outcome(False, retryable=r.status_code >= 500, error=f"HTTP {r.status_code}: not JSON")
    if r.status_code == 200 and code == "OK":
        return Outcome(True)
    retryable = r.status_code >= 500 or code in RETRY_CODES
    return Outcome(False, retryable=retryable, error=f"HTTP {r.status_code} {code}: {message}"[:300])
