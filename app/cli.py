"""The `cbrain` command line (CONTRACT.md section 6)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from app.config import load_settings
from kernel.errors import CBError, ConfigError
from kernel.settings import Settings


def _logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for noisy in ("amqtt", "transitions"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _cmd_run(args: argparse.Namespace) -> int:
    from app.service import Service, run_until_signal

    settings = load_settings(args.config)
    _logging(args.log_level)
    asyncio.run(run_until_signal(Service(settings)))
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    print(f"{args.config}: ok ({len(settings.communities)} communities, {len(settings.devices)} devices, "
          f"{len(settings.recipients)} recipients, {len(settings.api_tokens)} tokens)")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from app.demo import run_demo

    _logging(args.log_level)
    return asyncio.run(run_demo(rate=args.rate, duration_s=args.duration))


def _cmd_simulate(args: argparse.Namespace) -> int:
    from app.demo import site_devices
    from device_sim.publisher import Publisher

    settings: Settings = load_settings(args.config)
    url = args.mqtt_url or settings.mqtt.url
    devices = site_devices(settings)
    publisher = Publisher(url, settings.mqtt.prefix, devices, rate=args.rate, seed=args.seed)
    try:
        sent = publisher.run(duration_s=args.duration, count=args.count)
    except OSError as exc:
        raise CBError(f"cannot reach the broker at {url}: {exc}") from None
    except KeyboardInterrupt:
        sent = publisher.sent
    print(f"published {sent} readings from {len(devices)} devices to {url}")
    return 0


def _cmd_rules_check(args: argparse.Namespace) -> int:
    from app.config import read_rules

    ruleset = read_rules(args.file)
    print(f"{args.file}: ok ({len(ruleset.rules)} rules, {len(ruleset.overrides)} overrides)")
    return 0


def _cmd_rules_test(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rules.testing import run_file

    failed = total = 0
    for name in args.files:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"{path}: no such file")
        for result in run_file(path):
            total += 1
            if result.passed:
                print(f"PASS  {path.name}: {result.name}")
                continue
            failed += 1
            print(f"FAIL  {path.name}: {result.name}")
            print("  expected:")
            print("\n".join(f"    {line}" for line in result.expected) or "    (no transitions)")
            print("  got:")
            print("\n".join(f"    {line}" for line in result.got) or "    (no transitions)")
    print(f"{total - failed} passed, {failed} failed")
    return 1 if failed else 0


def _cmd_routes_test(args: argparse.Namespace) -> int:
    from alerts.route import BASE_TIER, Router
    from kernel.alerting import ROLES, Alert, AlertStatus, Level
    from kernel.ids import UNKNOWN
    from kernel.site import Site

    settings = load_settings(args.config)
    site = Site(settings)
    if args.community not in site.communities:
        raise ConfigError(f"community {args.community!r} is not in {args.config}")
    if args.device:
        place = site.place(args.community, args.device)
        building, grid = place.building, place.grid
    else:
        building = args.building or UNKNOWN
        grid = site.grid_of(args.community, building)
    level = Level(args.level)
    tier = BASE_TIER[level] + args.escalations
    alert = Alert("-", args.rule, level, AlertStatus.FIRING, args.community, building, grid, args.device or "-",
                  "-", None, 0, 0, "")
    router = Router(settings)
    route = router.route(alert)
    tier = min(tier, len(ROLES) - 1, route.max_tier)
    told = router.tier_recipients(alert, tier)
    where = f"{args.community}/{building}/{grid}"
    print(f"{args.rule} {level.value} at {where}, route {' > '.join(route.path)}, tier {ROLES[tier]}, "
          f"escalates after {route.ack_timeout_s[level]:g} s:")
    for r in told:
        kinds = ", ".join(c.type for c in r.channels) or "no channel"
        print(f"  {r.id:<20} {r.role:<14} {r.name} ({kinds})")
    if not told:
        print("  nobody: no recipient covers this place")
        return 1
    return 0


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def parser() -> argparse.ArgumentParser:
    """The argument parser of `cbrain`."""
    p = argparse.ArgumentParser(prog="cbrain", description="community brain (社区大脑): IoT monitoring "
                                "for residential communities")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the service (ingest, rules, alerts, HTTP API)")
    run.add_argument("--config", required=True, help="the site / configuration YAML file")
    run.add_argument("--log-level", default=os.environ.get("CB_LOG_LEVEL", "info"))
    run.set_defaults(func=_cmd_run)

    demo = sub.add_parser("demo", help="run everything on embedded defaults with simulated devices")
    demo.add_argument("--rate", type=_positive, default=20.0, help="simulated readings per second")
    demo.add_argument("--duration", type=_positive, default=None, help="stop after this many seconds")
    demo.add_argument("--log-level", default=os.environ.get("CB_LOG_LEVEL", "info"))
    demo.set_defaults(func=_cmd_demo)

    sim = sub.add_parser("simulate", help="publish simulated readings for the devices of a site file")
    sim.add_argument("--config", required=True, help="the site file whose devices to simulate")
    sim.add_argument("--mqtt-url", default=None, help="broker (default: the site file's mqtt.url)")
    sim.add_argument("--rate", type=_positive, default=10.0, help="readings per second")
    sim.add_argument("--duration", type=_positive, default=None, help="seconds to run")
    sim.add_argument("--count", type=int, default=None, help="readings to send")
    sim.add_argument("--seed", type=int, default=1)
    sim.set_defaults(func=_cmd_simulate)

    rules = sub.add_parser("rules", help="rule tools")
    rsub = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    rcheck = rsub.add_parser("check", help="validate a rules file")
    rcheck.add_argument("file")
    rcheck.set_defaults(func=_cmd_rules_check)
    rtest = rsub.add_parser("test", help="run rule tests (timelines of readings and expected transitions)")
    rtest.add_argument("files", nargs="+")
    rtest.set_defaults(func=_cmd_rules_test)

    routes = sub.add_parser("routes", help="routing tools")
    rosub = routes.add_subparsers(dest="routes_command", required=True, metavar="ACTION")
    rotest = rosub.add_parser("test", help="show who would be told of an alert")
    rotest.add_argument("--config", required=True)
    rotest.add_argument("--community", required=True)
    rotest.add_argument("--building", default=None)
    rotest.add_argument("--device", default=None, help="a device id (its place comes from the site file)")
    rotest.add_argument("--level", required=True, choices=["blue", "yellow", "orange", "red"])
    rotest.add_argument("--rule", default="smoke.alarm")
    rotest.add_argument("--escalations", type=int, default=0, help="how many times it was escalated")
    rotest.set_defaults(func=_cmd_routes_test)

    config = sub.add_parser("config", help="configuration tools")
    csub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = csub.add_parser("check", help="validate a configuration file")
    check.add_argument("config")
    check.set_defaults(func=_cmd_check)
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


if __name__ == "__main__":
    sys.exit(main())
