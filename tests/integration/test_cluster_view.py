"""The whole site from every instance of a cluster (app/cluster/view.py, app/cluster/view_serve.py), on a
real NATS server with JetStream: two partitions, each a real single-process service (a cell) fed by an
in-memory source, and two instances' views, A holding partition 0 and reaching partition 1 over NATS,
B the reverse."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
import shutil
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import nats
import orjson
import pytest
import yaml

from app.api import serving_app
from app.cluster.calls import Calls
from app.cluster.cell import partition_settings
from app.cluster.view import ClusterView
from app.cluster.view_serve import PartitionServer, serve_partition
from app.config import settings_from_text
from app.service import Service
from app.view import ActedBy, AlertChange, NotificationOut, SilenceOut
from kernel.clock import SystemClock
from kernel.cluster import partition_of
from kernel.errors import Reason, Refused
from kernel.settings import Scope, Settings
from kernel.site import Site
from tests.memory_source import MemorySource
from tests.servers import ServerProcess, free_port
from tests.service import EXAMPLE_SITE

pytestmark = pytest.mark.integration

T = TypeVar("T")
NATS_BIN = str(Path(sys.executable).parent / "nats-server") if (Path(sys.executable).parent / "nats-server").exists() \
    else (shutil.which("nats-server") or "nats-server")
YICUN, ERCUN = "linfen-yicun", "linfen-ercun"  # partitions 0 and 1 of 2
SD_YICUN, SD_ERCUN = "sd-b01-0501", "sd-b11-0301"


class NatsServer(ServerProcess):
    """One nats-server with JetStream, on loopback."""

    name = "nats-server"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.port, self.http_port = free_port(), free_port()
        conf = self.workdir / "nats.conf"
        conf.write_text(f'listen: "127.0.0.1:{self.port}"\nhttp: "127.0.0.1:{self.http_port}"\n'
                        f'jetstream {{ store_dir: "{self.workdir / "js"}" }}\n', encoding="utf-8")
        self.conf = conf

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [NATS_BIN, "-c", str(self.conf)]

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = NatsServer(tmp_path_factory.mktemp("nats"))
    server.start()
    yield server.url
    server.stop()


def site_settings(tmp: Path, nats_url: str) -> Settings:
    """The example site as a cluster of two partitions: readings in SQLite, every recipient on the log."""
    raw = yaml.safe_load(EXAMPLE_SITE.read_text(encoding="utf-8"))
    for place in [raw.get("street") or {}, *raw["communities"], *(g for c in raw["communities"] for g in c["grids"])]:
        place.pop("duties", None)
        place.pop("roster_verified", None)
    for r in raw["recipients"]:
        r["channels"] = [{"type": "log"}]
    raw["mqtt"] = {"url": "mqtt://127.0.0.1:1883", "prefix": "cb"}
    raw["influx"] = {"url": None, "database": "unused"}
    raw["http"] = {"host": "127.0.0.1", "port": free_port()}
    raw["state_dir"] = str(tmp / "state")
    raw["cluster"] = {"nats": [nats_url], "instance": "a", "partitions": 2, "name": f"t{secrets.token_hex(4)}"}
    return settings_from_text(yaml.safe_dump(raw, allow_unicode=True), source="site.yaml", env={})


@dataclass
class Cell:
    """One partition's service, its source and the server of its view."""

    service: Service
    source: MemorySource
    task: asyncio.Task[None]
    server: PartitionServer | None = None
    checkpoints: list[float] = field(default_factory=list)

    async def after_action(self) -> None:
        self.checkpoints.append(time.monotonic())


@dataclass
class Site2:
    """Two cells, two instances' connections and views."""

    settings: Settings
    cells: list[Cell]
    conns: list[Any]
    views: list[ClusterView]


