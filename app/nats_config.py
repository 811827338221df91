"""`cbrain cluster nats-config` (CONTRACT §12): the configuration files of an N-node NATS cluster.

Node K of a cluster on one host (the default) listens on `host` (127.0.0.1) at

    client  P + 10·(K-1)      cluster (routes)  + 1      MQTT  + 2      monitoring (HTTP)  + 3

with P the base port (4222): node 1 on 4222/4223/4224/4225, node 2 on 4232/…, and so on. Nodes on
hosts of their own (containers: `names="nats-{k}"`) all use node 1's ports, listen on every interface
(0.0.0.0) unless told otherwise and are reached by name. Every node runs JetStream with its own
store, an MQTT listener whose streams are replicated on min(3, N) nodes, and the account mapping of
kernel.cluster that puts each community's subjects in its partition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kernel.cluster import SubjectMap, subject_map
from kernel.errors import ConfigError

DEFAULT_BASE_PORT = 4222
# Ports of one node: client, cluster, MQTT, HTTP monitoring, from its base; the nodes' bases are apart.
PORTS_PER_NODE = 4
NODE_PORT_STRIDE = 10
CLUSTER_NAME = "cbrain"
MAX_NODES = 99
NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
HOST_RE = re.compile(r"^[A-Za-z0-9.:-]+$")
# The MQTT streams' and their consumers' replicas: a majority of three survives one node's loss.
MAX_REPLICAS = 3
# A publish larger than this is refused by the server (it closes the MQTT connection); a reading is
# at most 4 KiB (CONTRACT §1), larger ones must still reach the service to be counted as rejected.
MAX_PAYLOAD = "1MB"


@dataclass(frozen=True, slots=True)
class NatsNode:
    """One node of the cluster: its name, addresses and ports, and where it keeps its store."""

    index: int  # 1-based: node-<index>.conf
    name: str  # server_name, unique in the cluster
    host: str  # the address the other nodes and the clients reach it at
    listen: str  # the address it binds
    client_port: int
    cluster_port: int
    mqtt_port: int
    http_port: int
    store_dir: str

    @property
    def conf_name(self) -> str:
        """Its configuration file's name."""
        return f"node-{self.index}.conf"

    @property
    def url(self) -> str:
        """Its NATS client URL."""
        return f"nats://{self.host}:{self.client_port}"

    @property
    def mqtt_url(self) -> str:
        """Its MQTT listener's URL."""
        return f"mqtt://{self.host}:{self.mqtt_port}"

    @property
    def route(self) -> str:
        """Its cluster URL, which the other nodes' routes name."""
        return f"nats-route://{self.host}:{self.cluster_port}"

    @property
    def monitor_url(self) -> str:
        """Its monitoring endpoint (/healthz, /jsz, /varz)."""
        return f"http://{self.host}:{self.http_port}"


@dataclass(frozen=True, slots=True)
class Limits:
    """JetStream's limits on each node (memory for memory-backed streams, disk for file-backed ones)."""

    max_memory_store: str = "256MB"
    max_file_store: str = "8GB"


def plan(nodes: int, *, out: Path, base_port: int = DEFAULT_BASE_PORT, host: str | None = None,
         names: str | None = None, store_dir: str | None = None) -> list[NatsNode]:
    """The nodes of an N-node cluster (see the module's docstring); ConfigError, in one line, for bad input.

    names: each node's host name with `{k}` for its number (e.g. `nats-{k}`), for nodes on hosts of
    their own; store_dir: the directory under which node K keeps `node-K` (default: out, absolute).
    """
    if not 1 <= nodes <= MAX_NODES:
        raise ConfigError(f"--nodes must be between 1 and {MAX_NODES}, not {nodes}")
    last = base_port + (0 if names else NODE_PORT_STRIDE * (nodes - 1)) + PORTS_PER_NODE - 1
    if base_port < 1 or last > 65535:
        raise ConfigError(f"--base-port {base_port} with {nodes} nodes needs ports {base_port}..{last}, "
                          "beyond 1..65535")
    listen = host if host is not None else ("0.0.0.0" if names else "127.0.0.1")
    if not HOST_RE.fullmatch(listen):
        raise ConfigError(f"--host {listen!r} is not an address")
    if names is not None and "{k}" not in names:
        raise ConfigError(f"--names {names!r} must hold {{k}}, the node's number (e.g. nats-{{k}})")
    store_root = store_dir if store_dir is not None else str(out.resolve())
    if not store_root.startswith("/"):
        raise ConfigError(f"--store-dir {store_root!r} must be an absolute path")
    result = []
    for k in range(1, nodes + 1):
        name = names.replace("{k}", str(k)) if names else f"nats-{k}"
        if not NAME_RE.fullmatch(name):
            raise ConfigError(f"--names gives {name!r}, which is not a host name")
        port = base_port if names else base_port + NODE_PORT_STRIDE * (k - 1)
        result.append(NatsNode(k, name, name if names else listen, listen, port, port + 1, port + 2, port + 3,
                               f"{store_root.rstrip('/')}/node-{k}"))
    return result


