"""A real HTTP receiver for webhook notifications: records every request, answers as scripted."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.servers import free_port


@dataclass
class Answer:
    """How to answer one request: a status, after a delay, with headers."""

    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Received:
    """One request as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes
    answered: int
    at: float

    @property
    def json(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.body)
        return result


class Receiver:
    """ThreadingHTTPServer on 127.0.0.1; `script[path]` answers (path without the query) are used in
    order, then 200."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[Received] = []
        self.script: dict[str, list[Answer]] = defaultdict(list)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    queue = receiver.script.get(self.path.partition("?")[0])
                    answer = queue.pop(0) if queue else Answer()
                time.sleep(answer.delay_s)
                with receiver._lock:
                    receiver.requests.append(Received(self.path, dict(self.headers.items()), body, answer.status,
                                                      time.time()))
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

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def delivered(self, path: str | None = None) -> list[Received]:
        """Requests answered 2xx (to `path` if given)."""
        with self._lock:
            return [r for r in self.requests if 200 <= r.answered < 300 and (path is None or r.path == path)]

    def unique(self, path: str | None = None) -> dict[str, Received]:
        """Delivered notifications deduplicated by X-CB-Event-Id, as a receiver must."""
        return {r.headers["X-CB-Event-Id"]: r for r in self.delivered(path)}


def verify(secret: str, r: Received) -> bool:
    """Whether a request carries a valid signature of docs/alerts.md."""
    ts = r.headers["X-CB-Timestamp"]
    want = "sha256=" + hmac.new(secret.encode(), ts.encode() + b"." + r.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, r.headers["X-CB-Signature"])
