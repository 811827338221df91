"""Hearing what the service told people, and judging a scenario's expectations against it.

Notifications arrive through the webhook receiver (device_sim/receiver.py) the simulator starts
where the site's webhooks point (signatures checked with the site's secrets), or through the
API's event stream. A storm's grouped message counts for each alert it lists.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from device_sim.receiver import Answer, Received, Receiver, signed_by
from device_sim.scenario import Expectation, Place
from kernel.durations import format_duration
from kernel.settings import Settings


@dataclass(frozen=True, slots=True)
class Heard:
    """One notification as a recipient got it (a member of a group counts on its own)."""

    at: float  # time.monotonic() of arrival
    event_id: str
    event: str
    recipient: str
    alert: dict[str, Any]


@dataclass(slots=True)
class Ear:
    """Everything heard so far, deduplicated by event id as a receiver must."""

    heard: list[Heard] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    repeats: int = 0
    bad_signatures: int = 0
    malformed: int = 0

    def take(self, body: bytes, at: float) -> None:
        """Record one delivered message (a single notification or a storm's group)."""
        try:
            msg = orjson.loads(body)
            if "work_order" in msg:  # 吹哨报到: judged like an alert of the rule `work_order`
                subject = msg["work_order"] | {"rule": "work_order", "level": None}
                members = [(msg["event_id"], subject)]
            else:
                members = [(msg["event_id"], msg["alert"])]
            group = msg.get("group")
            if group:
                members = list(zip(group["event_ids"], group["alerts"], strict=True))
            for event_id, alert in members:
                if event_id in self.seen:
                    self.repeats += 1
                    continue
                self.seen.add(event_id)
                self.heard.append(Heard(at, event_id, msg["event"], msg["recipient"], alert))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self.malformed += 1


def listen(ear: Ear, secrets: dict[str, bytes], addresses: Iterable[tuple[str, int]]) -> Receiver:
    """A receiver on every (host, port) the site's webhooks point at, checking their signatures into the ear."""

    def hear(r: Received) -> Answer:
        try:
            recipient = r.json["recipient"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            ear.malformed += 1
            return Answer(400)
        secret = secrets.get(recipient)
        if secret is not None and not signed_by(secret, r):
            ear.bad_signatures += 1
            return Answer(401)
        ear.take(r.body, r.monotonic)
        return Answer(200)

    try:
        receiver = Receiver(addresses, judge=hear, keep=False)
    except OSError as exc:
        raise OSError(f"{exc} (for the site's webhooks)") from None
    return receiver.start()


def webhook_addresses(settings: Settings) -> tuple[set[tuple[str, int]], dict[str, bytes], list[str]]:
    """Where the site's webhooks point on this machine, their secrets, and recipients who cannot be heard."""
    addresses: set[tuple[str, int]] = set()
    secrets: dict[str, bytes] = {}
    unheard = []
    for r in settings.recipients:
        local = False
        for ch in r.channels:
            keys = ch.model_extra or {}
            if ch.type != "webhook" or not keys.get("url"):
                continue
            parts = urlsplit(str(keys["url"]))
            if parts.hostname in ("127.0.0.1", "localhost", "::1"):
                addresses.add((parts.hostname, parts.port or 80))
                if keys.get("secret"):
                    secrets[r.id] = str(keys["secret"]).encode()
                local = True
        if not local:
            unheard.append(r.id)
    return addresses, secrets, unheard


async def follow_events(ear: Ear, api_url: str, token: str, ready: asyncio.Event) -> None:
    """Read the API's event stream into the ear until cancelled."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client, client.stream(
            "GET", f"{api_url}/api/v1/events", headers={"Authorization": f"Bearer {token}"}) as r:
        if r.status_code != 200:
            raise OSError(f"the event stream answered {r.status_code}: {(await r.aread())[:200]!r}")
        data: list[str] = []
        async for line in r.aiter_lines():
            ready.set()
            if line.startswith("data:"):
                data.append(line[5:].strip())
            elif not line and data:
                ear.take("\n".join(data).encode(), time.monotonic())
                data = []


@dataclass(slots=True)
class Outcome:
    """An expectation, judged."""

    expectation: Expectation
    met: bool
    latency_s: float | None  # wall-clock seconds from `at` to the last required recipient told
    detail: str


def judge(x: Expectation, heard: list[Heard], *, start: float, deadline: float, speed: float,
          recorded: bool | None = None) -> Outcome:
    """Judge one expectation on what was heard between `start` and `deadline` (monotonic seconds)."""
    told = set(x.told)
    matching = [h for h in heard if x.matches(h.event, h.alert)]
    inside = [h for h in matching if start <= h.at <= deadline]
    early = sum(1 for h in matching if h.at < start)
    by_alert: dict[str, dict[str, float]] = {}
    for h in inside:
        by_alert.setdefault(str(h.alert.get("id")), {}).setdefault(h.recipient, h.at)
    if not told:
        if inside:
            who = sorted({h.recipient for h in inside})
            return Outcome(x, False, None, f"nobody should have been told, but {', '.join(who)} were")
        if x.recorded is not None and recorded is not None and recorded != x.recorded:
            what = "recorded no such alert" if x.recorded else "recorded such an alert"
            return Outcome(x, False, None, f"nobody was told, but the service {what}")
        if x.recorded is not None and recorded is None:
            return Outcome(x, False, None, "nobody was told; whether the alert was recorded needs the API (--token)")
        note = {True: " (the alert is recorded)", False: " (and no alert recorded)", None: ""}[x.recorded]
        return Outcome(x, True, None, f"nobody told{note}")
    complete = {a: r for a, r in by_alert.items() if told <= set(r)}
    extra = sorted({who for r in by_alert.values() for who in r} - told)
    if len(complete) >= x.count and not extra:
        firsts = sorted(max(r[w] for w in told) for r in complete.values())
        latency = firsts[x.count - 1] - start
        scenario_time = format_duration(latency * speed)
        n = f"{len(complete)} alerts, " if x.count > 1 else ""
        return Outcome(x, True, latency, f"{n}told {latency:.2f} s after `at` ({scenario_time} of scenario time)")
    if extra:
        return Outcome(x, False, None, f"also told {', '.join(extra)}")
    missing: set[str] = set()
    for r in by_alert.values():
        missing |= told - set(r)
    if not by_alert:
        why = f"no such notification in time ({early} came before `at`)" if early else "no such notification in time"
    elif len(complete) < x.count and not missing:
        why = f"{len(complete)} of {x.count} alerts told in time"
    else:
        why = f"{', '.join(sorted(missing))} not told in time ({len(complete)} of {x.count} alerts complete)"
    return Outcome(x, False, None, why)


def unexpected(heard: list[Heard], lines: Iterable[Place]) -> list[Heard]:
    """Notifications no expectation and no `allow` line covers. 叫应's calls (event `call`) count only in a
    scenario that names them: elsewhere they ring beside the notifications the scenario is about."""
    places = list(lines)
    calls_named = any("call" in p.event for p in places)
    return [h for h in heard if not any(p.matches(h.event, h.alert) for p in places)
            and (calls_named or h.event != "call")]