def within(seconds: float) -> Callable[[Callable[..., Awaitable[None]]], Callable[..., Awaitable[None]]]:
    """A test that fails (where it waits) rather than hang past `seconds`."""
    def wrap(test: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        @functools.wraps(test)
        async def bounded_test(*args: Any, **kwargs: Any) -> None:
            async with asyncio.timeout(seconds):
                await test(*args, **kwargs)
        return bounded_test
    return wrap


async def until(check: Callable[[], T | None], within_s: float, what: str) -> T:
    """Poll check (every 20 ms, at most within_s) until it answers something truthy."""
    deadline = time.monotonic() + within_s
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within_s} s: {what}")
        await asyncio.sleep(0.02)


def cell_settings(settings: Settings, p: int, tmp: Path) -> Settings:
    """The partition's settings, its state directory made."""
    ps = partition_settings(settings, p, tmp / f"p{p}", "test")
    Path(ps.state_dir).mkdir(parents=True)
    return ps


async def start_cell(settings: Settings, p: int, tmp: Path) -> Cell:
    ps = cell_settings(settings, p, tmp)
    source = MemorySource()
    service = Service(ps, listen=False, source=source)
    task = asyncio.create_task(service.run(), name=f"cell-{p}")
    await asyncio.wait_for(service.ready.wait(), 30)
    return Cell(service, source, task)


@contextlib.asynccontextmanager
async def two_instances(tmp: Path, nats_url: str, query_timeout_s: float = 2.0) -> AsyncIterator[Site2]:
    settings = site_settings(tmp, nats_url)
    assert settings.cluster is not None
    name = settings.cluster.name
    cells: list[Cell] = []
    conns: list[Any] = []
    views: list[ClusterView] = []
    try:
        for p in (0, 1):
            cells.append(await start_cell(settings, p, tmp))
            conns.append(await nats.connect(nats_url, name=f"instance-{p}", connect_timeout=2))
        for p, nc in enumerate(conns):
            view = ClusterView(settings=settings, site=Site(settings), clock=SystemClock(), nc=nc,
                               js=nc.jetstream(timeout=5), partition_of=lambda c: partition_of(c, 2),
                               health=lambda p=p: {"instance": f"i{p}", "lease": "held"},
                               calls=Calls(nc, name, 2, query_timeout_s=query_timeout_s))
            await view.start()
            views.append(view)
        # Instance A serves its partition through its view; B serves its own and attaches it.
        cells[0].server = await views[0].serve(0, cells[0].service.view, epoch=1, after_action=cells[0].after_action)
        cells[1].server = await serve_partition(conns[1], name, 1, cells[1].service.view, instance="b", epoch=1,
                                                after_action=cells[1].after_action)
        views[1].attach(cells[1].server)
        for view in views:
            await until(lambda v=view: v.digests.serving(0) and v.digests.serving(1), 10, "both partitions' digests")
        yield Site2(settings, cells, conns, views)
    finally:
        for view in views:
            await bounded(view.stop(), "a view's stop")
        for cell in cells:
            if cell.server is not None:
                await bounded(cell.server.stop(), "a partition server's stop")
            cell.service.stop()
            await bounded(cell.task, "a cell's service stop", 30)
        for nc in conns:
            await bounded(nc.close(), "a NATS connection's close")


async def bounded(work: Any, what: str, within_s: float = 10) -> None:
    """Await work at most within_s (a test's teardown must end)."""
    try:
        await asyncio.wait_for(work, within_s)
    except TimeoutError:
        raise AssertionError(f"{what} took over {within_s} s") from None


async def two_alarms(site: Site2) -> tuple[str, str]:
    """A smoke alarm in each partition; (the yicun alert's id, the ercun alert's id) once both views see them."""
    now_ms = int(time.time() * 1000)
    site.cells[0].source.feed(YICUN, "smoke_detector", SD_YICUN, {"ts": now_ms, "seq": 1, "alarm": True})
    site.cells[1].source.feed(ERCUN, "smoke_detector", SD_ERCUN, {"ts": now_ms, "seq": 1, "alarm": True})

    def both(v: ClusterView) -> dict[str, str] | None:
        found = {a["community"]: a["id"] for a in v.open_alerts(None)}
        return found if len(found) == 2 else None

    for view in site.views:
        found = await until(lambda v=view: both(v), 10, "both alerts in the view's open alerts")
    return found[YICUN], found[ERCUN]


