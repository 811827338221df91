"""Wiring: one process runs the whole pipeline under one TaskGroup of named tasks.

    MqttSource ─► Pipeline.consume ─► Pipeline.commit (StateDB) ─► StoreWriter.write ─► InfluxDB | SQLite
                                                 └─► commit participants (rules)
    GrafanaPointsWriter: devices, open alerts, shelters ─► device_state, community/building/shelter_state (Grafana)
    HTTP API (FastAPI/uvicorn): /health, /metrics, /api/v1/...
    Losses before the service: MqttSource on_session, Pipeline on_gap/on_late ─► LossFinder ─► AlertsRunner.apply
    state_dir's disk: DiskWatch (free space, StateDB's failed writes) ─► Spool.hold, AlertsRunner.apply, /health
    StateThread: the state database's one thread, shared by the pipeline, the rules, alerts and orders
    AlertsRunner, OrdersRunner ─► Outbox.post (rows in their own commit) ─► Deliverer ─► SenderThread ─► channels
    ResourcesRunner (stock, occupancy, door knocks) ─► AlertsRunner.apply (their rules' alerts, one commit)

Sinks start before sources and sources stop first, so queues drain on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from alerts.call_until_answered import CallStage
from alerts.manager import AlertManager, Inhibition
from alerts.route import Router
from alerts.runner import AlertsRunner
from app.config import load_ruleset
from app.cpu_slice import use_cpu_slice
from app.drill_view import DrillOrders, DrillView
from app.example_secrets import check_example_secrets
from app.gate import GatedChannel, GatedStore
from app.grafana_points import GrafanaPointsWriter
from app.links import redact_url
from app.listener import EmbeddedServer, listen, no_pages
from app.live_view import LiveView
from app.order_points import OrderPointsWriter
from app.resilience.history import ResilienceHistory
from app.resource_view import make_resources
from app.source_view import SourceView
from app.view import ServiceView
from app.whistle_view import WhistleView
from ingest.decode import Decoder
from ingest.device_book import DeviceBook
from ingest.disk_watch import UNSAVED_AFTER_S, DiskWatch
from ingest.influx import InfluxStore
from ingest.loss_finder import LossFinder
from ingest.mqtt_source import MqttSource, broker_address
from ingest.pipeline import Pipeline
from ingest.rejections import RejectionLog
from ingest.sources.push import Pushes, WithPushes
from ingest.sources.reader import SourceReader
from ingest.sources.unknown import UnknownDevices
from ingest.spool import Spool
from ingest.sqlite_store import SqliteStore
from ingest.state_thread import StateThread
from ingest.statedb import StateDB
from ingest.store_process import WriterProcess
from ingest.store_writer import Store
from kernel.alerting import Level
from kernel.clock import Clock, SystemClock, rfc3339
from kernel.errors import CBError
from kernel.metrics import Registry
from kernel.settings import Settings
from kernel.site import Site
from notify.channels import Channel, ChannelContext, make_channel
from notify.channels.mqtt import MqttPublisher
from notify.deliver import Deliverer
from notify.outbox import Outbox, per_channel
from notify.sender import SenderThread
from orders.book import OrderBook
from orders.runner import OrdersRunner
from rules.engine import Engine
from rules.runner import RulesRunner

log = logging.getLogger("cbrain")

SHUTDOWN_GRACE_S = 5.0
# How long a thread waiting for the GIL lets the running one keep it (CPython's default is 5 ms).
# The MQTT and database threads give the GIL up at every socket read and SQLite step; while the
# event loop is busy each of those then waited the whole interval to get it back, which held up
# commits (and the alerts waiting for them) by tens of milliseconds under load. At 1 ms an alert's
# notification still waited for the GIL at each step of its webhook POST on the sender thread:
# bench/alert_latency.py at 10,000/s, alert made -> received p99 89-218 ms at 1 ms, 55-60 ms at
# 0.2 ms, with no more CPU (the service at 0.59-0.60 cores against 0.62-0.71).
GIL_SWITCH_INTERVAL_S = 0.0002
# Allocations between young garbage collections (CPython's default is 700). Every reading allocates
# a few dozen objects: at 700 the young collection ran 40 times a second at 10,000 readings/s and
# promoted readings still waiting for their commit, so full collections (each a 30-45 ms pause of
# the event loop with 1,000 devices) came every few seconds. Measured at 10,000: garbage collection
# fell from 2.4 % to 0.5 % of a core, with no full collection in 10 s.
GC_YOUNG_THRESHOLD = 10_000
RULES_POLL_S = 2.0


def _mtime(path: Path | None) -> float | None:
    try:
        return path.stat().st_mtime if path else None
    except OSError:
        return None


class Service:
    """The running community brain."""

    def __init__(self, settings: Settings, *, clock: Clock | None = None,
                 http_app: Callable[[ServiceView], Any] | None = None, listen: bool = True,
                 source: Any = None, gate: Callable[[], bool] | None = None) -> None:
        """`listen=False`, `source` and `gate` make one partition of the cluster (app/cluster/cell.py): no HTTP
        listener of its own, the partition's stream instead of the broker, and nothing written to the
        store or sent on a channel while `gate()` is false (the instance may no longer hold the partition)."""
        # Before anything is opened or bound: example secrets beyond loopback stop the start (ConfigError).
        self.warnings = check_example_secrets(settings)  # logged once the service starts running
        self.settings = settings
        # The ASGI application of the HTTP listener, made over the service's view (none: no listener).
        self.http_app = http_app
        self.clock = clock or SystemClock()
        self.site = Site(settings)
        self.metrics = Registry()
        self.started_ns = self.clock.now_ns()
        state_dir = Path(settings.state_dir)
        self.statedb = StateDB(state_dir / "ingest.db", fsync=settings.ingest.fsync, own_checkpoints=True)
        # The state database's one thread: the pipeline commits on it and the rules, alerts and orders
        # write on it, so each can be made with it, before the others.
        self.state = StateThread(self.statedb)
        self.store: Store = (InfluxStore(settings.influx) if settings.influx.url
                             else SqliteStore(state_dir / "readings.db"))
        self.gate = gate
        if gate is not None:
            self.store = GatedStore(self.store, gate)
        self.serve_http = listen
        self.rejections = RejectionLog(settings.ingest.rejection_log_size)
        self.devices = DeviceBook(self.site)
        self.ruleset = load_ruleset(settings)
        self.http_client = httpx.AsyncClient(timeout=settings.alerts.webhook_timeout_s)
        self.mqtt_publisher: MqttPublisher | None = None
        # Made in the order each needs the others: delivery, alerts, rules, then ingest, which
        # hands each commit to the rules and each gap to the loss finder.
        writer_process = (WriterProcess(state_dir / "ingest.db", settings.influx, settings.ingest)
                          if settings.ingest.writer == "process" and isinstance(self.store, InfluxStore) else None)
        self.spool = Spool(settings.ingest, self.state, self.clock, self.metrics, writer_process)
        self.deliverer, self.outbox = self._delivery()
        self.alert_manager, self.calls = self._alert_manager()
        self.alerts = AlertsRunner(self.alert_manager, self.outbox, self.clock, self.metrics,
                                   self.state.write, self.spool.add)
        self.rules = RulesRunner(Engine(self.ruleset, self.site, now_ns=self.clock.now_ns()), self.clock,
                                 self.metrics, self.state.write, sink=self.alerts)
        self.losses = self._loss_finder()
        self.disk = DiskWatch(state_dir=state_dir, ingest=settings.ingest, instance=settings.mqtt.client_id,
                              clock=self.clock, metrics=self.metrics, state=self.state, spool=self.spool,
                              apply=functools.partial(self.alerts.apply, unsaved_after_s=UNSAVED_AFTER_S))
        # Devices that report through other systems: their reader, and the platforms' pushes.
        self.unknown = UnknownDevices()
        self.reader = (SourceReader(settings, self.site, lambda *a: self.decoder.reading(*a), self.unknown)
                       if settings.sources else None)  # (its readings are validated by the decoder: _pipeline)
        self.source = source or MqttSource(settings.mqtt, on_session=self.losses.session,
                                           extra_topics=self.reader.subscriptions() if self.reader else None)
        self.pipeline = self._pipeline(writer_process)
        self.intake = WithPushes(self.source, Pushes(self.source.put, paused=lambda: self.pipeline.spooled.paused))
        self.resources = make_resources(settings, self.site, self.clock, self.metrics, self.state.select, self.alerts)
        self.grafana_points = GrafanaPointsWriter(settings.dashboards, self.site, self.devices, self.alert_manager.open,
                                                  self.store, self.clock, self.metrics, self.resources.book)
        self.alert_manager.listeners.append(self.grafana_points.alert_changed)
        if self.resources.runner is not None:  # a shelter's occupancy is on the map a second later
            self.resources.runner.listeners.append(self.grafana_points.alert_changed)
        self.orders, self.whistles, self.order_points = self._orders()
        self._gauges()
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self.http: uvicorn.Server | None = None
        self.http_port: int | None = None
        self.ready = asyncio.Event()
        self.view = LiveView(settings=settings, site=self.site, clock=self.clock, metrics=self.metrics,
                             devices=self.devices, rules=self.rules, manager=self.alert_manager, alerts=self.alerts,
                             calls=self.calls, outbox=self.outbox, state=self.state,
                             rejections=self.rejections, store=self.store, health=self.health,
                             stopping=self._stop, whistles=self.whistles, resources=self.resources,
                             sources=SourceView(self.site, self.reader, self.intake.pushes, self.unknown),
                             unwritable=self.disk.unwritable,
                             drills=DrillView(settings, self.clock, self.alerts, self.state.select, self.state.write))
        self.resilience = ResilienceHistory(self.view.resilience, self.store, settings.resilience.history_interval_s,
                                            self.metrics)  # the scorecards' history (not by a cluster's partition)

    def _delivery(self) -> tuple[Deliverer, Outbox]:
        """notify/: the deliverer over every recipient's channels, and the outbox alerts and orders post to
        (a 叫应 call goes to each channel of a person at once: per_channel)."""
        a = self.settings.alerts
        channels = self._channels()
        channels |= per_channel(channels)
        deliverer = Deliverer(channels, self.state.write, self.clock, self.metrics,
                              give_up_s=a.give_up_s, retry_min_s=a.retry_min_s, retry_max_s=a.retry_max_s,
                              storm_threshold=a.storm_threshold, storm_window_s=a.storm_window_s,
                              group_wait_s=a.group_wait_s)
        return deliverer, Outbox(deliverer, self.state.select)

    def _alert_manager(self) -> tuple[AlertManager, CallStage]:
        """The alerts' lifecycle, its routing tree and its last stage, 叫应 (alerts/call_until_answered.py)."""
        a = self.settings.alerts
        router = Router(self.settings, {Level(k): v for k, v in a.ack_timeout_s.items()})
        calls = CallStage(self.settings, router)
        manager = AlertManager(
            self.site, locale=self.settings.locale,
            reminders_s={r.id: r.reminder_every for r in self.ruleset.rules if r.reminder_every},
            inhibitions=tuple(Inhibition(tuple(i.source), tuple(i.target), tuple(i.equal)) for i in a.inhibit),
            router=router, calls=calls)
        return manager, calls

    def _orders(self) -> tuple[OrdersRunner, WhistleView, OrderPointsWriter]:
        """吹哨报到: work orders post their notifications to the same outbox as alerts."""
        s = self.settings
        supervisors = s.whistles.supervisors or [r.id for r in s.recipients if r.role == "street_office"]
        book = OrderBook(s.departments, supervisors=supervisors, recipients=[r.id for r in s.recipients],
                         locale=s.locale)
        orders = OrdersRunner(book, self.clock, self.metrics, self.state.write,
                              DrillOrders(self.outbox, self.alert_manager.drills, s.locale))
        whistles = WhistleView(s, self.site, self.clock, orders, self.state.select)
        points = OrderPointsWriter(whistles, self.store, s.whistles.stats_interval_s, self.metrics)
        orders.listeners.append(points.changed)
        return orders, whistles, points

    def _gauges(self) -> None:
        g, src = self.metrics.gauge, self.source
        g("cb_mqtt_session_present", "1 if the broker had the service's session at the last connect",
          source=lambda: float(bool(src.session_present)))
        self.m_reloads = self.metrics.counter("cb_rules_reloads_total", "Rules file reloads, by outcome", ["outcome"])
        g("cb_mqtt_connected", "1 while subscribed to the broker", source=lambda: float(src.subscribed))
        g("cb_mqtt_connects", "Successful broker connections since start", source=lambda: float(src.connects))
        g("cb_mqtt_inbox", "Messages received from the broker, not yet processed", source=lambda: float(src.pending()))
        g("cb_devices", "Devices known, by type", ["device_type"], source=self._device_counts)

    def _loss_finder(self) -> LossFinder:
        """Readings lost before the service; its findings go to the alerts runner."""
        m = self.settings.mqtt
        host, port, _tls = broker_address(m.url)
        return LossFinder(mqtt=m, ingest=self.settings.ingest, client_id=m.client_id, broker=f"{host}:{port}",
                          clock=self.clock, metrics=self.metrics, state=self.state, apply=self.alerts.apply)

    def _pipeline(self, writer_process: WriterProcess | None) -> Pipeline:
        """Ingest: the rules runner takes part in each commit, the loss finder hears of gaps."""
        i = self.settings.ingest
        decoder = self.decoder = Decoder(self.settings.mqtt.prefix, self.site, self.clock, max_past_s=i.max_past_s,
                                         max_future_s=i.max_future_s)
        decoder.sources = self.reader
        pipeline = Pipeline(settings=i, decoder=decoder, devices=self.devices, state=self.state, store=self.store,
                            clock=self.clock, metrics=self.metrics, rejections=self.rejections,
                            participants=[self.rules], on_gap=self.losses.gap, on_late=self.losses.late,
                            writer_process=writer_process, spool=self.spool)
        if self.reader is not None:
            self.reader.on_duplicate = pipeline.m_duplicates.inc
        return pipeline
    def _channels(self) -> dict[str, list[Channel]]:
        """Each recipient's channels, in the order they are tried (each type's factory builds its own)."""
        context = ChannelContext(self.http_client, self.settings.mqtt.prefix, self._mqtt_publisher)
        made = {r.id: [make_channel(c, context) for c in r.channels] for r in self.settings.recipients}
        gate = self.gate
        return made if gate is None else {r: [GatedChannel(c, gate) for c in cs] for r, cs in made.items()}

    def _mqtt_publisher(self) -> MqttPublisher:
        """The one connection every MQTT channel publishes on, made when the first one needs it."""
        if self.mqtt_publisher is None:
            m = self.settings.mqtt
            username, password = m.credentials()
            self.mqtt_publisher = MqttPublisher(m.url, f"{m.client_id}-alerts", username=username, password=password,
                                                ca_file=m.ca_file, cert_file=m.cert_file, key_file=m.key_file)
        return self.mqtt_publisher

    def _device_counts(self) -> dict[tuple[str, ...], float]:
        return {k: float(n) for k, n in Counter((s.device_type,) for s in self.devices.devices.values()).items()}

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Each part's state, and whether all are up."""
        src, store, sp = self.source, self.pipeline.writer.health, self.pipeline.spooled
        broker = {"ok": src.subscribed, "url": redact_url(self.settings.mqtt.url), "protocol": src.protocol,
                  "error": None if src.subscribed else src.last_error}
        store_part = {"ok": store.ok, "kind": self.store.name, "url": redact_url(self.store.url),
                      "error": store.error, "down_since": rfc3339(store.since_ns)}
        spool = {"ok": not sp.full, "points": sp.points, "bytes": sp.bytes, "limit_bytes": sp.limit,
                 "error": "spool full: not taking messages until the store catches up" if sp.full else None}
        broker["session_present"] = src.session_present
        broker["sessions_lost"] = self.losses.sessions.lost_total
        disk = self.disk.health()
        ok = broker["ok"] and store.ok and not sp.full and disk["ok"]
        d = self.deliverer
        channels = {"ok": True, "pending": d.pending(),
                    "delivered": int(d.m_delivered.total()), "failed": int(d.m_failed.total()),
                    "undeliverable": int(d.m_lost.total())}
        return bool(ok), {"status": "ok" if ok else "degraded", "started_at": rfc3339(self.started_ns),
                          "broker": broker, "store": store_part, "spool": spool, "disk": disk, "channels": channels,
                          "findings": self.losses.findings(), "warnings": list(self.warnings)}

    def stop(self) -> None:
        """Ask the service to shut down in order."""
        self._stop.set()

    @property
    def stopping(self) -> asyncio.Event:
        """Set once shutdown has begun (long-lived responses such as the event stream end then)."""
        return self._stop

    async def run(self) -> None:
        """Run until stop() (or a signal); sinks first, source last; drain on the way out."""
        for warning in self.warnings:
            log.warning("%s", warning)
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        use_cpu_slice(self.settings.ingest.cpu_slice_ms)  # first: later threads and the writer inherit it
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        listener = self._listen() if self.serve_http else None  # first: a port taken stops the start in one line
        await self.pipeline.recover()
        restored = await self.rules.recover(self.state.script, self.state.select)
        if restored:
            log.info("rule state of %d devices restored", restored)
        pending = await self.outbox.recover(self.state.script)
        open_alerts = await self.alerts.recover(self.state.script, self.state.select)
        if open_alerts or pending:
            log.info("%d open alerts and %d undelivered notifications restored", open_alerts, pending)
        whistles = await self.orders.recover(self.state.script, self.state.select)
        if whistles:
            log.info("%d whistles with work orders still open restored", whistles)
        await self.resources.recover(self.state.script, self.alert_manager.open.values())
        await self.losses.recover(self.alert_manager.open.values())
        await self.disk.recover(self.alert_manager.open.values())
        app = self.http_app(self.view) if self.http_app is not None else no_pages
        http_config = uvicorn.Config(app, host=self.settings.http.host, port=self.settings.http.port,
                                     log_level="warning", lifespan="off", access_log=False)
        self.http = EmbeddedServer(http_config)
        # Channels send from a thread of their own, away from ingest's turns of this loop.
        self.deliverer.sender = sender = SenderThread()
        try:
            async with asyncio.TaskGroup() as tg:
                writer = tg.create_task(self.pipeline.writer.write(), name="store-writer")
                committer = tg.create_task(self.pipeline.commit(self.intake), name="spool-commit")
                checkpoints = tg.create_task(self.state.checkpoints(), name="statedb-checkpoints")
                rules = tg.create_task(self.rules.run(), name="rule-deadlines")
                watcher = tg.create_task(self._watch_rules(), name="rules-reload")
                alerting = tg.create_task(self.alerts.run(), name="alert-deadlines")
                delivery = tg.create_task(self.deliverer.run(), name="delivery")
                order_deadlines = tg.create_task(self.orders.run(), name="order-deadlines")
                order_points = tg.create_task(self.order_points.run(), name="order-points")
                grafana = tg.create_task(self.grafana_points.run(), name="grafana-points")
                losses = tg.create_task(self.losses.run(), name="loss-findings")
                disk = tg.create_task(self.disk.run(), name="disk-watch")
                roster = tg.create_task(self.alerts.watch_roster(self.settings), name="roster-check")
                resources = tg.create_task(self.resources.run(), name="resource-deadlines")
                history = tg.create_task(self.resilience.run() if self.serve_http else asyncio.sleep(0),
                                         name="resilience-history")
                self.source.start()
                consumer = tg.create_task(self.pipeline.consume(self.intake), name="ingest")
                http = (tg.create_task(self.http.serve(sockets=[listener]), name="http") if listener is not None
                        else None)
                await self._announce()
                await self._stop.wait()
                log.info("shutting down: stopping intake, draining queues")
                consumer.cancel()
                await self.source.stop()
                await self._drain()
                self.http.should_exit = True
                if http is not None:
                    await http
                for task in (committer, checkpoints, rules, watcher, alerting, delivery, order_deadlines,
                             order_points, grafana, losses, disk, roster, resources, history, writer):
                    task.cancel()
        finally:
            await self.state.close()
            await self.store.close()
            await sender.stop(self.http_client.aclose())
            self.deliverer.sender = None
            if self.mqtt_publisher is not None:
                self.mqtt_publisher.stop()
            self.statedb.close()

    def _listen(self) -> socket.socket:
        """The HTTP listener's socket, bound before anything starts (app/listener.py)."""
        return listen(self.settings.http.host, self.settings.http.port)

    def request_reload(self) -> None:
        """Ask for the rules file to be loaded again (SIGHUP)."""
        self._reload.set()

    def reload_rules(self) -> bool:
        """Load the rules file again; keep the running rules (and say why) if it is invalid."""
        try:
            ruleset = load_ruleset(self.settings)
        except CBError as exc:
            log.error("rules file not reloaded, the running rules stay: %s", exc)
            self.m_reloads.inc(1, "invalid")
            return False
        self.ruleset = ruleset
        self.rules.reload(Engine(ruleset, self.site, now_ns=self.clock.now_ns()))
        self.m_reloads.inc(1, "ok")
        log.info("rules reloaded: %d rules", len(ruleset.rules))
        return True

    async def _watch_rules(self) -> None:
        """Reload when the rules file changes (checked every RULES_POLL_S) or on SIGHUP."""
        path = Path(self.settings.rules) if self.settings.rules else None
        seen = _mtime(path)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reload.wait(), RULES_POLL_S)
            asked = self._reload.is_set()
            self._reload.clear()
            now = _mtime(path)
            if asked or now != seen:
                seen = now
                self.reload_rules()

    async def _announce(self) -> None:
        assert self.http is not None
        while self.serve_http and not self.http.started:
            await asyncio.sleep(0.02)
        if self.serve_http:
            self.http_port = self.http.servers[0].sockets[0].getsockname()[1]
            log.info("HTTP API on http://%s:%s (health: /health, metrics: /metrics)",
                     self.settings.http.host, self.http_port)
        # What start-up made (modules, settings, rules, restored state) lives as long as the
        # process: full collections need not scan it again (a full scan's pause grows with it).
        gc.freeze()
        self.ready.set()

    async def _drain(self) -> None:
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        p, spooled = self.pipeline, self.pipeline.spooled
        while time.monotonic() < deadline and (not p.settled() or (spooled.points and p.writer.health.ok)):
            await asyncio.sleep(0.05)
        if spooled.points:
            log.warning("%d readings stay in the spool; they are written at the next start", spooled.points)


async def run_until_signal(service: Service) -> None:
    """Run the service; SIGINT and SIGTERM stop it in order."""
    import signal

    loop = asyncio.get_running_loop()
    log.info("event loop: %s.%s", type(loop).__module__, type(loop).__qualname__)
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, service.stop)
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGHUP, service.request_reload)
    await service.run()
