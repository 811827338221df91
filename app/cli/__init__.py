"""The `cbrain` command line (docs/operations.md): one module per group of commands.

    serve      run, demo, config check
    simulate   simulate, simulate-site
    tools      rules, routes, mqtt, token, dashboards
    cluster    cluster nats-config
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app.cli import cluster, drill, serve, simulate, tools
from kernel.errors import CBError, ConfigError


def parser() -> argparse.ArgumentParser:
    """The argument parser of `cbrain`."""
    p = argparse.ArgumentParser(prog="cbrain", description="community brain (社区大脑): IoT monitoring "
                                "for residential communities")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.add_run(sub)
    simulate.add(sub)
    drill.add(sub)
    tools.add(sub)
    cluster.add(sub)
    serve.add_config(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `cbrain` console script."""
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"cbrain: bad configuration: {exc}", file=sys.stderr)
        return 2
    except CBError as exc:
        print(f"cbrain: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code
