"""A real HTTP receiver for the service's webhook notifications (docs/alerts.md).

One receiver for everyone who listens to the service: the simulator's verification of scenarios,
the tests and the alert benchmark. It speaks HTTP/1.1 with keep-alive, as a real webhook endpoint
does, in its own threads (so it hears the service whatever the caller's event loop is doing), on
one or more loopback addresses. Each request is answered as the caller says: by a judge that looks
at it (a signature check), by a script of answers per path, or 200; then it is recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


@dataclass
class Answer:
    """How to answer one request: a status, after a delay, with headers and a body."""

    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Received:
    """One request as it arrived; `at` (time.time()) and `monotonic` are taken when its body was read."""

    path: str
    headers: dict[str, str]  # as the sender spelled them
    body: bytes
    answered: int
    at: float
    monotonic: float = 0.0

    @property
    def json(self) -> dict[str, Any]:
        """The body as JSON."""
        result: dict[str, Any] = orjson.loads(self.body)
        return result

    def header(self, name: str, default: str = "") -> str:
        """A header, whatever case the sender wrote it in."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), default)


def signed_by(secret: str | bytes, r: Received) -> bool:
    """Whether a request carries a valid `X-CB-Signature` of docs/alerts.md for the secret."""
    key = secret.encode() if isinstance(secret, str) else secret
    signed = r.header("X-CB-Timestamp").encode() + b"." + r.body
    want = "sha256=" + hmac.new(key, signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, r.header("X-CB-Signature"))


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a keep-alive connection the service holds open does not hold up stop()
    request_queue_size = 256  # the default 5 drops SYNs of a burst of new connections (a 1 s retry)


class Receiver:
    """Webhook receiver on `addresses` (default: a free loopback port).

    `judge(request)` may answer a request (None: it has no objection); otherwise `script[path]`
    answers (path without the query) are used in order, then 200. Every request is recorded in
    `requests` (unless `keep` is False) and handed to `on_received` before it is answered; the judge
    and the callback run under one lock, so they need no locking of their own.
    """

    def __init__(self, addresses: Iterable[tuple[str, int]] = (("127.0.0.1", 0),), *,
                 judge: Callable[[Received], Answer | None] | None = None,
                 on_received: Callable[[Received], None] | None = None, keep: bool = True) -> None:
        self.requests: list[Received] = []
        self.script: dict[str, list[Answer]] = defaultdict(list)
        self.judge, self.on_received, self.keep = judge, on_received, keep
        self._lock = threading.Lock()
        handler = self._handler()
        self.servers: list[_Server] = []
        try:
            for host, port in addresses:
                try:
                    self.servers.append(_Server((host, port), handler))
                except OSError as exc:
                    raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        except OSError:
            self._close()
            raise
        self.threads: list[threading.Thread] = []

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real webhook endpoint would

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                r = Received(self.path, dict(self.headers.items()), body, 0, time.time(), time.monotonic())
                answer = receiver._answer(r)
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                r.answered = answer.status
                receiver._record(r)
                try:
                    self.send_response(answer.status)
                    for k, v in answer.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def _answer(self, r: Received) -> Answer:
        with self._lock:  # judges, like callbacks, see requests one at a time
            judged = self.judge(r) if self.judge is not None else None
            if judged is not None:
                return judged
            queue = self.script.get(r.path.partition("?")[0])
            return queue.pop(0) if queue else Answer()

    def _record(self, r: Received) -> None:
        with self._lock:
            if self.keep:
                self.requests.append(r)
            if self.on_received is not None:
                self.on_received(r)

    @property
    def port(self) -> int:
        """The port of the first address (the one the OS chose, when asked for port 0)."""
        return int(self.servers[0].server_address[1])

    @property
    def base(self) -> str:
        """The URL of the first address."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        """Serve in background threads."""
        for server in self.servers:
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True,
                                      name=f"receiver-{server.server_address[1]}")
            thread.start()
            self.threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving and close the sockets."""
        if self.threads:
            for server in self.servers:
                server.shutdown()
        self._close()

    def _close(self) -> None:
        for server in self.servers:
            server.server_close()

    def delivered(self, path: str | None = None) -> list[Received]:
        """Requests answered 2xx (to `path` if given)."""
        with self._lock:
            return [r for r in self.requests if 200 <= r.answered < 300 and (path is None or r.path == path)]

    def unique(self, path: str | None = None) -> dict[str, Received]:
        """Delivered notifications deduplicated by X-CB-Event-Id, as a receiver must."""
        return {r.header("X-CB-Event-Id"): r for r in self.delivered(path)}
