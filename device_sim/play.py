"""Playing a scenario against a running service, and (with verify) judging who was told, and when.

    scenario file ──► timeline ──► Fleet (readings, wills) ──MQTT──► service ──► webhooks / events
                          │                                                          │
                          └──► API actions (silence, ack)          receiver / stream ◄┘──► judge
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from device_sim.fleet import Faults, Fleet
from device_sim.receiver import Receiver
from device_sim.scenario import FLEET_ACTIONS, SITE_ACTIONS, EventSpec, Expectation, Scenario, check_against_site
from device_sim.specs import site_devices
from device_sim.types import BEHAVIOURS, make_model
from device_sim.verify import Ear, Heard, Outcome, follow_events, judge, listen, unexpected, webhook_addresses
from kernel.durations import format_duration, parse_duration
from kernel.errors import CBError, ConfigError
from kernel.ids import DeviceType
from kernel.settings import Settings

# A scenario's readings must stay inside what the service accepts: at most 5 minutes ahead of its clock.
_MARGIN_S = 5.0


@dataclass(slots=True)
class Options:
    """How to play: where, how fast, and how to listen."""

    mqtt_url: str
    speed: float | None = None
    seed: int = 1
    verify: bool = False
    via: str = "auto"  # auto, webhooks, events
    api_url: str | None = None
    token: str | None = None
    connections: int = 4
    quiet: bool = False  # no line per scenario event as it happens
    service_url: str | None = None  # where push sources' devices push (default: api_url)


@dataclass(slots=True)
class Report:
    """What happened."""

    outcomes: list[Outcome] = field(default_factory=list)
    unexpected: list[Heard] = field(default_factory=list)
    sent: int = 0
    acked: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every expectation met, nothing unexpected, no action failed."""
        return all(o.met for o in self.outcomes) and not self.unexpected and not self.errors


def _probe(dtype: DeviceType, behaviour: str, params: dict[str, Any]) -> None:
    make_model(dtype, random.Random(0)).begin(behaviour, 0.0, params)


def plan_start(scenario: Scenario, speed: float, now: float, latest: float | None = None) -> float:
    """The simulated start time (epoch seconds): early enough that no reading is ever ahead of the clock.

    At speed S a scenario of D seconds plays in D/S wall seconds, so it starts D - D/S in the past.
    `time_of_day` moves the start back to the latest such time of day; `latest`, the newest reading
    time the service already has from these devices, moves it forward when it still fits."""
    spec = scenario.spec
    ahead = spec.duration - spec.duration / speed
    start = now - ahead - spec.faults.skew - _MARGIN_S
    if spec.time_of_day:
        hh, mm = map(int, spec.time_of_day.split(":"))
        local = datetime.fromtimestamp(start).astimezone()
        at = local.replace(hour=hh, minute=mm, second=0, microsecond=0)
        if at > local:
            at -= timedelta(days=1)
        start = at.timestamp()
    if latest is not None and latest >= start:
        moved = latest + 1.0
        if moved + ahead + spec.faults.skew > now + 240:
            raise CBError(f"the service already has readings of these devices up to "
                          f"{datetime.fromtimestamp(latest).astimezone():%H:%M:%S}; at speed {speed:g} this "
                          f"scenario's readings would run ahead of its clock: wait {format_duration(moved - start)}, "
                          f"lower --speed, or use a fresh service")
        start = moved
    return start


