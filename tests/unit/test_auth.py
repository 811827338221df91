"""TokenBook: tokens by digest (token or token_sha256), and failed authentication limited per address."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from fastapi import HTTPException
from starlette.requests import Request

from app.auth import FailureLimiter, TokenBook
from kernel.errors import ConfigError
from kernel.settings import parse_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "site.yaml"
SECRET = "a-long-random-token-0123456789"


def _settings(tokens: list[dict[str, object]]) -> object:
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    raw["api_tokens"] = tokens
    return parse_settings(yaml.safe_dump(raw, allow_unicode=True), env={})


def _request(token: str | None, address: str = "192.0.2.1") -> Request:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token is not None else []
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers, "client": (address, 5555)})


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_sha256_is_accepted_like_the_token() -> None:
    """A digest in the file lets the token's holder in with the entry's role and scope."""
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    book = TokenBook(_settings([{"token_sha256": digest.upper(), "recipient": "worker-g1"},
                                {"token": "plain-token-456789", "role": "admin"}]))  # type: ignore[arg-type]
    who = book.principal(_request(SECRET))
    assert (who.role, who.recipient, who.scope and who.scope.grid) == ("grid_worker", "worker-g1", "g1")
    assert book.principal(_request("plain-token-456789")).role == "admin"
    with pytest.raises(HTTPException) as bad:
        book.principal(_request(digest))  # the digest itself is not a token
    assert bad.value.status_code == 401 and "Bearer" in (bad.value.headers or {})["WWW-Authenticate"]


@pytest.mark.parametrize("entry", [{"role": "admin"}, {"token": "plain-token-456789", "token_sha256": "0" * 64,
                                                       "role": "admin"},
                                   {"token_sha256": "xyz", "role": "admin"}])
def test_a_token_entry_needs_exactly_one_valid_form(entry: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as err:
        _settings([entry])
    assert "api_tokens.0" in str(err.value)


def test_the_same_token_twice_is_refused_even_as_a_digest() -> None:
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    with pytest.raises(ConfigError, match="appears twice"):
        _settings([{"token": SECRET, "role": "admin"}, {"token_sha256": digest, "role": "bureau"}])


def test_failed_authentications_are_limited_per_address() -> None:
    """After N unknown tokens in the window: 429 with Retry-After, even for a good token; other addresses and a
    missing header do not count; the window's end lets the address in again."""
    clock = FakeClock()
    book = TokenBook(_settings([{"token": SECRET, "role": "admin"}]),  # type: ignore[arg-type]
                     FailureLimiter(allowed=3, window_s=60, clock=clock))
    for _ in range(5):
        with pytest.raises(HTTPException) as missing:
            book.principal(_request(None))
        assert missing.value.status_code == 401
    for i in range(3):
        clock.now += 1
        with pytest.raises(HTTPException) as bad:
            book.principal(_request(f"guess-{i}"))
        assert bad.value.status_code == 401
    with pytest.raises(HTTPException) as limited:
        book.principal(_request(SECRET))
    assert limited.value.status_code == 429
    assert (limited.value.headers or {})["Retry-After"] == "58"  # the first failure leaves the window at +60
    assert book.principal(_request(SECRET, address="192.0.2.2")).role == "admin"
    clock.now += 58
    assert book.principal(_request(SECRET)).role == "admin"


def test_the_limiter_forgets_the_oldest_addresses_beyond_its_bound() -> None:
    limiter = FailureLimiter(allowed=1, window_s=60, clock=FakeClock(), tracked=100)
    for i in range(1000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}")
    assert limiter.retry_after("10.0.0.0") == 0
    assert limiter.retry_after("10.0.3.231") > 0
