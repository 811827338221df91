"""`cbrain run` with `cluster:`: one instance of the cluster, its HTTP listener, its signals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import uvicorn

from app.api import serving_app
from app.cluster.instance import ClusterInstance
from app.listener import EmbeddedServer, listen
from kernel.settings import Settings

log = logging.getLogger("cbrain.cluster")


async def run_instance(settings: Settings) -> None:
    """Run one instance until SIGINT or SIGTERM, then give its partitions up in order."""
    instance = ClusterInstance(settings)
    sock = listen(settings.http.host, settings.http.port)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, instance.stop)
    port = sock.getsockname()[1]
    instance.http_url = f"http://{settings.http.host}:{port}"
    await instance.connect()
    assert instance.view is not None
    server = EmbeddedServer(uvicorn.Config(serving_app(instance.view), log_level="warning", lifespan="off",
                                           access_log=False))
    http = asyncio.create_task(server.serve(sockets=[sock]), name="http")
    log.info("instance %s: HTTP on %s (health: /health)", instance.me, instance.http_url)
    try:
        await instance.run()
    finally:
        server.should_exit = True
        await http