@within(90)
async def test_every_instance_sees_every_partition_in_scope(tmp_path: Path, nats_url: str) -> None:
    async with two_instances(tmp_path, nats_url) as site:
        notes: list[NotificationOut] = []
        held_by_b: list[NotificationOut] = []
        site.views[0].subscribe_notifications(notes.extend)
        site.cells[1].service.view.subscribe_notifications(held_by_b.extend)
        yicun_id, ercun_id = await two_alarms(site)
        # B's partition's notifications reach A's live stream (GET /api/v1/events) as B's LiveView gave them.
        await until(lambda: {n.community for n in notes} == {YICUN, ERCUN}, 2.0, "both partitions' notifications")
        await until(lambda: [n for n in notes if n.community == ERCUN] == held_by_b, 2.0, "B's notifications on A")
        g3 = Scope(community=ERCUN, grid="g3")
        for view in site.views:
            listed = await view.alerts(None)
            assert {a["id"] for a in listed} == {yicun_id, ercun_id}
            assert [a["id"] for a in await view.alerts(Scope(community=YICUN))] == [yicun_id]
            assert [a["id"] for a in await view.alerts(None, community=ERCUN)] == [ercun_id]
            assert [a["id"] for a in view.open_alerts(g3)] == [ercun_id]
            assert [a["id"] for a in view.open_alerts(Scope(community=YICUN, grid="g2"))] == []
            detail = await view.alert(None, ercun_id)
            assert detail is not None and detail["community"] == ERCUN and detail["history"]
            assert await view.alert(Scope(community=YICUN), ercun_id) is None
            assert (await view.ledger(None, yicun_id)) is not None
            ids = {d["device_id"] for d in view.devices(None)}
            assert {SD_YICUN, SD_ERCUN} <= ids
            in_g3 = view.devices(g3)
            assert SD_ERCUN in {d["device_id"] for d in in_g3} and {d["grid"] for d in in_g3} == {"g3"}
            communities = {c["id"]: c for c in view.communities(None)}
            assert set(communities) == {YICUN, ERCUN} and communities[ERCUN]["devices"] >= 1
            assert [c["id"] for c in view.communities(Scope(community=ERCUN))] == [ERCUN]
            live = site.cells[1].service.view
            for _ in range(250):  # (the store writer writes a moment after the commit)
                if await live.readings(None, SD_ERCUN, 0, 10):
                    break
                await asyncio.sleep(0.02)
            rows = await view.readings(None, SD_ERCUN, 0, 10)
            assert rows == await live.readings(None, SD_ERCUN, 0, 10) and rows is not None and len(rows) == 1
            assert isinstance(rows[0], tuple)
            assert await view.readings(Scope(community=YICUN), SD_ERCUN, 0, 10) is None
            ok, health = view.health()
            assert ok, health
            assert [p["partition"] for p in health["partitions"]] == [0, 1]


