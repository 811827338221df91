"""The cluster commands of `cbrain` (CONTRACT §12): the NATS cluster's configuration."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.cli.common import SubParsers


def _cmd_nats_config(args: argparse.Namespace) -> int:
    from app.nats_config import write_configs

    out = Path(args.out)
    nodes = write_configs(out, args.nodes, base_port=args.base_port, partitions=args.partitions, prefix=args.prefix,
                          host=args.host, names=args.names, store_dir=args.store_dir)
    print(f"{out}: {', '.join(n.conf_name for n in nodes)} ({len(nodes)} nodes, {args.partitions} partitions of "
          f"{args.prefix}/…, MQTT streams on {min(3, len(nodes))} nodes)")
    for n in nodes:
        print(f"  {n.name}: MQTT {n.mqtt_url}  NATS {n.url}  monitoring {n.monitor_url}  "
              f"(nats-server -c {out / n.conf_name})")
    print(f"the service: cluster: {{nats: [{', '.join(n.url for n in nodes)}], partitions: {args.partitions}}} "
          "(or CB_CLUSTER_NATS)")
    return 0


def add(sub: SubParsers) -> None:
    """`cluster nats-config`."""
    from app.nats_config import DEFAULT_BASE_PORT, NODE_PORT_STRIDE

    cluster = sub.add_parser("cluster", help="cluster tools (several instances over a NATS JetStream cluster)")
    csub = cluster.add_subparsers(dest="cluster_command", required=True, metavar="ACTION")
    conf = csub.add_parser(
        "nats-config", help="write node-1.conf … node-N.conf for an N-node NATS cluster",
        description="Write DIR/node-1.conf … DIR/node-N.conf: JetStream, routes to every node, an MQTT listener "
        "on each (streams on min(3, N) nodes) and the mapping of each community into its partition. Node K "
        f"listens on client P+{NODE_PORT_STRIDE}·(K-1), cluster +1, MQTT +2, monitoring +3; with --names, "
        "every node on P, P+1, P+2, P+3 of its own host.")
    conf.add_argument("--nodes", type=int, required=True, help="how many nodes (3 survives the loss of one)")
    conf.add_argument("--out", required=True, metavar="DIR", help="the directory for the files")
    conf.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT, metavar="P",
                      help=f"node 1's client port (default {DEFAULT_BASE_PORT})")
    conf.add_argument("--partitions", type=int, default=16,
                      help="partitions of the communities; the service's cluster.partitions (default 16)")
    conf.add_argument("--prefix", default="cb",
                      help="the devices' topic prefix (the site file's mqtt.prefix, default cb)")
    conf.add_argument("--host", default=None, help="the address the nodes listen on (default 127.0.0.1; "
                      "with --names 0.0.0.0)")
    conf.add_argument("--names", default=None, metavar="PATTERN",
                      help="nodes on hosts of their own, reached by name: {k} is the node's number (e.g. nats-{k} "
                      "for containers nats-1 … nats-N)")
    conf.add_argument("--store-dir", default=None, metavar="PATH",
                      help="where node K keeps its store, as PATH/node-K (default: DIR, absolute)")
    conf.set_defaults(func=_cmd_nats_config)
