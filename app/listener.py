"""The HTTP listener: its socket, and uvicorn inside the service's event loop."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from kernel.errors import ConfigError


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, bound before anything starts; ConfigError (one line) when it cannot be (a
    port already in use would otherwise leave a service running with no /health)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} (http.host, http.port): {exc.strerror or exc}") from None
    # Accepted connections inherit it, so an answer's head and body leave at once rather than after
    # the client's delayed ACK (40 ms each): asyncio sets it only on sockets made with IPPROTO_TCP.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


async def no_pages(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The listener of a service made without an HTTP application: 404 for everything."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"no HTTP application\n"})


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside our event loop: signals belong to the service, which stops uvicorn in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