@within(90)
async def test_an_acknowledgement_through_a_acts_once_where_b_holds_the_alert(tmp_path: Path, nats_url: str) -> None:
    async with two_instances(tmp_path, nats_url) as site:
        _yicun_id, ercun_id = await two_alarms(site)
        a, b = site.views
        b_live = site.cells[1].service.view
        seen: list[AlertChange] = []
        a.subscribe_changes(seen.extend)
        before = a.last_change()
        began = time.monotonic()
        body = await a.acknowledge(ercun_id, "worker-g3", "on my way", ActedBy("grid_worker", "127.0.0.1"))
        assert body["status"] == "acknowledged"
        assert site.cells[1].checkpoints and not site.cells[0].checkpoints  # B's cell checkpointed before answering
        held = next(x for x in b_live.open_alerts(None) if x["id"] == ercun_id)
        assert held["acknowledged_by"] == "worker-g3"
        history = (await b_live.alert(None, ercun_id) or {})["history"]
        assert [h["event"] for h in history].count("acknowledged") == 1

        def acknowledged() -> bool:
            return any(orjson.loads(c.data)["alert"]["id"] == ercun_id
                       and orjson.loads(c.data)["event"] == "acknowledged" for c in seen)

        await until(acknowledged, 2.0 - (time.monotonic() - began), "the acknowledgement in A's change feed")
        await until(lambda: next(x for x in a.open_alerts(None) if x["id"] == ercun_id)["acknowledged_by"],
                    2.0, "the acknowledgement on A's wall")
        replayed = a.changes_after(before)  # (a page's stream reconnecting with Last-Event-ID)
        assert replayed is not None and [c.seq for c in replayed] == [c.seq for c in seen]
        assert [c.seq for c in seen] == list(range(before + 1, a.last_change() + 1))

        with pytest.raises(Refused) as direct:
            await b_live.acknowledge(ercun_id, "committee-ercun", None)
        for view in (a, b):  # a second one is refused as LiveView refuses it, through either instance
            with pytest.raises(Refused) as again:
                await view.acknowledge(ercun_id, "committee-ercun", None)
            assert (again.value.reason, str(again.value)) == (direct.value.reason, str(direct.value))
        with pytest.raises(Refused) as bad:
            await a.hand_over(ercun_id, "worker-g3", "nobody", None)
        assert (bad.value.reason, str(bad.value)) == (Reason.INVALID, "no recipient 'nobody'")
        with pytest.raises(Refused) as live_gone:
            await b_live.resolve("no-such-alert", "worker-g3", None)
        with pytest.raises(Refused) as gone:
            await a.resolve("no-such-alert", "worker-g3", None)
        assert (gone.value.reason, str(gone.value)) == (live_gone.value.reason, str(live_gone.value))

        assert (await a.resolve(ercun_id, "worker-g3", "out"))["status"] == "resolved"
        entries = await a.audit(since_ns=None, actor=None, action=None, after=None, limit=100)
        assert [(e["action"], e["alert_id"], e["seq"] % 1024) for e in entries] == [
            ("acknowledge", ercun_id, 1), ("resolve", ercun_id, 1)]
        assert await a.audit(since_ns=None, actor=None, action=None, after=entries[0]["seq"], limit=100) \
            == entries[1:]


@within(90)
async def test_silences_reach_their_partition_or_every_one(tmp_path: Path, nats_url: str) -> None:
    async with two_instances(tmp_path, nats_url) as site:
        a, b = site.views
        now = a.now_ns()
        one = SilenceOut("s-ercun", ERCUN, None, None, None, now, now + 3600 * 10**9, "drill", "committee-ercun", now)
        assert (await a.add_silence(one)).id == "s-ercun"
        assert [x.id for x in site.cells[1].service.view.silences()] == ["s-ercun"]
        assert site.cells[0].service.view.silences() == []
        everywhere = SilenceOut("s-all", None, None, None, "smoke.alarm", now, now + 3600 * 10**9, "test", "admin", now)
        await b.add_silence(everywhere)
        for cell in site.cells:
            assert "s-all" in [x.id for x in cell.service.view.silences()]
        await until(lambda: [x.id for x in a.silences()] == ["s-all", "s-ercun"], 2.0, "both silences listed once")
        ended = await a.expire_silence("s-all", "admin")
        assert ended.ends_ns <= a.now_ns()
        for cell in site.cells:
            kept = cell.service.view.find_silence("s-all")
            assert kept is not None and kept.ends_ns <= a.now_ns()
        await until(lambda: (a.find_silence("s-all") or one).ends_ns <= a.now_ns(), 2.0, "the end on A")
        with pytest.raises(Refused) as again:
            await a.expire_silence("s-all", "admin")
        assert again.value.reason is Reason.NOT_FOUND


