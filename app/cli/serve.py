"""`cbrain run`, `cbrain demo` and `cbrain config check`: the service itself."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from app.cli.common import LOG_LEVEL, add_event_loop, positive, run_loop, setup_logging
from app.config import load_settings
from ingest.disk_errors import start_error

if TYPE_CHECKING:
    from app.cli.common import SubParsers


def _cmd_run(args: argparse.Namespace) -> int:
    from app.api import serving_app
    from app.service import Service, run_until_signal

    settings = load_settings(args.config)
    setup_logging(args.log_level)
    if settings.cluster is not None:
        from app.cluster.serve import run_instance

        run_loop(run_instance(settings), args.event_loop)
        return 0
    try:
        run_loop(run_until_signal(Service(settings, http_app=serving_app)), args.event_loop)
    except (sqlite3.Error, OSError) as exc:
        # The state databases (state_dir) failing at start: one line naming them and what to do.
        raise start_error(exc, Path(settings.state_dir)) or exc from None
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from app.example_secrets import check_example_secrets

    settings = load_settings(args.config)
    for warning in check_example_secrets(settings):  # beyond loopback: ConfigError, as `cbrain run` would
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{args.config}: ok ({len(settings.communities)} communities, {len(settings.devices)} devices, "
          f"{len(settings.recipients)} recipients, {len(settings.api_tokens)} tokens)")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from app.demo import run_demo

    setup_logging(args.log_level)
    return run_loop(run_demo(rate=args.rate, duration_s=args.duration), args.event_loop)


def add_run(sub: SubParsers) -> None:
    """`run` and `demo`."""
    run = sub.add_parser("run", help="run the service (ingest, rules, alerts, HTTP API)")
    run.add_argument("--config", required=True, help="the site / configuration YAML file")
    run.add_argument("--log-level", default=LOG_LEVEL)
    add_event_loop(run)
    run.set_defaults(func=_cmd_run)

    demo = sub.add_parser("demo", help="run everything on embedded defaults with simulated devices")
    demo.add_argument("--rate", type=positive, default=20.0, help="simulated readings per second")
    demo.add_argument("--duration", type=positive, default=None, help="stop after this many seconds")
    demo.add_argument("--log-level", default=LOG_LEVEL)
    add_event_loop(demo)
    demo.set_defaults(func=_cmd_demo)


def add_config(sub: SubParsers) -> None:
    """`config check`."""
    config = sub.add_parser("config", help="configuration tools")
    csub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = csub.add_parser("check", help="validate a configuration file")
    check.add_argument("config")
    check.set_defaults(func=_cmd_check)