def render(node: NatsNode, cluster: list[NatsNode], subjects: SubjectMap, limits: Limits = Limits()) -> str:
    """The configuration file of one node of the cluster."""
    replicas = min(MAX_REPLICAS, len(cluster))
    lines = [
        f"# Node {node.index} of {len(cluster)} of the community brain's NATS cluster (CONTRACT §12), written by",
        "# `cbrain cluster nats-config`: run it again rather than editing this file.",
        f"# Clients: {node.url}   MQTT (devices): {node.mqtt_url}   monitoring: {node.monitor_url}",
        "",
        f'server_name: "{node.name}"',
        f'listen: "{node.listen}:{node.client_port}"',
        f'http: "{node.listen}:{node.http_port}"',
        f"max_payload: {MAX_PAYLOAD}",
        "",
        "jetstream {",
        f'  store_dir: "{node.store_dir}"',
        f"  max_memory_store: {limits.max_memory_store}",
        f"  max_file_store: {limits.max_file_store}",
        "}",
        "",
    ]
    others = [n for n in cluster if n.index != node.index]
    if others:
        lines += [
            "cluster {",
            f'  name: "{CLUSTER_NAME}"',
            f'  listen: "{node.listen}:{node.cluster_port}"',
            "  routes: [",
            *(f'    "{n.route}"' for n in others),
            "  ]",
            "}",
            "",
        ]
    lines += [
        "# Devices publish MQTT 3.1.1 to any node. A QoS 1 publish is stored in the stream $MQTT_msgs, on",
        "# stream_replicas nodes, before its PUBACK; the service reads that stream. consumer_replicas is not",
        "# set: since 2.9.12 the server ignores it (its config test, -t, fails on it) and gives consumers of",
        "# these interest-retention streams the stream's replicas. ack_wait and max_ack_pending govern the",
        "# redelivery of QoS 1 messages to MQTT subscribers (server defaults), not the service's consumers.",
        "# js_api_timeout stays at its 5 s: a store asked for while $MQTT_msgs elects a leader (4-9 s) is",
        "# not answered at all, and the server closes the device's connection when it times out; a longer",
        "# timeout only holds the device longer before it reconnects and resends.",
        "mqtt {",
        f'  listen: "{node.listen}:{node.mqtt_port}"',
        f"  stream_replicas: {replicas}",
        '  ack_wait: "30s"',
        "  max_ack_pending: 1024",
        "}",
        "",
        "# Each community's subjects go to its partition (kernel/cluster.py: partition_of).",
        "mappings {",
        f'  "{subjects.source}": "{subjects.destination}"',
        "}",
    ]
    return "\n".join(lines) + "\n"


def write_configs(out: Path, nodes: int, *, base_port: int = DEFAULT_BASE_PORT, partitions: int = 16,
                  prefix: str = "cb", host: str | None = None, names: str | None = None,
                  store_dir: str | None = None, limits: Limits = Limits()) -> list[NatsNode]:
    """Write out/node-1.conf … out/node-N.conf and return the nodes (and remove a node-K.conf with K > N
    that an earlier, larger cluster left); ConfigError, in one line, for bad input or a directory that
    cannot be written."""
    try:
        subjects = subject_map(prefix, partitions)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    cluster = plan(nodes, out=out, base_port=base_port, host=host, names=names, store_dir=store_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for node in cluster:
            (out / node.conf_name).write_text(render(node, cluster, subjects, limits), encoding="utf-8")
        for stale in out.glob("node-*.conf"):
            number = stale.name.removeprefix("node-").removesuffix(".conf")
            if number.isdigit() and int(number) > nodes:
                stale.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write the configuration to {out}: {exc.strerror or exc}") from None
    return cluster
