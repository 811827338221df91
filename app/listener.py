"""The HTTP listener's socket."""

from __future__ import annotations

import socket

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
