"""A STAND-IN for Alibaba Cloud's SMS (dysmsapi SendSms) and voice (dyvmsapi SingleCallByTts) APIs, which
cannot be installed: a real HTTP server on loopback that checks each request the way the provider
documents it and answers in the provider's shapes. It is not Alibaba Cloud.

What it checks (help.aliyun.com/document_detail/28839 签名机制, and the two actions' parameter lists):
- the common parameters: AccessKeyId (a known key), Action, Format, RegionId, SignatureMethod
  HMAC-SHA1, SignatureNonce (never used twice), SignatureVersion 1.0, Timestamp (ISO 8601 UTC,
  yyyy-MM-ddTHH:mm:ssZ, within 15 minutes), Version 2017-05-25;
- Signature: recomputed independently of the service's code, with the documented Java recipe
  (URLEncoder then + → %20, * → %2A, %7E → ~), over the method, "/" and the sorted parameters;
- SendSms: PhoneNumbers, SignName, TemplateCode (SMS_...), TemplateParam a JSON object of strings;
  SingleCallByTts: CalledNumber, TtsCode (TTS_...), TtsParam a JSON object, PlayTimes 1-3.
Errors come back as the provider's error object {"RequestId", "HostId", "Code", "Message", "Recommend"}
with its HTTP status; business refusals (isv.*) with HTTP 200, as the provider does.

`push_voice_receipt` plays the provider's side of a key press: it POSTs the voice receipt
(VoiceReport: call_id, out_id, dtmf, status_code, ...) to the callback URL the account configured.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlsplit

import httpx

from tests.servers import free_port

COMMON = ("AccessKeyId", "Action", "Format", "RegionId", "SignatureMethod", "SignatureNonce", "SignatureVersion",
          "Timestamp", "Version", "Signature")
ACTIONS: dict[str, tuple[str, ...]] = {
    "SendSms": ("PhoneNumbers", "SignName", "TemplateCode", "TemplateParam"),
    "SingleCallByTts": ("CalledNumber", "TtsCode"),
}
PHONE = re.compile(r"^\+?[0-9]{6,15}$")


def java_percent_encode(value: str) -> str:
    """The documented recipe: java.net.URLEncoder (UTF-8), then + → %20, * → %2A, %7E → ~."""
    return quote_plus(value, safe="*").replace("+", "%20").replace("*", "%2A").replace("%7E", "~")


def expected_signature(secret: str, method: str, params: dict[str, str]) -> str:
    """Signature of the documentation, from the parameters other than Signature."""
    pairs = sorted((k, v) for k, v in params.items() if k != "Signature")
    canonical = "&".join(f"{java_percent_encode(k)}={java_percent_encode(v)}" for k, v in pairs)
    to_sign = f"{method}&{java_percent_encode('/')}&{java_percent_encode(canonical)}"
    return base64.b64encode(hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()).decode()


@dataclass
class Accepted:
    """One request the stand-in took."""

    action: str
    params: dict[str, str]
    at: float
    biz_id: str

    def json_param(self, name: str) -> dict[str, Any]:
        """A JSON parameter (TemplateParam, TtsParam)."""
        result: dict[str, Any] = json.loads(self.params[name])
        return result


class AliyunStandIn:
    """ThreadingHTTPServer on 127.0.0.1 answering SendSms and SingleCallByTts; `keys` maps AccessKeyId → secret."""

    def __init__(self, keys: dict[str, str]) -> None:
        self.keys = keys
        self.port = free_port()
        self.accepted: list[Accepted] = []
        self.refused: list[tuple[str, str]] = []  # (code, message)
        self.nonces: set[str] = set()
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                standin._handle(self, "GET", urlsplit(self.path).query)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                if "application/x-www-form-urlencoded" not in self.headers.get("Content-Type", ""):
                    standin._answer(self, 400, standin._error("InvalidParameter", "POST takes a form body"))
                    return
                standin._handle(self, "POST", body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The endpoint to put in a channel's `endpoint`."""
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> AliyunStandIn:
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def of(self, action: str) -> list[Accepted]:
        """Accepted requests of one action."""
        with self._lock:
            return [a for a in self.accepted if a.action == action]

    def wait_for(self, action: str, n: int, timeout_s: float = 20.0, **where: str) -> list[Accepted]:
        """At least n accepted requests of action (with these parameter values), or AssertionError."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = [a for a in self.of(action) if all(a.params.get(k) == v for k, v in where.items())]
            if len(found) >= n:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {n} {action} {where} in {timeout_s} s; refused: {self.refused}")
            time.sleep(0.05)

    # ---- the provider's checks ------------------------------------------------------------------

    def _error(self, code: str, message: str) -> dict[str, str]:
        return {"RequestId": str(uuid.uuid4()).upper(), "HostId": f"127.0.0.1:{self.port}", "Code": code,
                "Message": message, "Recommend": f"https://api.aliyun.com/troubleshoot?q={code}"}

    def _answer(self, handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        if "Code" in body and body["Code"] != "OK":
            with self._lock:
                self.refused.append((str(body["Code"]), str(body["Message"])))
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json;charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _handle(self, handler: BaseHTTPRequestHandler, method: str, query: str) -> None:
        pairs = parse_qsl(query, keep_blank_values=True)
        params = dict(pairs)
        status, body = self._check(method, params, len(pairs) != len(params))
        self._answer(handler, status, body)

    def _check(self, method: str, p: dict[str, str], repeated: bool) -> tuple[int, dict[str, Any]]:
        if repeated:
            return 400, self._error("InvalidParameter", "a parameter is given twice")
        for name in COMMON:
            if not p.get(name):
                return 400, self._error(f"Missing{name}", f"{name} is mandatory for this action.")
        secret = self.keys.get(p["AccessKeyId"])
        if secret is None:
            return 404, self._error("InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        if p["SignatureMethod"] != "HMAC-SHA1":
            return 400, self._error("InvalidSignatureMethod", "Specified signature method is not valid.")
        if p["SignatureVersion"] != "1.0":
            return 400, self._error("UnsupportedSignatureVersion", "Specified signature version is not supported.")
        if p["Format"] not in ("JSON", "XML"):
            return 400, self._error("InvalidParameter.Format", "Specified format is not valid.")
        if p["Version"] != "2017-05-25":
            return 400, self._error("InvalidVersion", "Specified parameter Version is not valid.")
        try:
            stamp = datetime.strptime(p["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return 400, self._error("InvalidTimeStamp.Format",
                                    "Specified time stamp or date value is not well formatted.")
        if abs((datetime.now(UTC) - stamp).total_seconds()) > 900:
            return 400, self._error("InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
        want = expected_signature(secret, method, p)
        if not hmac.compare_digest(want, p["Signature"]):
            return 400, self._error("SignatureDoesNotMatch", "Specified signature is not matched with our calculation.")
        with self._lock:
            if p["SignatureNonce"] in self.nonces:
                return 400, self._error("SignatureNonceUsed", "Specified signature nonce was used already.")
            self.nonces.add(p["SignatureNonce"])
        action = p["Action"]
        required = ACTIONS.get(action)
        if required is None:
            return 404, self._error("InvalidAction.NotFound", f"Specified api {action} is not found.")
        for name in required:
            if not p.get(name):
                return 400, self._error(f"Missing{name}", f"{name} is mandatory for this action.")
        refusal = self._business(action, p)
        if refusal is not None:
            return 200, {"RequestId": str(uuid.uuid4()).upper(), "Code": refusal[0], "Message": refusal[1]}
        biz = f"{int(time.time() * 1000)}^{uuid.uuid4().hex[:12]}"
        with self._lock:
            self.accepted.append(Accepted(action, p, time.monotonic(), biz))
        body: dict[str, Any] = {"RequestId": str(uuid.uuid4()).upper(), "Code": "OK", "Message": "OK"}
        if action == "SendSms":
            body["BizId"] = biz
        else:
            body["CallId"] = biz
        return 200, body

    @staticmethod
    def _business(action: str, p: dict[str, str]) -> tuple[str, str] | None:
        if action == "SendSms":
            if not all(PHONE.match(x) for x in p["PhoneNumbers"].split(",")):
                return "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号"
            if not p["TemplateCode"].startswith("SMS_"):
                return "isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板"
            try:
                param = json.loads(p["TemplateParam"])
            except ValueError:
                return "isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值"
            if not isinstance(param, dict) or not all(isinstance(v, str) for v in param.values()):
                return "isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值"
            return None
        if not PHONE.match(p["CalledNumber"]):
            return "isv.MOBILE_NUMBER_ILLEGAL", "号码格式非法"
        if not p["TtsCode"].startswith("TTS_"):
            return "isv.TTS_TEMPLATE_ILLEGAL", "TTS模板不存在"
        if "TtsParam" in p:
            try:
                if not isinstance(json.loads(p["TtsParam"]), dict):
                    raise ValueError
            except ValueError:
                return "isv.INVALID_JSON_PARAM", "TtsParam 不是 JSON 对象"
        if p.get("PlayTimes", "1") not in ("1", "2", "3"):
            return "isv.INVALID_PARAMETERS", "PlayTimes 取值 1-3"
        return None

    # ---- the provider calling back ------------------------------------------------------------

    @staticmethod
    def push_voice_receipt(callback_url: str, call: Accepted, dtmf: str) -> httpx.Response:
        """The provider's voice receipt (VoiceReport) of a call where the person pressed `dtmf`."""
        now = datetime.now(UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")
        report = [{"call_id": call.biz_id, "out_id": call.params.get("OutId", ""), "start_time": now,
                   "end_time": now, "duration": 12, "status_code": "200000", "status_msg": "用户听完语音",
                   "toll_type": "LOCAL", "fee": 1, "dtmf": dtmf, "callee": call.params["CalledNumber"]}]
        return httpx.post(callback_url, json=report, timeout=10)
