"""The one webhook receiver: scripted and judged answers, keep-alive, several addresses, clear bind errors."""

from __future__ import annotations

import hashlib
import hmac
import socket

import httpx
import pytest

from device_sim.receiver import Answer, Received, Receiver, signed_by


def _signed(secret: str, body: bytes, ts: str = "1700000000") -> dict[str, str]:
    mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-CB-Timestamp": ts, "X-CB-Signature": f"sha256={mac}", "X-CB-Event-Id": "e1"}


def test_script_answers_in_order_then_200_and_records_each_request() -> None:
    r = Receiver().start()
    try:
        r.script["/hook"] = [Answer(503, headers={"Retry-After": "2"}), Answer(429)]
        with httpx.Client(base_url=r.base, timeout=5) as client:  # one keep-alive connection for all three
            answers = [client.post("/hook?x=1", content=b'{"a": 1}', headers={"X-CB-Event-Id": f"e{i}"})
                       for i in range(3)]
        assert [a.status_code for a in answers] == [503, 429, 200]
        assert answers[0].headers["Retry-After"] == "2"
        assert [q.answered for q in r.requests] == [503, 429, 200]
        assert r.requests[0].json == {"a": 1} and r.requests[0].header("x-cb-event-id") == "e0"
        assert list(r.unique()) == ["e2"]
    finally:
        r.stop()


def test_a_judge_answers_and_sees_requests_one_at_a_time_on_every_address() -> None:
    seen: list[str] = []

    def judge(q: Received) -> Answer | None:
        seen.append(q.path)
        return None if signed_by("s3cret", q) else Answer(401)

    r = Receiver([("127.0.0.1", 0), ("127.0.0.1", 0)], judge=judge, keep=False).start()
    try:
        ports = [s.server_address[1] for s in r.servers]
        assert len(set(ports)) == 2
        body = b'{"recipient": "worker-g1"}'
        good = httpx.post(f"http://127.0.0.1:{ports[1]}/a", content=body, headers=_signed("s3cret", body))
        bad = httpx.post(f"http://127.0.0.1:{ports[0]}/b", content=body, headers=_signed("other", body))
        assert (good.status_code, bad.status_code) == (200, 401)
        assert seen == ["/a", "/b"] and r.requests == []  # keep=False: the judge keeps what it needs
    finally:
        r.stop()


def test_an_address_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            Receiver([("127.0.0.1", port)])