class Player:
    """Plays one scenario."""

    def __init__(self, scenario: Scenario, settings: Settings, options: Options,
                 out: Callable[[str], None] = print) -> None:
        check_against_site(scenario, settings, BEHAVIOURS, _probe)
        self.scenario, self.settings, self.options, self.out = scenario, settings, options, out
        spec = scenario.spec
        self.speed = options.speed or spec.speed
        self.api_url = options.api_url or f"http://{settings.http.host}:{settings.http.port}"
        self.token = options.token or next((t.token for t in settings.api_tokens
                                            if t.role == "admin" and t.token), None)
        chosen = set(spec.devices) if spec.devices != "all" else None
        listed, left_out = site_devices(settings)
        self.devices = [d for d in listed if chosen is None or d.device_id in chosen]
        named = {d for ev in spec.events for d in ev.device} | (chosen or set())
        cannot = sorted(named & set(left_out))
        if cannot:
            raise ConfigError(f"{scenario.path}: device {cannot[0]} cannot be simulated: {left_out[cannot[0]]}")
        self.service_url = options.service_url or self.api_url
        needs_api = any(ev.do in SITE_ACTIONS for ev in spec.events)
        if needs_api and not self.token:
            raise ConfigError("this scenario silences or acknowledges alerts through the API: give --token "
                              "(or an admin token in the site file)")
        self.report = Report()

    # ---- the API ---------------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.api_url, timeout=10,
                                 headers={"Authorization": f"Bearer {self.token}"} if self.token else {})

    async def _latest_reading(self) -> float | None:
        """The newest reading time the service has from the scenario's devices (None: unknown or none)."""
        if not self.token:
            return None
        ids = {d.device_id for d in self.devices}
        try:
            async with self._client() as c:
                r = await c.get("/api/v1/devices")
        except httpx.HTTPError:
            return None
        if r.status_code != 200:
            return None
        times = [datetime.fromisoformat(d["last_ts"]).timestamp() for d in r.json()
                 if d["device_id"] in ids and d.get("last_ts")]
        return max(times, default=None)

    async def _site_action(self, ev: EventSpec, sim_t: float) -> None:
        p = dict(ev.params)
        try:
            async with self._client() as c:
                if ev.do in ("whistle", "report", "confirm"):
                    r = await self._whistle_action(c, ev, p)
                elif ev.do == "silence":
                    body: dict[str, Any] = {k: p[k] for k in ("community", "building", "device_id", "rule")
                                            if k in p}
                    body["duration_s"] = parse_duration(p.get("duration", "1h"))
                    body["reason"] = str(p.get("reason", self.scenario.spec.title))
                    r = await c.post("/api/v1/silences", json=body)
                else:
                    alerts = await c.get("/api/v1/alerts", params={"status": "firing", "rule": p.get("rule")})
                    alerts.raise_for_status()
                    # A building's alert (smoke.multi) is found by the building of the devices named.
                    places = {(d.community, d.building) for d in self.settings.devices if d.id in ev.device}
                    found = [a for a in alerts.json() if not ev.device or a["device_id"] in ev.device
                             or (a["device_id"].startswith("building:") and (a["community"], a["building"]) in places)]
                    if not found:
                        raise CBError(f"no firing {p.get('rule')} alert to acknowledge at {', '.join(ev.device)}")
                    by = self._token_of(str(p["by"])) if "by" in p else None
                    headers = {"Authorization": f"Bearer {by}"} if by else {}
                    r = await c.post(f"/api/v1/alerts/{found[0]['id']}/ack", json={"note": p.get("note", "")},
                                     headers=headers)
            if r.status_code >= 300:
                raise CBError(f"{ev.do} answered {r.status_code}: {r.text[:200]}")
        except (httpx.HTTPError, CBError) as exc:
            self.report.errors.append(f"{format_duration(sim_t)} {ev.do}: {exc}")

    async def _whistle_action(self, c: httpx.AsyncClient, ev: EventSpec, p: dict[str, Any]) -> httpx.Response:
        """吹哨报到 through the API: blow on an alert, or act on the newest open work order of a department."""
        if ev.do == "whistle":
            alerts = await c.get("/api/v1/alerts", params={"status": "firing", "rule": p["rule"]})
            alerts.raise_for_status()
            found = [a for a in alerts.json() if not ev.device or a["device_id"] in ev.device]
            if not found:
                raise CBError(f"no firing {p['rule']} alert to blow the whistle on at {', '.join(ev.device)}")
            departments = p["departments"] if isinstance(p["departments"], list) else [p["departments"]]
            return await c.post("/api/v1/whistles", json={
                "grade": p.get("grade", "urgent"), "what": p.get("what") or found[0]["summary"],
                "alert_id": found[0]["id"], "departments": departments})
        listed = await c.get("/api/v1/whistles", params={"limit": 50})
        listed.raise_for_status()
        wanted = "done" if ev.do == "confirm" else None
        whistle = next((w for w in listed.json() for o in w["orders"] if o["department"] == p["department"]
                        and (o["status"] == wanted if wanted else o["status"] not in ("done", "confirmed"))), None)
        if whistle is None:
            raise CBError(f"no work order of {p['department']} to {ev.do}")
        if ev.do == "confirm":
            return await c.post(f"/api/v1/whistles/{whistle['id']}/orders/{p['department']}/confirm",
                                json={"rating": int(p["rating"]), "note": p.get("note")})
        full = await c.get(f"/api/v1/whistles/{whistle['id']}")  # the admin is given each order's link token
        full.raise_for_status()
        order = next(o for o in full.json()["orders"] if o["department"] == p["department"])
        return await c.post(f"/api/v1/work-orders/{order['link_token']}/{p['step']}", json={"note": p.get("note")})
    def _token_of(self, recipient: str) -> str:
        """A token of the site file that acts as this recipient."""
        token = next((t.token for t in self.settings.api_tokens if t.recipient == recipient and t.token), None)
        if token is None:
            raise CBError(f"the site file has no token of {recipient!r} to answer with")
        return token

    async def _recorded(self, x: Expectation, since: float) -> bool | None:
        """Whether the service recorded an alert an expectation of silence is about (None: cannot ask)."""
        if not self.token:
            return None
        try:
            async with self._client() as c:
                r = await c.get("/api/v1/alerts", params={"rule": x.rule})
        except httpx.HTTPError:
            return None
        if r.status_code != 200:
            return None
        return any(x.matches(x.event[0].value if x.event else "fired", a)
                   and datetime.fromisoformat(a["started_at"]).timestamp() >= since - 1 for a in r.json())

    # ---- playing ---------------------------------------------------------------------------------

    def _schedule(self, fleet: Fleet, start: float) -> None:
        for ev in self.scenario.spec.events:
            act = self._action(fleet, ev, start + ev.at)
            fleet.at(start + ev.at, act if self.options.quiet else self._told(ev, act))

    def _told(self, ev: EventSpec, act: Callable[[], Any]) -> Callable[[], Any]:
        """The action, announced on the timeline as it happens."""
        who = ", ".join(ev.device) if len(ev.device) <= 3 else f"{len(ev.device)} devices"
        line = " ".join(p for p in (f"  {format_duration(ev.at):>8} ", ev.do, who,
                                    *(f"{k}={v}" for k, v in ev.params.items())) if p)

        def announced() -> Any:
            self.out(line)
            return act()
        return announced

    def _action(self, fleet: Fleet, ev: EventSpec, t: float) -> Callable[[], Any]:
        if ev.do in SITE_ACTIONS:
            return lambda: self._site_action(ev, t - self._start)
        if ev.do in FLEET_ACTIONS:
            def switch() -> None:
                for d in ev.device:
                    (fleet.offline if ev.do == "offline" else fleet.online)(d)
            return switch

        def begin() -> None:
            for d in ev.device:
                fleet.models[d].begin(ev.do, t, dict(ev.params))
        return begin

    async def run(self) -> Report:
        """Play the scenario (and judge it when verifying)."""
        spec, opts = self.scenario.spec, self.options
        ear = Ear()
        listeners: list[asyncio.Task[None]] = []
        receiver: Receiver | None = None
        if opts.verify:
            receiver = await self._listen(ear, listeners)
        try:
            start = plan_start(self.scenario, self.speed, time.time(), await self._latest_reading())
            self._start = start
            own = {d for ev in spec.events if ev.do in FLEET_ACTIONS for d in ev.device}
            fleet = Fleet(opts.mqtt_url, self.settings.mqtt.prefix, self.devices, seed=opts.seed, speed=self.speed,
                          start=start, connections=opts.connections, own_connection=own,
                          faults=Faults(spec.faults.dropout, spec.faults.duplicate, spec.faults.reorder,
                                        spec.faults.skew),
                          client_id_prefix=f"cbrain-sim-{spec.name}", service_url=self.service_url)
            self._schedule(fleet, start)
            wall0: list[float] = []
            fleet.at(start, lambda: wall0.append(time.monotonic()))
            self.out(f"scenario {spec.name}: {spec.title} ({format_duration(spec.duration)} at speed "
                     f"{self.speed:g}, {len(self.devices)} devices, seed {opts.seed})")
            stats = await fleet.run(until=start + spec.duration)
            self.report.sent, self.report.acked = stats.sent, stats.acked
            if opts.verify:
                await self._judge(ear, wall0[0] if wall0 else time.monotonic(), start)
        finally:
            for task in listeners:
                task.cancel()
            for task in listeners:
                with contextlib.suppress(BaseException):
                    await task
            if receiver is not None:
                await asyncio.to_thread(receiver.stop)
        return self.report

    async def _listen(self, ear: Ear, tasks: list[asyncio.Task[None]]) -> Receiver | None:
        addresses, secrets, unheard = webhook_addresses(self.settings)
        via = self.options.via
        if via == "auto":
            via = "webhooks" if addresses and not unheard else "events"
        if via == "webhooks":
            if not addresses:
                raise ConfigError("no recipient of the site has a webhook on this machine to listen for")
            return listen(ear, secrets, sorted(addresses))
        if not self.token:
            raise ConfigError("to verify through the event stream, give --token (an admin token sees everything)")
        ready = asyncio.Event()
        task = asyncio.create_task(follow_events(ear, self.api_url, self.token, ready))
        tasks.append(task)
        done, _ = await asyncio.wait({task, asyncio.ensure_future(ready.wait())}, timeout=10,
                                     return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            exc = task.exception()
            raise CBError(f"cannot follow {self.api_url}/api/v1/events: {exc}")
        if not ready.is_set():
            raise CBError(f"{self.api_url}/api/v1/events did not answer within 10 s")
        return None

    async def _judge(self, ear: Ear, wall0: float, start: float) -> None:
        spec = self.scenario.spec

        def window(x: Expectation) -> tuple[float, float]:
            latency = spec.latency if x.latency is None else x.latency
            return wall0 + x.at / self.speed, wall0 + (x.at + x.within) / self.speed + latency

        last = max(window(x)[1] for x in spec.expect)
        while time.monotonic() < last:
            pending = [x for x in spec.expect if window(x)[1] > time.monotonic()
                       and (not x.told or not judge(x, ear.heard, start=window(x)[0], deadline=window(x)[1],
                                                     speed=self.speed).met)]
            if not pending:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(min(spec.latency, 1.0))  # stragglers count as unexpected, not as missing
        for x in spec.expect:
            a, b = window(x)
            recorded = await self._recorded(x, start + x.at) if x.recorded is not None else None
            self.report.outcomes.append(judge(x, ear.heard, start=a, deadline=b, speed=self.speed,
                                              recorded=recorded))
        self.report.unexpected = unexpected(ear.heard, [*spec.expect, *spec.allow])
        if ear.bad_signatures or ear.malformed:
            self.report.errors.append(f"{ear.bad_signatures} webhooks with a bad signature, "
                                      f"{ear.malformed} malformed")


def print_report(report: Report, out: Callable[[str], None] = print) -> None:
    """Each expectation met or not with its latency, then what nobody expected."""
    for o in report.outcomes:
        x = o.expectation
        who = ", ".join(x.told) or "nobody"
        label = f"{x.name}: " if x.name else ""
        out(f"  {'met    ' if o.met else 'NOT MET'}  {label}{x.describe()} -> {who}: {o.detail}")
    for h in report.unexpected[:20]:
        a = h.alert
        out(f"  UNEXPECTED  {a.get('rule')} {a.get('level')} {h.event} {a.get('device_id')} -> {h.recipient}")
    if len(report.unexpected) > 20:
        out(f"  ... and {len(report.unexpected) - 20} more unexpected notifications")
    for e in report.errors:
        out(f"  ERROR  {e}")
    met = sum(o.met for o in report.outcomes)
    out(f"{met} of {len(report.outcomes)} expectations met, {len(report.unexpected)} unexpected notifications; "
        f"{report.sent} readings sent, {report.acked} acknowledged by the broker")
