"""`cbrain drill` (docs/drills.md): start a drill of a community through the API, play a scenario's readings to
the broker, end the drill and save its report (JSON, HTML, Excel)."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.simulate import service_url_of
from kernel.errors import CBError, ConfigError

if TYPE_CHECKING:
    from app.cli.common import SubParsers


def _cmd_drill(args: argparse.Namespace) -> int:
    import httpx

    from app.config import load_settings
    from device_sim.play import Options, Player
    from device_sim.scenario import find_scenario, load_scenario

    scenario = load_scenario(find_scenario(args.scenario))
    site = args.config or scenario.site_path
    if site is None:
        raise ConfigError(f"{scenario.path}: names no site file: give --config SITE (the service's site file)")
    settings = load_settings(str(site))
    url = (args.url or service_url_of(settings)).rstrip("/")
    token = args.token or next((t.token for t in settings.api_tokens if t.role == "admin" and t.token), None)
    if token is None:
        raise ConfigError("give --token: the site file has no admin token")
    api = httpx.Client(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def call(method: str, path: str, **kw: Any) -> httpx.Response:
        r = api.request(method, path, **kw)
        if r.status_code >= 400:
            raise CBError(f"{method} {path}: {r.status_code} {r.text}")
        return r

    drill = call("POST", "/drills", json={"community": args.community, "scenario": scenario.spec.name,
                                           "bureau": args.bureau}).json()
    print(f"drill {drill['id']} of {args.community} started ({scenario.spec.name})")
    options = Options(mqtt_url=args.mqtt_url or settings.mqtt.url, speed=args.speed, api_url=url, token=token,
                      quiet=True)
    player = Player(scenario, settings, options)
    try:
        asyncio.run(asyncio.wait_for(player.run(), args.timeout))
    except TimeoutError:
        print(f"the scenario did not end within {args.timeout:g} s: the drill ends now")
    finally:
        report = call("POST", f"/drills/{drill['id']}/end").json()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"drill-{drill['id']}.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), "utf-8")
    for fmt in ("html", "xlsx"):
        body = call("GET", f"/drills/{drill['id']}/report", params={"format": fmt, "lang": args.lang}).content
        (out / f"drill-{drill['id']}.{fmt}").write_bytes(body)
    f = report["figures"]
    print(f"score {f['score']}: {f['steps_on_time']} of {f['steps']} steps on time; "
          f"{f['calls_answered_within_5min']} of {f['calls']} calls answered within 5 min")
    for x in report["late"]:
        print(f"  late: {x['name']} ({x['who']}) {x['what']} {x['detail']}: "
              f"{'never' if x['late_s'] is None else str(x['late_s']) + ' s'}")
    print(f"report saved in {out}/drill-{drill['id']}.{{json,html,xlsx}}")
    return 0


def add(sub: SubParsers) -> None:
    """`drill`."""
    p = sub.add_parser("drill", help="run a drill: its alerts are marked 演练 and never reach the bureau "
                                     "unless --bureau; ends with the drill report")
    p.add_argument("--scenario", required=True, help="a shipped scenario by name, or a YAML file")
    p.add_argument("--community", required=True, help="the community drilling")
    p.add_argument("--bureau", action="store_true", help="tell the bureau too")
    p.add_argument("--config", default=None, help="the service's site file (default: the scenario's)")
    p.add_argument("--url", default=None, help="the service's HTTP address (default: the site file's)")
    p.add_argument("--token", default=None, help="API token (default: the site file's admin token)")
    p.add_argument("--mqtt-url", default=None, help="broker (default: the site file's mqtt.url)")
    p.add_argument("--speed", type=float, default=None, help="simulated seconds per wall second")
    p.add_argument("--timeout", type=float, default=3600.0, help="wall seconds to wait for the scenario's end")
    p.add_argument("--out", default=".", help="where the report is saved")
    p.add_argument("--lang", choices=["zh-CN", "en"], default="zh-CN", help="the report's words")
    p.set_defaults(func=_cmd_drill)
