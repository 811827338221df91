"""`cbrain demo`: the whole system on embedded defaults, with simulated devices.

With nothing installed but Python: an embedded MQTT broker (amqtt) and the SQLite reading store.
CB_MQTT_URL / CB_INFLUX_URL (and the other CB_* variables) point it at real servers instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from typing import Any

from app.api import serving_app
from app.config import default_site_text, settings_from_text
from app.service import Service
from device_sim.fleet import DeviceSpec, Fleet
from device_sim.specs import site_devices as simulated_devices
from kernel.channels.log import LogConfig
from kernel.settings import Settings

log = logging.getLogger("cbrain.demo")

# Every so often one simulated device reports trouble, so the demo shows alerts being raised.
INCIDENT_EVERY_S = 40.0


def site_devices(settings: Settings) -> list[DeviceSpec]:
    """The registered devices of a site, to simulate: each through its source where it names one (the
    mixed estate of the example site: a Zigbee hub, a Tasmota strip, LoRaWAN, NB-IoT pushes)."""
    devices, left_out = simulated_devices(settings)
    for device_id, why in left_out.items():
        log.warning("device %s is not simulated: %s", device_id, why)
    return devices


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _embedded_broker(port: int) -> Any:
    from amqtt.broker import Broker

    broker = Broker({
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    })
    await broker.start()
    return broker


def demo_settings(env: dict[str, str]) -> tuple[Settings, bool]:
    """The demo's settings, and whether it needs the embedded broker."""
    overrides = {"CB_INFLUX_URL": "", "CB_STATE_DIR": "./var/demo"} | env
    settings = settings_from_text(default_site_text(), source="embedded site", env=overrides)
    # The example recipients' webhooks point at receivers that a demo machine does not run: the
    # demo shows each notification in its log instead.
    recipients = [r.model_copy(update={"channels": [LogConfig()]}) for r in settings.recipients]
    settings = settings.model_copy(update={"recipients": recipients})
    embedded = "CB_MQTT_URL" not in env
    return settings, embedded