@within(90)
async def test_a_partition_nobody_holds_degrades_the_queries(tmp_path: Path, nats_url: str) -> None:
    async with two_instances(tmp_path, nats_url, query_timeout_s=0.5) as site:
        yicun_id, ercun_id = await two_alarms(site)
        a = site.views[0]
        await site.views[1].unserve(1)
        site.cells[1].server = None
        began = time.monotonic()
        assert [x["id"] for x in await a.alerts(None)] == [yicun_id]
        assert a.calls.last_missing == [1]
        assert time.monotonic() - began < 0.5  # nobody subscribed: NATS says so at once
        with pytest.raises(Refused) as refused:
            await a.acknowledge(ercun_id, "worker-g3", None)
        assert refused.value.reason is Reason.UNAVAILABLE
        ok, health = a.health()
        assert not ok and health["partitions"][1]["error"] == "its holder stopped serving it"
        assert health["unanswered"][0]["partitions"] == [1]
        assert ercun_id in {x["id"] for x in a.open_alerts(None)}  # its last digest stays on the wall

        assert site.settings.cluster is not None
        mute = await site.conns[1].subscribe(f"{site.settings.cluster.name}.view.p1", cb=_never_answer)
        try:
            began = time.monotonic()
            assert [x["id"] for x in await a.alerts(None)] == [yicun_id]
            assert a.calls.last_missing == [1] and time.monotonic() - began < 1.5
            assert await a.alert(None, ercun_id) is None
        finally:
            await mute.unsubscribe()


async def _never_answer(msg: Any) -> None:
    return None


@within(90)
async def test_the_api_and_the_pages_serve_the_whole_site(tmp_path: Path, nats_url: str) -> None:
    async with two_instances(tmp_path, nats_url) as site:
        yicun_id, ercun_id = await two_alarms(site)
        for view in site.views:
            app = serving_app(view)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver",
                                         timeout=10) as http:
                admin = {"Authorization": "Bearer example-token-admin"}
                r = await http.get("/api/v1/alerts", headers=admin)
                assert r.status_code == 200, r.text
                assert {a["id"] for a in r.json()} == {yicun_id, ercun_id}
                r = await http.get("/api/v1/alerts", headers={"Authorization": "Bearer example-token-worker-g3"})
                assert [a["id"] for a in r.json()] == [ercun_id]
                assert (await http.get("/health")).status_code == 200
                assert 'partition="0"' in (await http.get("/metrics")).text
                r = await http.post("/login", data={"token": "example-token-street"})
                assert r.status_code == 303, r.text
                wall = await http.get("/wall")
                assert wall.status_code == 200
                assert yicun_id in wall.text and ercun_id in wall.text
        a_app, b_app = serving_app(site.views[0]), serving_app(site.views[1])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=a_app), base_url="http://testserver") as a, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=b_app), base_url="http://testserver") as b:
            g3 = {"Authorization": "Bearer example-token-worker-g3"}
            r = await a.post("/api/v1/whistles", headers=g3, json={"grade": "urgent", "what": "smoke in the garage",
                                                                  "alert_id": ercun_id, "departments": ["fire"]})
            assert r.status_code == 200, r.text
            whistle_id = r.json()["id"]
            assert (await site.cells[1].service.view.whistles.whistle(None, whistle_id)) is not None
            listed = (await b.get("/api/v1/whistles", headers=g3)).json()
            assert [w["id"] for w in listed] == [whistle_id]
            one = (await b.get(f"/api/v1/whistles/{whistle_id}", headers=g3)).json()
            assert one["orders"][0]["history"][0]["event"] == "order_opened"
            assert one == await site.cells[1].service.view.whistles.whistle(None, whistle_id)
            signed = await site.views[0].whistles.step(f"{whistle_id}.fire", "sign", "fire-linfen", None)
            assert signed["status"] == "signed"
            with pytest.raises(Refused) as twice:
                await site.views[0].whistles.step(f"{whistle_id}.fire", "sign", "fire-linfen", None)
            assert twice.value.reason is Reason.CONFLICT
            stats = (await a.get("/api/v1/whistles/stats", headers={"Authorization": "Bearer example-token-street"}))
            assert stats.status_code == 200, stats.text
            r = await a.post("/ingest/ctwing/any", content=b"{}")
            assert r.status_code == 503  # (a cluster takes no platform pushes: the platform pushes again)
            r = await b.post(f"/api/v1/alerts/{ercun_id}/ack", headers=g3, json={"note": "here"})
            assert r.status_code == 200, r.text
            r = await a.post(f"/api/v1/alerts/{ercun_id}/ack", headers=g3, json={"note": "here"})
            assert r.status_code == 409, r.text
