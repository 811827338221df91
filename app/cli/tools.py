"""The tool commands of `cbrain`: broker accounts, API tokens, dashboards, rules and routes."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from app.config import load_settings
from kernel.errors import ConfigError

if TYPE_CHECKING:
    from app.cli.common import SubParsers


def _cmd_mqtt_provision(args: argparse.Namespace) -> int:
    from pathlib import Path

    from app.broker_accounts import hand_over, owner_name, parse_owner, provision

    owner = parse_owner(args.owner) if args.owner is not None else None  # before anything is written
    settings = load_settings(args.config)
    out = Path(args.out)
    done = provision(settings, out, rotate=args.rotate)
    service = done.accounts[0]
    sources = sum(1 for a in done.accounts if a.username in {s.id for s in settings.sources})
    print(f"{out}: passwd, acl and credentials.csv for the service, {len(done.accounts) - 1 - sources} devices "
          f"and {sources} sources "
          f"({done.created} new passwords, {done.kept} kept)")
    if owner is not None and hand_over(out, owner):
        print(f"{out}: its group may now enter it (group id {owner.gid}), so that the broker reaches its files")
    who = owner_name((out / "passwd").stat().st_uid)
    print(f"passwd and acl: mode 0600, owned by {who}; credentials.csv stays with {owner_name(os.geteuid())}")
    if owner is None:
        print("a broker that runs as its own user (Debian's and the container's mosquitto) cannot read them "
              "('Unable to open pwfile'): run again with --owner mosquitto (the container's: --owner 1883:1883), "
              f"or as root: chown mosquitto: {out / 'passwd'} {out / 'acl'}")
    if not done.service_password_from_config:
        print(f"the service connects as {service.username!r}: set mqtt.username and mqtt.password in {args.config} "
              f"(or user:pass in mqtt.url / CB_MQTT_URL) to its row of {out / 'credentials.csv'}")
    return 0


def _cmd_token_new(args: argparse.Namespace) -> int:
    import hashlib
    import secrets

    from kernel.ids import is_identifier

    if args.recipient is not None and not is_identifier(args.recipient):
        raise ConfigError(f"--recipient {args.recipient!r} is not a valid identifier")
    if args.config:
        settings = load_settings(args.config)
        if args.recipient is not None and args.recipient not in {r.id for r in settings.recipients}:
            raise ConfigError(f"recipient {args.recipient!r} is not in {args.config}")
    token = secrets.token_urlsafe(32)
    digest = hashlib.sha256(token.encode()).hexdigest()
    who = f"recipient: {args.recipient}" if args.recipient is not None else f"role: {args.role}"
    print(f"token: {token}")
    print("paste under api_tokens: (the site file keeps only the digest; give the token to its holder)")
    print(f"  - {{token_sha256: {digest}, {who}}}")
    return 0


def _cmd_dashboards_build(args: argparse.Namespace) -> int:
    from dashboards.build import HERE, generate, write

    settings = load_settings(args.config) if args.config else None
    if args.check:
        stale = [str(p.relative_to(HERE.parent)) for p, text in generate(settings).items()
                 if not p.exists() or p.read_text(encoding="utf-8") != text]
        if stale:
            print(f"cbrain: dashboards differ from the code: {', '.join(stale)} (run cbrain dashboards build)",
                  file=sys.stderr)
            return 1
        print("dashboards match the code")
        return 0
    for path in write(settings):
        print(path)
    return 0


def _cmd_dashboards_push(args: argparse.Namespace) -> int:
    from dashboards.push import push

    settings = load_settings(args.config) if args.config else None
    result = push(args.url, args.token, settings=settings, influx_url=args.influx_url)
    print(f"data source {result.datasource}, folder {result.folder}, {len(result.dashboards)} dashboards uploaded "
          f"to {args.url}")
    return 0


def _cmd_rules_check(args: argparse.Namespace) -> int:
    from app.config import read_rules

    ruleset = read_rules(args.file)
    print(f"{args.file}: ok ({len(ruleset.rules)} rules, {len(ruleset.overrides)} overrides)")
    return 0


def _cmd_rules_test(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rules.timelines import run_file

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


def _cmd_profiles_test(args: argparse.Namespace) -> int:
    from pathlib import Path

    from app.config import library
    from ingest.sources.examples import run_examples
    from kernel.settings.parsing import ProfileFile, parse_profiles

    profiles = list(library()) if not args.files and not args.config else []
    for name in args.files:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"{path}: no such file")
        profiles += parse_profiles(ProfileFile(path.read_text(encoding="utf-8"), str(path), str(path.resolve().parent)))
    if args.config:
        settings = load_settings(args.config)
        profiles += settings.profiles
    failed = total = skipped = 0
    for profile in profiles:
        if not profile.examples:
            print(f"NONE  {profile.id}: no examples")
        for result in run_examples(profile):
            if result.skipped:
                skipped += 1
                print(f"SKIP  {result.profile}: {result.name}: {result.skipped}")
                continue
            total += 1
            if result.passed:
                print(f"PASS  {result.profile}: {result.name}")
                continue
            failed += 1
            print(f"FAIL  {result.profile}: {result.name}")
            print(f"  expected: {result.expected}")
            print(f"  got:      {result.got}")
    print(f"{total - failed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
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


def add(sub: SubParsers) -> None:
    """`rules`, `routes`, `mqtt`, `token` and `dashboards`."""
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
    profiles = sub.add_parser("profiles", help="profile tools (devices that report through other systems)")
    psub = profiles.add_subparsers(dest="profiles_command", required=True, metavar="ACTION")
    ptest = psub.add_parser("test", help="run profiles' examples: each input must give its reading "
                            "(no files and no --config: the built-in profiles)")
    ptest.add_argument("files", nargs="*", help="profile files")
    ptest.add_argument("--config", default=None, help="also the site file's own profiles and profile_files")
    ptest.set_defaults(func=_cmd_profiles_test)
    _add_mqtt(sub)
    _add_token(sub)
    _add_dashboards(sub)


def _add_mqtt(sub: SubParsers) -> None:
    mqtt = sub.add_parser("mqtt", help="broker tools")
    msub = mqtt.add_subparsers(dest="mqtt_command", required=True, metavar="ACTION")
    prov = msub.add_parser("provision", help="write Mosquitto's password file and ACL and credentials.csv "
                           "for the site's devices and the service")
    prov.add_argument("--config", required=True, help="the site file")
    prov.add_argument("--out", required=True, help="directory for passwd, acl and credentials.csv")
    prov.add_argument("--rotate", action="store_true", help="new passwords for everyone (default: keep them)")
    prov.add_argument("--owner", default=None, metavar="USER[:GROUP]",
                      help="give passwd and acl to the user the broker runs as (e.g. mosquitto, or 1883:1883 for "
                           "the container); only root can")
    prov.set_defaults(func=_cmd_mqtt_provision)


def _add_token(sub: SubParsers) -> None:
    token = sub.add_parser("token", help="API token tools")
    tsub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    tnew = tsub.add_parser("new", help="print a new random token and its api_tokens line")
    who = tnew.add_mutually_exclusive_group(required=True)
    who.add_argument("--recipient", default=None, help="the recipient id the token acts for")
    who.add_argument("--role", choices=["admin", "grid_worker", "community", "street_office", "bureau"],
                     default=None, help="a role instead of a recipient")
    tnew.add_argument("--config", default=None, help="check the recipient against this site file")
    tnew.set_defaults(func=_cmd_token_new)


def _add_dashboards(sub: SubParsers) -> None:
    dash = sub.add_parser("dashboards", help="Grafana dashboards as code")
    dsub = dash.add_subparsers(dest="dashboards_command", required=True, metavar="ACTION")
    dbuild = dsub.add_parser("build", help="write the dashboards' JSON files under dashboards/")
    dbuild.add_argument("--config", default=None, help="a site file whose map tiles and centre to use")
    dbuild.add_argument("--check", action="store_true", help="only say whether the files match the code")
    dbuild.set_defaults(func=_cmd_dashboards_build)
    dpush = dsub.add_parser("push", help="upload the data source, folder and dashboards to a running Grafana")
    dpush.add_argument("--url", required=True, help="Grafana's address, e.g. http://127.0.0.1:3000")
    dpush.add_argument("--token", required=True, help="a Grafana service-account token (Admin role)")
    dpush.add_argument("--config", default=None, help="the site file (InfluxDB database, map tiles)")
    dpush.add_argument("--influx-url", default=None,
                       help="InfluxDB as Grafana reaches it (default: the site file's, else http://influxdb:8086)")
    dpush.set_defaults(func=_cmd_dashboards_push)