async def run_demo(*, rate: float, duration_s: float | None) -> int:
    """Run broker (if embedded), service and simulated devices until interrupted or duration_s passes."""
    env = {k: v for k, v in os.environ.items() if k.startswith("CB_")}
    if "CB_HTTP_PORT" not in env and not _port_free("127.0.0.1", 8000):
        env["CB_HTTP_PORT"] = str(_free_port())
    settings, embedded = demo_settings(env)
    broker = None
    if embedded:
        port = 1883 if _port_free("127.0.0.1", 1883) else _free_port()
        broker = await _embedded_broker(port)
        # The embedded broker starts with the demo: it cannot have kept a session from the last run.
        mqtt = settings.mqtt.model_copy(update={"url": f"mqtt://127.0.0.1:{port}", "protocol": "3.1.1",
                                                "expect_session_at_start": False})
        settings = settings.model_copy(update={"mqtt": mqtt})
    service = Service(settings, http_app=serving_app)
    devices = site_devices(settings)
    # Devices of push sources (CTWing, OneNET) push to the demo's own HTTP port, as the platforms would.
    fleet = Fleet(settings.mqtt.url, settings.mqtt.prefix, devices, rate=rate, connections=1,
                  client_id_prefix="cbrain-demo-devices",
                  service_url=f"http://{settings.http.host}:{settings.http.port}")
    loop = asyncio.get_running_loop()
    import signal
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, fleet.stop)
    runner = asyncio.create_task(service.run(), name="service")
    try:
        ready = asyncio.create_task(service.ready.wait())
        await asyncio.wait([ready, runner], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if runner.done():
            runner.result()  # the service failed to start: raise its error
        while not service.source.subscribed:
            await asyncio.sleep(0.05)
        fleet.service_url = f"http://{settings.http.host}:{service.http_port}"  # (the port it really bound)
        _stage_incidents(fleet, [d.device_id for d in devices], fleet.sim_now() + INCIDENT_EVERY_S)
        publishing = asyncio.create_task(fleet.run(duration=duration_s), name="devices")
        _banner(settings, service, embedded, devices)
        # Devices stop first (end of duration or Ctrl-C), then the service drains and stops.
        await asyncio.wait([publishing, runner], return_when=asyncio.FIRST_COMPLETED)
        fleet.stop()
        await publishing
        await _settle(service)
        service.stop()
        await runner
    finally:
        fleet.stop()
        if not runner.done():
            service.stop()
            await runner
        if broker is not None:
            await broker.shutdown()
    print(f"demo stopped: {fleet.stats.sent} readings published, "
          f"{int(service.pipeline.writer.m_stored.total())} stored in {service.store.url}")
    return 0


def _stage_incidents(fleet: Fleet, device_ids: list[str], first: float) -> None:
    """Every INCIDENT_EVERY_S one random device reports trouble for a while, so alerts can be seen."""
    rng = random.Random()

    def incident(t: float) -> None:
        device_id = rng.choice(device_ids)
        fleet.models[device_id].begin("incident", t, {})
        log.info("staged an incident on %s", device_id)
        fleet.at(t + INCIDENT_EVERY_S, lambda: incident(t + INCIDENT_EVERY_S))

    fleet.at(first, lambda: incident(first))


async def _settle(service: Service, timeout_s: float = 5.0) -> None:
    """Give in-flight readings a moment to arrive and be stored."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    last = -1.0
    while asyncio.get_running_loop().time() < deadline:
        received = service.pipeline.m_received.total()
        if received == last and service.pipeline.settled() and not service.pipeline.spooled.points:
            return
        last = received
        await asyncio.sleep(0.3)


def _banner(settings: Settings, service: Service, embedded: bool, devices: list[DeviceSpec]) -> None:
    base = f"http://{settings.http.host}:{service.http_port}"
    through: dict[str, int] = {}
    for d in devices:
        if d.via is not None:
            through[d.via.source.type] = through.get(d.via.source.type, 0) + 1
    sources = ", ".join(f"{n} through {kind}" for kind, n in through.items()) or "none"
    token = next((t.token for t in settings.api_tokens if t.role == "admin" and t.token), None) or "<token>"
    broker = f"{settings.mqtt.url} ({'embedded' if embedded else 'external'})"
    print(f"""
community brain (社区大脑) demo is running
  broker:   {broker}, topics {settings.mqtt.prefix}/{{community}}/{{device_type}}/{{device_id}}/telemetry
  sources:  devices that report through other systems: {sources}
            (pushes to {base}/ingest/{{type}}/{{source}}; unregistered ones: /api/v1/unregistered)
  store:    {service.store.url}
  wall:     {base}/wall       (log in with example-token-street: the duty wall)
  inbox:    {base}/inbox      (log in with example-token-worker-g1: a grid worker's phone)
  supplies: {base}/supplies   (emergency supplies, their stock and ledger; a red building alert's page
  shelters: {base}/shelters   lists its shelters, supplies and the residents to knock on: docs/resources.md)
  open:     {base}/health     (state of broker, store, spool)
            {base}/metrics    (Prometheus)
  devices:  curl -H 'Authorization: Bearer {token}' {base}/api/v1/devices
  alerts:   curl -H 'Authorization: Bearer {token}' {base}/api/v1/alerts
            (a simulated incident every {INCIDENT_EVERY_S:g} s; notifications appear in this log)
  rejected: curl -H 'Authorization: Bearer {token}' {base}/api/v1/rejections
  grafana:  the street office's dashboards (街道总览 …) need InfluxDB and Grafana: run
            `deploy/secure-setup.sh && docker compose up -d --build`, then open
            http://127.0.0.1:3000/d/cb-wall?kiosk (see dashboards/README.md)
  stop:     Ctrl-C
""", flush=True)
