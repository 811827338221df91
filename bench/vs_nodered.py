#!/usr/bin/env python3
"""Side by side: `cbrain run` against Node-RED (mqtt in -> json -> function -> join -> influxdb batch).

For each system, on a fresh Mosquitto and a fresh influxd (tests/servers.py, loopback, free ports):

  paho         a bare paho-mqtt 2.x subscriber (MQTT 5, QoS 1, auto-ack) that only counts
  service      `cbrain run` (QoS 1, rules on), as bench/ingest_throughput.py runs it
  nodered-q0   Node-RED 4 + node-red-contrib-influxdb: mqtt in (QoS 0) -> json -> function (an
               influx point: measurement from the topic, tags community and device_id, every field
               of the payload, time = the reading's ts) -> join 1000 (1 s timeout) -> influxdb batch
               (v1 API, InfluxDB 1.x)
  nodered-q1   the same flow with mqtt in at QoS 1

a paced QoS 1 publisher (one process, device_sim.mqtt's client, a tick every 5 ms sending what is due)
climbs a ladder of rates (--step, --step + --step, ... up to --max-rate), --step-seconds each, the
same topics and payloads as bench/ingest_throughput.py (`cb/bench/ebike_charger/<id>/telemetry`,
1,000 ports, seq counting up per device) with `ts` = the wall-clock ms when the reading is sent.
After each step the bench waits (at most --drain-seconds) until the store holds everything the broker
acknowledged in the step: influxd's own count of points written (`SHOW STATS`), then the exact
`SELECT count(current_a) FROM ebike_charger WHERE time >= <the step's start>` (paho: its count).

Lag: every 0.5 s during a step, `SELECT last(current_a)` over the last 30 s gives the newest stored
point's time; lag = wall clock before the query - that time (the age of the newest visible reading;
for the paho subscriber, arrival - ts of every 50th message). Backlog: every 0.5 s while the publisher
publishes, what the broker has acknowledged to it (read before and after) minus the readings stored
in the step: for the service its /metrics `cb_readings_stored_total`, for Node-RED influxd's
pointsWrittenOK (`SHOW STATS`, ~0.5 ms of its CPU; a count query over a 900,000-point step costs it
150-200 ms, too much every 0.5 s), for paho its count. A step is *held* when nothing is
missing after the drain, the lag's p90 is under 1 s and the backlog does not grow: its least-squares
slope over the step's second half at most 2 % of the asked rate per second (or a rise over that half
under 1,000 readings, one Node-RED batch). A step where the publisher sent less than 97 % of the asked
rate is marked `pub-bound` and never counts as held: the figure is the publisher's, not the
consumer's. A ladder ends at a step with readings missing after the drain, or after --stop-after
steps in a row not held. CPU per 1,000 readings and peak RSS come from psutil (/proc) of the consumer
process and its children (for Node-RED: its node process); the system's Mosquitto and influxd over
the step and its drain give the pipeline's (consumer + broker + database; the publisher apart).

At the end, `service` against `nodered-q1` at the same rates (every rate both held in a repetition):
the ratios of CPU per reading, of the pipeline's, of the held rates and of peak RSS, the machine's load,
and PASS/FAIL against the targets (CPU <= 0.6x, pipeline <= 0.8x, held >= 2x, RSS <= 0.5x).

Repetitions are interleaved (paho, service, nodered-q0, nodered-q1, paho, service, ...). Node-RED is
installed with npm into --nodered-dir (default /tmp/cb-nodered-cache, reused when present); nothing
here runs in `make test`. Every phase is bounded in time and count; every process is stopped at the
end, also on Ctrl-C.

Run: .venv/bin/python bench/vs_nodered.py [--step 2500] [--step-seconds 20] [--max-rate 45000]
     [--repetitions 3] [--stop-after 2] [--systems paho,service,nodered-q0,nodered-q1] [--profile-rate R]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for p in (str(REPO), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

import ingest_throughput as it  # noqa: E402  (bench/ helpers: topics, payloads, config, py-spy)

SYSTEMS = ("paho", "service", "nodered-q0", "nodered-q1")
NODERED_PACKAGES = ("node-red@4", "node-red-contrib-influxdb@0.7")
PACE_SHORTFALL = 0.97  # achieved / asked below this: the publisher was the limit
LAG_P90_LIMIT_S = 1.0
LAG_EVERY_S = 0.5
# The wait between two readings of lag and backlog is drawn from LAG_EVERY_S x [0.5, 1.5). A fixed
# wait aliases with the store's own period (the service's writer gathers up to 0.5 s, so its backlog
# is a sawtooth of about that period): sampled every ~0.53 s, a steady sawtooth reads as a slow ramp
# or a slow wave, which the slope below takes for growth. Simulated with backlog_trend (sawtooth of
# 0.5-0.55 s at 5,000-20,000/s, no growth): a fixed 0.53 s marked 12-24 % of such steps growing,
# the drawn wait 1-2 %, and it catches a consumer 4 % short in 86-90 % of steps against 63-77 %.
LAG_JITTER = (0.5, 1.5)
# The backlog (acknowledged by the broker - stored) must not trend upward through a step: its
# least-squares slope over the step's second half above BACKLOG_SLOPE_FRAC of the asked rate per
# second, and a rise over that half of more than BACKLOG_FLOOR readings (one Node-RED batch: a smaller
# rise cannot be told from the batching), mark the step not held. Fewer than BACKLOG_MIN_SAMPLES
# samples in the half: no verdict from the backlog.
BACKLOG_SLOPE_FRAC = 0.02
BACKLOG_FLOOR = 1000
BACKLOG_MIN_SAMPLES = 4
# The troughs must climb too: the half cut into pieces of about this long (at least two), the
# least-squares slope of each piece's lowest sample above the same fraction of the rate.
BACKLOG_TROUGH_PIECE_S = 2.5
# Targets of the comparison block (service / Node-RED QoS 1); "<=" or ">=" the ratio.
TARGETS = (("CPU per reading, consumer with its children, same rate", "cpu", "<=", 0.6),
           ("CPU per reading, whole pipeline (consumer + Mosquitto + influxd), same rate", "pipeline", "<=", 0.8),
           ("highest rate held (median over repetitions)", "held", ">=", 2.0),
           ("peak RSS over the ladder (median over repetitions)", "rss", "<=", 0.5))
TICK_S = 0.005
MEASUREMENT = it.DEVICE_TYPE
log = it.log


# ---- the paced publisher (child process) ---------------------------------------------------------


def paced_publisher_main(host: str, port: int, n_devices: int, rate: float, seconds: float, first_index: int,
                         inflight: int, results: Any, live: Any) -> None:
    """Publish `rate` readings/s for `seconds` at QoS 1, ts = send time; report pacing, acks and own CPU.

    `live` (shared doubles) follows the step as it runs: [phase (1 publishing, 2 done), sent, acked by
    the broker, wall-clock start in s].
    """
    sys.path.insert(0, str(REPO))
    from device_sim.mqtt import MqttClient, encode_topic

    async def run() -> dict[str, Any]:
        topics = [encode_topic(it.topic_of(d)) for d in it.device_ids(n_devices)]
        last_ts = [0] * n_devices
        client = await MqttClient.open(f"mqtt://{host}:{port}", f"bench-pace-{os.getpid()}", inflight=inflight)
        cpu0 = os.times()
        t0 = time.monotonic()
        live[3] = time.time()
        live[0] = 1
        end = t0 + seconds
        sent = 0
        max_behind = 0
        i = first_index
        fmt = it.PAYLOAD_FMT
        total = int(rate * seconds)
        while True:
            now = time.monotonic()
            if now >= end or sent >= total:
                break
            due = min(total, int((now - t0) * rate) + 1)
            room = client.room()
            todo = min(due - sent, room)
            if todo > 0:
                ts = int(time.time() * 1000)
                for _ in range(todo):
                    d = i % n_devices
                    t = ts if ts > last_ts[d] else last_ts[d] + 1
                    last_ts[d] = t
                    client.publish_nowait(topics[d], fmt % (t, i // n_devices), 1)
                    i += 1
                client.flush()
                sent += todo
            max_behind = max(max_behind, due - sent)
            live[1] = sent
            live[2] = client.acked
            await asyncio.sleep(max(0.0, TICK_S - (time.monotonic() - now)))
        t_stop = time.monotonic()
        live[1] = sent
        live[2] = client.acked
        live[0] = 2
        drained = await client.drain(30.0)
        live[2] = client.acked
        cpu1 = os.times()
        acked = client.acked
        await client.disconnect()
        return {"sent": sent, "acked": acked, "drained": drained, "asked_rate": rate,
                "achieved_rate": sent / (t_stop - t0), "elapsed_s": t_stop - t0, "max_behind": max_behind,
                "cpu_s": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
                "next_index": i}

    try:
        rep = asyncio.run(run())
    except BaseException as exc:
        rep = {"error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"}
    results.put(rep)


def counting_subscriber_main(host: str, port: int, received: Any, lag_ms: Any, ready: Any, stop: Any) -> None:
    """A bare paho subscriber (MQTT 5, QoS 1, auto-ack): counts, and keeps the lag of every 50th message."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    count = 0
    lags: list[float] = []

    def on_message(_c: Any, _u: Any, m: Any) -> None:
        nonlocal count
        count += 1
        if count % 50 == 0:
            ts = int(m.payload[7:20])  # b'{"ts": 1234567890123, ...'
            lags.append(time.time() * 1000 - ts)

    subscribed = [False]
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-count-{os.getpid()}",
                         protocol=paho.MQTTv5)
    client.on_message = on_message
    client.on_subscribe = lambda *_a: subscribed.__setitem__(0, True)
    client.connect(host, port, keepalive=60, clean_start=True)
    client.subscribe(f"{it.PREFIX}/#", qos=1)
    deadline = time.monotonic() + 15
    while not subscribed[0] and time.monotonic() < deadline:
        client.loop(timeout=0.1)
    ready.set()
    while not stop.is_set():
        client.loop(timeout=0.05)
        received.value = count
        if lags:
            lag_ms.put(lags[:])
            lags.clear()
    client.disconnect()


# ---- Node-RED -----------------------------------------------------------------------------------


def ensure_nodered(where: Path) -> Path:
    """Install Node-RED 4 and node-red-contrib-influxdb with npm into `where` (once); return red.js."""
    red = where / "node_modules" / "node-red" / "red.js"
    plugin = where / "node_modules" / "node-red-contrib-influxdb" / "influxdb.js"
    if red.exists() and plugin.exists():
        return red
    npm = shutil.which("npm")
    if not npm:
        raise RuntimeError("npm not found: Node-RED cannot be installed (apt-get install npm)")
    where.mkdir(parents=True, exist_ok=True)
    if not (where / "package.json").exists():
        (where / "package.json").write_text('{"name": "cb-nodered-bench", "private": true}\n')
    log(f"nodered: npm install {' '.join(NODERED_PACKAGES)} into {where}")
    r = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error", *NODERED_PACKAGES],
                       cwd=where, capture_output=True, text=True, timeout=600)
    if r.returncode != 0 or not red.exists():
        raise RuntimeError(f"npm install failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return red


def nodered_flow(mqtt_port: int, influx_port: int, qos: int) -> list[dict[str, Any]]:
    """The flow: mqtt in -> json -> function (influx point) -> join 1000 -> influxdb batch (1.x)."""
    fn = (
        "const p = msg.payload;\n"
        "const t = msg.topic.split('/');\n"
        "const fields = {};\n"
        "for (const k in p) { if (k !== 'ts') fields[k] = p[k]; }\n"
        "msg.payload = {measurement: t[2], tags: {community: t[1], device_id: t[3]},\n"
        "               fields: fields, timestamp: new Date(p.ts)};\n"
        "return msg;\n"
    )
    return [
        {"id": "cbb-tab", "type": "tab", "label": "bench"},
        {"id": "cbb-broker", "type": "mqtt-broker", "name": "mosquitto", "broker": "127.0.0.1",
         "port": str(mqtt_port), "clientid": "bench-nodered", "autoConnect": True, "usetls": False,
         "protocolVersion": "4", "keepalive": "60", "cleansession": True, "autoUnsubscribe": True},
        {"id": "cbb-influx", "type": "influxdb", "hostname": "127.0.0.1", "port": str(influx_port),
         "protocol": "http", "database": it.DATABASE, "name": "bench", "usetls": False,
         "tls": "", "influxdbVersion": "1.x"},
        {"id": "cbb-in", "type": "mqtt in", "z": "cbb-tab", "name": "", "topic": f"{it.PREFIX}/+/+/+/telemetry",
         "qos": str(qos), "datatype": "utf8", "broker": "cbb-broker", "nl": False, "rap": True, "rh": 0,
         "inputs": 0, "wires": [["cbb-json"]]},
        {"id": "cbb-json", "type": "json", "z": "cbb-tab", "property": "payload", "action": "obj",
         "pretty": False, "wires": [["cbb-fn"]]},
        {"id": "cbb-fn", "type": "function", "z": "cbb-tab", "name": "to point", "func": fn, "outputs": 1,
         "timeout": 0, "noerr": 0, "initialize": "", "finalize": "", "libs": [], "wires": [["cbb-join"]]},
        {"id": "cbb-join", "type": "join", "z": "cbb-tab", "mode": "custom", "build": "array", "property": "payload",
         "propertyType": "msg", "key": "topic", "joiner": "\\n", "joinerType": "str", "accumulate": False,
         "timeout": "1", "count": "1000", "reduceRight": False, "reduceExp": "", "reduceInit": "",
         "reduceInitType": "", "reduceFixup": "", "wires": [["cbb-batch"]]},
        {"id": "cbb-batch", "type": "influxdb batch", "z": "cbb-tab", "influxdb": "cbb-influx", "precision": "",
         "retentionPolicy": "", "name": "", "database": "", "precisionV18FluxV20": "ms",
         "retentionPolicyV18Flux": "", "org": "", "bucket": "", "wires": []},
    ]


def start_nodered(red: Path, tmp: Path, mqtt_port: int, influx_port: int, qos: int,
                  servers_mod: Any) -> tuple[subprocess.Popen[bytes], Path]:
    """Run Node-RED on loopback with the bench flow; return once its MQTT node has connected."""
    user_dir = tmp / f"nodered-q{qos}"
    user_dir.mkdir()
    http_port = servers_mod.free_port()
    (user_dir / "flows.json").write_text(json.dumps(nodered_flow(mqtt_port, influx_port, qos), indent=1))
    (user_dir / "flows_cred.json").write_text(json.dumps({"cbb-influx": {"username": "", "password": ""}}))
    (user_dir / "settings.js").write_text(
        "module.exports = {\n"
        f"  uiHost: '127.0.0.1', uiPort: {http_port}, flowFile: 'flows.json', credentialSecret: false,\n"
        "  diagnostics: {enabled: false}, telemetry: {enabled: false},\n"
        "  externalModules: {autoInstall: false, palette: {allowInstall: false}},\n"
        "  logging: {console: {level: 'info', metrics: false, audit: false}},\n"
        "  editorTheme: {tours: false},\n"
        "};\n")
    node = shutil.which("node") or "node"
    argv = [node, str(red), "--userDir", str(user_dir), "--settings", str(user_dir / "settings.js")]
    setpriv = shutil.which("setpriv")
    if setpriv:
        argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
    log_path = user_dir / "nodered.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                cwd=user_dir, start_new_session=True)
    deadline = time.monotonic() + 90
    while True:
        text = log_path.read_text(errors="replace")
        if "Error" in text:
            stop_proc(proc)
            raise RuntimeError(f"Node-RED reported an error starting the flow\n{it.tail(log_path)}")
        if "Connected to broker" in text:
            return proc, log_path
        if proc.poll() is not None:
            raise RuntimeError(f"Node-RED exited with {proc.returncode}\n{it.tail(log_path)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"Node-RED not connected to the broker after 90 s\n{it.tail(log_path)}")
        time.sleep(0.3)


# ---- one system's ladder --------------------------------------------------------------------------


def stop_proc(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def proc_tree_cpu_rss(p: Any) -> tuple[float, float]:
    """CPU seconds and RSS (MB) of a process and its children."""
    procs = [p]
    with contextlib.suppress(Exception):
        procs += p.children(recursive=True)
    cpu = rss = 0.0
    for q in procs:
        try:
            t = q.cpu_times()
            cpu += t.user + t.system
            rss += q.memory_info().rss
        except Exception:
            continue
    return cpu, rss / 2**20


def servers_cpu(broker: Any, influx: Any) -> tuple[float, float]:
    """CPU seconds so far of the broker and of influxd (0 when there is none)."""
    import psutil

    out = []
    for server in (broker, influx):
        pid = server.pid if server is not None else None
        try:
            t = psutil.Process(pid).cpu_times() if pid else None
        except psutil.Error:
            t = None
        out.append(t.user + t.system if t else 0.0)
    return out[0], out[1]


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, round(q * (len(v) - 1)))]


def influx_points_written(influx: Any) -> int:
    """Points influxd's HTTP API has written since it started (`SHOW STATS`, pointsWrittenOK).

    About 0.5 ms of influxd's CPU however much it holds, where `SELECT count(...)` over a step of
    900,000 points costs it 150-200 ms: affordable every 0.5 s. It counts every point written, of any
    measurement: right for Node-RED's flow (readings only), not for the service, which writes points of
    its own besides (each step reports those as `extra_points`).
    """
    r = influx.query("SHOW STATS FOR 'httpd'")
    total = 0
    for series in r["results"][0].get("series") or []:
        cols = series["columns"]
        total += int(series["values"][0][cols.index("pointsWrittenOK")])
    return total


def ls_slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (x, y) points; None when it is undefined."""
    n = len(points)
    if n < 2:
        return None
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx <= 0:
        return None
    return sum((x - mx) * (y - my) for x, y in points) / sxx


def backlog_trend(points: list[tuple[float, float]], seconds: float, rate: float) -> dict[str, Any]:
    """Whether the backlog grew through a step: its least-squares slope over the step's second half.

    points: (seconds since the publisher started, backlog in readings), sampled while it published.
    The first half is left out (the pipeline fills from empty: its batches, buffers and in-flight
    windows); over the second half (10 s of a 20 s step, ~20 samples) the batching's sawtooth (periods
    of 1 s or less: Node-RED's join of 1,000 or 1 s, the service's commits every 25 ms) averages out,
    while a consumer short of the rate by a fraction f adds f x rate readings to the backlog every second.
    """
    half = [(t, b) for t, b in points if t >= seconds / 2]
    out: dict[str, Any] = {
        "backlog_samples": len(points),
        "backlog_after_1s": next((round(b) for t, b in points if t >= 1.0), None),
        "backlog_end": round(points[-1][1]) if points else None,
        "backlog_max": round(max(b for _, b in points)) if points else None,
        "backlog_slope_per_s": None, "backlog_slope_pct": None, "backlog_trough_slope_per_s": None,
        "backlog_growing": False,
    }
    slope = ls_slope(half) if len(half) >= BACKLOG_MIN_SAMPLES else None
    if slope is None:
        return out
    window = half[-1][0] - half[0][0]
    # the troughs: the lowest sample of each piece of the half (what is left right after a batch is
    # stored); a slower sawtooth than expected (a stall of the machine, a periodic snapshot) moves the
    # slope of all samples with where its teeth fall, but hardly the slope of its troughs
    pieces = max(2, int(window / BACKLOG_TROUGH_PIECE_S))
    t0 = half[0][0]
    troughs = []
    for k in range(pieces):
        piece = [(t, b) for t, b in half if k * window / pieces <= t - t0 < (k + 1) * window / pieces
                 or (k == pieces - 1 and t - t0 == window)]
        if piece:
            troughs.append(min(piece, key=lambda x: x[1]))
    trough_slope = ls_slope(troughs)
    out["backlog_slope_per_s"] = round(slope, 1)
    out["backlog_slope_pct"] = round(100 * slope / rate, 2)
    out["backlog_trough_slope_per_s"] = None if trough_slope is None else round(trough_slope, 1)
    limit = BACKLOG_SLOPE_FRAC * rate
    out["backlog_growing"] = (slope > limit and slope * window > BACKLOG_FLOOR
                              and (trough_slope is None or trough_slope > limit))
    return out


def run_system(system: str, rep: int, args: argparse.Namespace, ctx: Any, tmp: Path, servers_mod: Any,
               red: Path | None, profile_rate: float = 0.0) -> dict[str, Any]:
    """Fresh broker and database; the consumer; the ladder of paced steps; per-step figures."""
    import psutil

    where = tmp / f"{system}-{rep}"
    where.mkdir()
    cleanup: list[Any] = []
    steps: list[dict[str, Any]] = []
    result: dict[str, Any] = {"system": system, "repetition": rep, "steps": steps}
    try:
        broker = servers_mod.Mosquitto(where / "mosquitto")
        cleanup.append(broker.stop)
        broker.start()
        influx: Any = None
        if system != "paho":
            influx = servers_mod.InfluxD(where / "influxd")
            cleanup.append(influx.stop)
            influx.start()
            influx.create_database(it.DATABASE)
        sub_stop = ctx.Event()
        received = ctx.Value("q", 0, lock=False)
        lag_q = ctx.Queue()
        consumer: Any = None
        svc_log: Path | None = None
        if system == "paho":
            ready = ctx.Event()
            sp = ctx.Process(target=counting_subscriber_main, daemon=True, name="bench-count",
                             args=(broker.host, broker.port, received, lag_q, ready, sub_stop))
            sp.start()
            cleanup.append(lambda: (sub_stop.set(), sp.join(5), sp.is_alive() and sp.kill()))
            if not ready.wait(20):
                raise RuntimeError("counting subscriber not ready")
            consumer = psutil.Process(sp.pid)
        elif system == "service":
            http_port = servers_mod.free_port()
            cfg = where / "bench.yaml"
            it.write_config(cfg, broker.url, influx.url, http_port, where / "state")
            cbrain = Path(sys.executable).parent / "cbrain"
            argv = [str(cbrain), "run", "--config", str(cfg)]
            setpriv = shutil.which("setpriv")
            if setpriv:
                argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
            env = {k: v for k, v in os.environ.items() if not k.startswith("CB_")}
            svc_log = where / "service.log"
            with svc_log.open("wb") as out:
                svc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                       cwd=where, env=env, start_new_session=True)
            cleanup.append(lambda: stop_proc(svc))
            deadline = time.monotonic() + 60
            while True:
                if svc.poll() is not None:
                    raise RuntimeError(f"service exited with {svc.returncode}\n{it.tail(svc_log)}")
                try:
                    if it.http_get(f"http://127.0.0.1:{http_port}/health", 1.0)[0] == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"service not healthy after 60 s\n{it.tail(svc_log)}")
                time.sleep(0.2)
            consumer = psutil.Process(svc.pid)
        else:
            assert red is not None
            nr, svc_log = start_nodered(red, where, broker.port, influx.port, int(system[-1]), servers_mod)
            cleanup.append(lambda: stop_proc(nr))
            consumer = psutil.Process(nr.pid)
        log(f"{system} #{rep}: consumer pid {consumer.pid} ready")

        def stored_fast() -> int:
            """Readings the store has taken so far, cheaply: the paho count; the service's own count of
            readings stored (/metrics: influxd's count would take its other points too, e.g. ~1,000 when
            the devices first appear); for Node-RED, whose only writes are the readings, influxd's."""
            if system == "paho":
                return int(received.value)
            if system == "service":
                status, body = it.http_get(f"http://127.0.0.1:{http_port}/metrics", 5.0)
                if status != 200:
                    raise RuntimeError(f"GET /metrics: {status}")
                return int(it.parse_metrics(body.decode()).get("cb_readings_stored_total", 0))
            return influx_points_written(influx)

        def stored_since(since_ms: int, base: int) -> int:
            """Readings stored with a time >= since_ms (the step's own): an exact count, once a step."""
            if system == "paho":
                return int(received.value) - base
            r = influx.query(f"SELECT count(current_a) FROM {MEASUREMENT} WHERE time >= {since_ms}ms",
                             db=it.DATABASE)
            series = r["results"][0].get("series")
            return int(series[0]["values"][0][1]) if series else 0

        def newest_ms() -> float | None:
            r = influx.query(f"SELECT last(current_a) FROM {MEASUREMENT} WHERE time > now() - 30s",
                             db=it.DATABASE, epoch="ms")
            series = r["results"][0].get("series")
            return float(series[0]["values"][0][0]) if series else None

        rates = [args.step * k for k in range(1, int(args.max_rate // args.step) + 1)]
        if profile_rate:
            rates = [profile_rate]
        result["ladder_top"] = rates[-1]
        next_index = 0
        acked_total = 0
        stored_total = 0
        peak_rss_all = 0.0
        failed_in_a_row = 0
        for rate in rates:
            res_q = ctx.Queue()
            live = ctx.Array("d", 4, lock=False)  # phase, sent, acked, start (see paced_publisher_main)
            pub = ctx.Process(target=paced_publisher_main, daemon=True, name="bench-pace",
                              args=(broker.host, broker.port, args.devices, rate, args.step_seconds,
                                    next_index, args.inflight, res_q, live))
            load_start = os.getloadavg()[0]
            cpu0, _ = proc_tree_cpu_rss(consumer)
            servers0 = servers_cpu(broker, influx)
            mach0 = it.machine_times()
            stored_base = stored_fast()
            points_base = influx_points_written(influx) if influx is not None else 0
            # every reading of this step has ts >= this (the previous step's all lie before it)
            since_ms = int(time.time() * 1000)
            t_start = time.monotonic()
            pub.start()
            prof = None
            if profile_rate and system == "service":
                time.sleep(min(3.0, args.step_seconds / 4))
                prof = it.start_profile(consumer.pid, max(2.0, args.step_seconds - 6), where / "pyspy.raw",
                                        args.profile_gil)
            lags: list[float] = []
            backlog: list[tuple[float, float]] = []  # (s since the publisher started, acked - stored)
            probe_ms: list[float] = []  # how long each reading of the store's count took
            jitter = random.Random()  # the waits between readings (LAG_JITTER)
            peak_rss = 0.0
            pub_rep: dict[str, Any] | None = None
            while pub_rep is None:
                if live[0] == 1:
                    # the acks on either side of the reading of the store: the backlog at its middle
                    acked_a = live[2]
                    t_probe = time.perf_counter()
                    have_now = stored_fast() - stored_base
                    probe_ms.append((time.perf_counter() - t_probe) * 1000)
                    acked_b = live[2]
                    if live[0] == 1:
                        backlog.append((time.time() - live[3], (acked_a + acked_b) / 2 - have_now))
                t_q = time.time() * 1000
                if system == "paho":
                    while not lag_q.empty():
                        lags += [x / 1000 for x in lag_q.get()]
                else:
                    newest = newest_ms()
                    if newest is not None and time.monotonic() - t_start > 1.0:
                        lags.append((t_q - newest) / 1000)
                peak_rss = max(peak_rss, proc_tree_cpu_rss(consumer)[1])
                try:
                    pub_rep = res_q.get(timeout=LAG_EVERY_S * jitter.uniform(*LAG_JITTER))
                except Exception:
                    if not pub.is_alive() and res_q.empty():
                        raise RuntimeError(f"publisher died (exit {pub.exitcode})") from None
                    if time.monotonic() - t_start > args.step_seconds + 60:
                        raise RuntimeError("publisher did not report within step + 60 s") from None
            pub.join(5)
            if "error" in pub_rep:
                raise RuntimeError(f"publisher: {pub_rep['error']}")
            next_index = pub_rep["next_index"]
            acked_step = pub_rep["acked"]
            acked_total += acked_step
            # bounded drain: until the store holds everything acknowledged in this step (the earlier
            # steps' readings are all stored, or the ladder has ended); the cheap counter first, then
            # the exact count of the step's readings
            t_drain = time.monotonic()
            exact = False
            while True:
                have = stored_since(since_ms, stored_base) if exact else stored_fast() - stored_base
                if have >= acked_step:
                    if exact:
                        break
                    exact = True
                    continue
                if time.monotonic() - t_drain >= args.drain_seconds:
                    if not exact:
                        have = stored_since(since_ms, stored_base)
                    break
                time.sleep(0.5 if exact else 0.25)
                peak_rss = max(peak_rss, proc_tree_cpu_rss(consumer)[1])
            drain_s = time.monotonic() - t_drain
            # points influxd took in the step besides the readings (the service's other measurements)
            extra_points = (influx_points_written(influx) - points_base - have) if influx is not None else 0
            stored_total += have
            if system == "paho":
                while not lag_q.empty():
                    lags += [x / 1000 for x in lag_q.get()]
            cpu1, rss_now = proc_tree_cpu_rss(consumer)
            servers1 = servers_cpu(broker, influx)
            mach1 = it.machine_times()
            wall = time.monotonic() - t_start
            load_end = os.getloadavg()[0]
            peak_rss = max(peak_rss, rss_now)
            peak_rss_all = max(peak_rss_all, peak_rss)
            if prof is not None:
                try:
                    prof.wait(60)
                except subprocess.TimeoutExpired:
                    prof.kill()
                result["profile"] = it.analyse_profile(where / "pyspy.raw", top=25)
            missing = acked_total - stored_total
            readings = pub_rep["sent"]
            per_1000 = 1e6 / max(1, readings)  # CPU seconds -> ms per 1,000 readings
            consumer_cpu, mosq_cpu, influx_cpu = cpu1 - cpu0, servers1[0] - servers0[0], servers1[1] - servers0[1]
            pace = pub_rep["achieved_rate"] / rate
            p90 = pct(lags, 0.9)
            step = {
                "rate": rate, "achieved_rate": round(pub_rep["achieved_rate"], 1), "pace": round(pace, 4),
                "publisher_cpu_cores": round(pub_rep["cpu_s"] / pub_rep["elapsed_s"], 3),
                "publisher_max_behind": pub_rep["max_behind"], "sent": readings, "acked": acked_step,
                "stored": have, "stored_total": stored_total, "acked_total": acked_total, "missing": missing,
                "extra_points": extra_points, "drain_s": round(drain_s, 2),
                "lag_p50_s": pct(lags, 0.5), "lag_p90_s": p90, "lag_max_s": max(lags) if lags else None,
                "lag_samples": len(lags),
                **backlog_trend(backlog, args.step_seconds, rate),
                "backlog_series": [[round(t, 2), round(b)] for t, b in backlog],
                "backlog_probe_ms_p50": round(pct(probe_ms, 0.5) or 0.0, 2),
                # CPU over the step and its drain per 1,000 readings published, in ms (= µs a reading)
                "cpu_ms_per_1000": round(consumer_cpu * per_1000, 1),
                "mosquitto_ms_per_1000": round(mosq_cpu * per_1000, 1),
                "influxd_ms_per_1000": round(influx_cpu * per_1000, 1),
                "pipeline_ms_per_1000": round((consumer_cpu + mosq_cpu + influx_cpu) * per_1000, 1),
                "publisher_ms_per_1000": round(pub_rep["cpu_s"] * per_1000, 1),
                "consumer_cores": round(consumer_cpu / wall, 3),
                "peak_rss_mb": round(peak_rss, 1),
                # all busy CPU of the machine and the hypervisor's steal: other work shows up here
                "machine_cores": round((mach1["machine"] - mach0["machine"]) / wall, 2),
                "steal_cores": round((mach1["steal"] - mach0["steal"]) / wall, 2),
                # what the same readings cost the broker and the database for this consumer
                "mosquitto_cores": round(mosq_cpu / wall, 3),
                "influxd_cores": round(influx_cpu / wall, 3),
                "loadavg_1m_start": round(load_start, 2), "loadavg_1m_end": round(load_end, 2),
                "wall_s": round(wall, 2),
            }
            # busy cores of the machine not spent by this pipeline or its publisher: other work
            step["other_cores"] = round(max(0.0, step["machine_cores"] - (consumer_cpu + mosq_cpu + influx_cpu
                                                                          + pub_rep["cpu_s"]) / wall), 2)
            step["pub_bound"] = pace < PACE_SHORTFALL
            why = []
            if missing > 0:
                why.append("missing")
            if p90 is None or p90 >= LAG_P90_LIMIT_S:
                why.append("lag")
            if step["backlog_growing"]:
                why.append("backlog")
            if step["pub_bound"]:
                why.append("pub-bound")
            step["not_held_because"] = why
            step["held"] = not why
            steps.append(step)
            log(f"{system} #{rep}: {rate:>7,.0f}/s asked, {pub_rep['achieved_rate']:,.0f}/s sent "
                f"(pub {step['publisher_cpu_cores']:.2f} core), missing {missing:,} after {drain_s:.1f} s, "
                f"lag p50/p90 {fmt_s(step['lag_p50_s'])}/{fmt_s(p90)}, backlog slope "
                f"{fmt_slope(step)}, {step['cpu_ms_per_1000']} ms CPU/1000 (pipeline "
                f"{step['pipeline_ms_per_1000']}), {step['consumer_cores']:.2f} cores, RSS {peak_rss:.0f} MB, "
                f"mosquitto {step['mosquitto_cores']:.2f} influxd {step['influxd_cores']:.2f} cores, load "
                f"{load_end:.2f} -> {mark(step)}")
            if missing > 0 and not profile_rate:
                break  # a backlog left behind would spoil every later step
            if step["held"]:
                failed_in_a_row = 0
            elif why != ["pub-bound"]:
                # Failed on the consumer's own account (a step where the publisher also fell short
                # counts: on a saturated machine the shortfall is a symptom). A publisher's shortfall
                # alone says nothing of the consumer, and leaves the count as it was.
                failed_in_a_row += 1
            if args.stop_after and failed_in_a_row >= args.stop_after:
                log(f"{system} #{rep}: {failed_in_a_row} steps in a row not held; the ladder ends here")
                break
        result["peak_rss_mb"] = round(peak_rss_all, 1)
        held = [s for s in steps if s["held"]]
        # the highest rate of an unbroken run of held steps from the bottom of the ladder
        best = None
        for s in steps:
            if not s["held"]:
                break
            best = s
        result["held_rate"] = best["rate"] if best else 0
        result["held_step"] = best
        result["any_held_max"] = max((s["rate"] for s in held), default=0)
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        log(f"{system} #{rep}: ERROR {exc}")
        if svc_log := locals().get("svc_log"):
            result["log_tail"] = it.tail(svc_log)
    finally:
        for fn in reversed(cleanup):
            try:
                fn()
            except Exception as exc:
                log(f"cleanup: {exc}")
    return result


def fmt_s(v: float | None) -> str:
    return "-" if v is None else (f"{v * 1000:.0f} ms" if v < 10 else f"{v:.1f} s")


def fmt_slope(step: dict[str, Any]) -> str:
    v = step.get("backlog_slope_per_s")
    return "-" if v is None else f"{v:+,.0f}/s ({step['backlog_slope_pct']:+.1f} %)"


def mark(step: dict[str, Any]) -> str:
    if step["held"]:
        return "held"
    if step["pub_bound"]:
        return "PUB-BOUND"
    return "not held (" + ", ".join(step.get("not_held_because") or ["?"]) + ")"


# ---- summary ------------------------------------------------------------------------------------


def summarize(runs: list[dict[str, Any]], systems: list[str]) -> dict[str, Any]:
    """Per system over its repetitions: held rate (min-max), and the figures at the held step."""
    out: dict[str, Any] = {}
    for sysname in systems:
        mine = [r for r in runs if r["system"] == sysname]
        held = [r.get("held_rate", 0) for r in mine]
        steps = [r["held_step"] for r in mine if r.get("held_step")]
        out[sysname] = {
            "held_rates": held, "held_min": min(held) if held else 0,
            "held_median": statistics.median(held) if held else 0,
            "cpu_ms_per_1000": [s["cpu_ms_per_1000"] for s in steps],
            "mosquitto_ms_per_1000": [s["mosquitto_ms_per_1000"] for s in steps],
            "influxd_ms_per_1000": [s["influxd_ms_per_1000"] for s in steps],
            "pipeline_ms_per_1000": [s["pipeline_ms_per_1000"] for s in steps],
            "publisher_ms_per_1000": [s["publisher_ms_per_1000"] for s in steps],
            "backlog_slope_pct": [s["backlog_slope_pct"] for s in steps],
            "lag_p50_s": [s["lag_p50_s"] for s in steps], "lag_p90_s": [s["lag_p90_s"] for s in steps],
            "peak_rss_mb": [r.get("peak_rss_mb") for r in mine],
            "consumer_cores": [s["consumer_cores"] for s in steps],
            "publisher_cores": [s["publisher_cpu_cores"] for s in steps],
            "pace": [s["pace"] for s in steps],
            "pub_bound_steps": sum(1 for r in mine for s in r["steps"] if s["pub_bound"]),
            "errors": [r["error"] for r in mine if "error" in r],
        }
    return out


def span(vals: list[Any], fmt: str = "{:,.0f}") -> str:
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    lo, hi = min(vals), max(vals)
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}–{fmt.format(hi)}"


def median_or_none(vals: list[Any]) -> float | None:
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def compare(runs: list[dict[str, Any]], a: str = "service", b: str = "nodered-q1") -> dict[str, Any] | None:
    """`a` against `b` at the same rates: in each repetition, every rate both held.

    Per common rate, the ratios a/b of CPU per reading (consumer with its children), of the whole
    pipeline's (consumer + Mosquitto + influxd) and of the step's peak RSS, paired within a repetition
    (the two ladders ran minutes apart) and their median over the repetitions where both held it; the
    machine's load at those steps. The figure of the comparison is the highest rate both held in at
    least half of the repetitions (else in any). Besides: the ratio of the median highest rates held
    and of the median peak RSS over the whole ladder.
    """
    reps = sorted({r["repetition"] for r in runs if r["system"] == a} & {r["repetition"] for r in runs
                                                                          if r["system"] == b})
    if not reps:
        return None
    by_rate: dict[float, list[dict[str, Any]]] = {}
    load: dict[str, list[dict[str, Any]]] = {a: [], b: []}
    for k in reps:
        ra = next(r for r in runs if r["system"] == a and r["repetition"] == k)
        rb = next(r for r in runs if r["system"] == b and r["repetition"] == k)
        for sysname, run in ((a, ra), (b, rb)):
            steps = run["steps"]
            load[sysname].append({
                "repetition": k,
                "loadavg_1m": span([s["loadavg_1m_end"] for s in steps], "{:.2f}"),
                "machine_cores": span([s["machine_cores"] for s in steps], "{:.2f}"),
                "other_cores": span([s["other_cores"] for s in steps], "{:.2f}"),
            })
        held_a = {s["rate"]: s for s in ra["steps"] if s["held"]}
        held_b = {s["rate"]: s for s in rb["steps"] if s["held"]}
        for rate in sorted(set(held_a) & set(held_b)):
            sa, sb = held_a[rate], held_b[rate]
            by_rate.setdefault(rate, []).append({
                "repetition": k,
                "a_cpu": sa["cpu_ms_per_1000"], "b_cpu": sb["cpu_ms_per_1000"],
                "a_pipeline": sa["pipeline_ms_per_1000"], "b_pipeline": sb["pipeline_ms_per_1000"],
                "a_rss": sa["peak_rss_mb"], "b_rss": sb["peak_rss_mb"],
                "cpu": sa["cpu_ms_per_1000"] / sb["cpu_ms_per_1000"] if sb["cpu_ms_per_1000"] else None,
                "pipeline": (sa["pipeline_ms_per_1000"] / sb["pipeline_ms_per_1000"]
                             if sb["pipeline_ms_per_1000"] else None),
                "rss": sa["peak_rss_mb"] / sb["peak_rss_mb"] if sb["peak_rss_mb"] else None,
                "a_load": sa["loadavg_1m_end"], "b_load": sb["loadavg_1m_end"],
                "a_machine": sa["machine_cores"], "b_machine": sb["machine_cores"],
                "a_other": sa["other_cores"], "b_other": sb["other_cores"],
            })
    rates: list[dict[str, Any]] = []
    for rate, pairs in sorted(by_rate.items()):
        rates.append({
            "rate": rate, "repetitions": [p["repetition"] for p in pairs], "pairs": pairs,
            "cpu_ratio": median_or_none([p["cpu"] for p in pairs]),
            "pipeline_ratio": median_or_none([p["pipeline"] for p in pairs]),
            "step_rss_ratio": median_or_none([p["rss"] for p in pairs]),
        })
    enough = [r for r in rates if 2 * len(r["pairs"]) >= len(reps)]
    top = (enough or rates)[-1] if rates else None
    mine = {s: [r for r in runs if r["system"] == s and r["repetition"] in reps] for s in (a, b)}
    held = {s: float(statistics.median([r.get("held_rate", 0) for r in mine[s]])) for s in (a, b)}
    rss = {s: median_or_none([r.get("peak_rss_mb") for r in mine[s]]) for s in (a, b)}
    rss_a, rss_b = rss[a], rss[b]
    ratios: dict[str, float | None] = {
        "cpu": top["cpu_ratio"] if top else None,
        "pipeline": top["pipeline_ratio"] if top else None,
        "held": held[a] / held[b] if held[b] else None,
        "rss": rss_a / rss_b if rss_a and rss_b else None,
    }
    verdicts = []
    limit: float
    for label, key, op, limit in TARGETS:
        v = ratios[key]
        ok = v is not None and (v <= limit if op == "<=" else v >= limit)
        verdicts.append({"target": label, "key": key, "op": op, "limit": limit, "ratio": v,
                         "verdict": "PASS" if ok else "FAIL"})
    # a held rate at the top of the ladder is only a lower bound
    at_top = {s: any(r.get("held_rate") and r.get("held_rate") == r.get("ladder_top") for r in mine[s])
              for s in (a, b)}
    return {"a": a, "b": b, "repetitions": reps, "rates": rates, "top": top,
            "top_in_repetitions": len(top["pairs"]) if top else 0, "held_median": held,
            "held_at_ladder_top": at_top, "peak_rss_median": rss, "ratios": ratios, "targets": verdicts,
            "load": load, "nproc": os.cpu_count()}


def print_comparison(c: dict[str, Any] | None) -> None:
    print()
    if c is None:
        print("comparison: needs both `service` and `nodered-q1` in the same repetition")
        return
    a, b = c["a"], c["b"]
    f2 = "{:.2f}"
    print(f"## {a} against {b} at the same rate (repetitions {', '.join(map(str, c['repetitions']))}; "
          f"{c['nproc']} cores)")
    print()
    print("every rate both held in a repetition; a/b paired within each repetition, median over those:")
    print()
    print(f"| rate | repetitions | {a} CPU ms/1000 | {b} CPU ms/1000 | CPU ratio | {a} pipeline ms/1000 | "
          f"{b} pipeline ms/1000 | pipeline ratio | step peak RSS ratio | load avg 1 min ({a} / {b}) | "
          f"machine busy cores ({a} / {b}) | others' cores ({a} / {b}) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in c["rates"]:
        p = r["pairs"]
        print(f"| {r['rate']:,.0f}/s | {','.join(map(str, r['repetitions']))} | "
              f"{span([x['a_cpu'] for x in p], '{:.1f}')} | {span([x['b_cpu'] for x in p], '{:.1f}')} | "
              f"{fmt_ratio(r['cpu_ratio'])} | {span([x['a_pipeline'] for x in p], '{:.1f}')} | "
              f"{span([x['b_pipeline'] for x in p], '{:.1f}')} | {fmt_ratio(r['pipeline_ratio'])} | "
              f"{fmt_ratio(r['step_rss_ratio'])} | {span([x['a_load'] for x in p], f2)} / "
              f"{span([x['b_load'] for x in p], f2)} | {span([x['a_machine'] for x in p], f2)} / "
              f"{span([x['b_machine'] for x in p], f2)} | {span([x['a_other'] for x in p], f2)} / "
              f"{span([x['b_other'] for x in p], f2)} |")
    if not c["rates"]:
        print("| (no rate held by both in any repetition) |  |  |  |  |  |  |  |  |  |  |  |")
    print()
    top = c["top"]
    if top:
        print(f"highest rate held by both: {top['rate']:,.0f}/s (in {len(top['pairs'])} of "
              f"{len(c['repetitions'])} repetition(s))")
    held, rss = c["held_median"], c["peak_rss_median"]
    bound = " (a lower bound: the top of the ladder)" if c["held_at_ladder_top"][a] else ""
    print(f"highest rate held, median over repetitions: {a} {held[a]:,.0f}/s{bound}, {b} {held[b]:,.0f}/s"
          + (" (the top of the ladder: an upper bound of the ratio)" if c["held_at_ladder_top"][b] else ""))
    print(f"peak RSS over the ladder, median: {a} {fmt_num(rss[a])} MB, {b} {fmt_num(rss[b])} MB")
    for s in (a, b):
        print(f"machine load during {s}'s ladders (each repetition: load avg 1 min at step ends | machine "
              "busy cores | others' cores): " + "; ".join(
                  f"#{x['repetition']} {x['loadavg_1m']} | {x['machine_cores']} | {x['other_cores']}"
                  for x in c["load"][s]))
    print()
    print(f"targets, {a} / {b}:")
    for v in c["targets"]:
        why = "" if v["ratio"] is not None else (
            " (not measured: no rate held by both)" if v["key"] in ("cpu", "pipeline") else " (not measured)")
        print(f"  {v['verdict']}  {v['target']}: {fmt_ratio(v['ratio'])} (target {v['op']} {v['limit']:g}×){why}")


def fmt_ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}×"


def fmt_num(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def print_table(summary: dict[str, Any], runs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    names = {"paho": "bare paho QoS 1 subscriber (counts only)", "service": "`cbrain run` (QoS 1, rules on)",
             "nodered-q0": "Node-RED 4 flow, mqtt in QoS 0", "nodered-q1": "Node-RED 4 flow, mqtt in QoS 1"}
    print()
    print(f"ladder {args.step:,.0f}/s steps of {args.step_seconds:g} s up to {args.max_rate:,.0f}/s, "
          f"{args.repetitions} repetition(s), {args.devices} devices; held = nothing missing after a drain of "
          f"at most {args.drain_seconds:g} s, lag p90 < 1 s, the backlog not growing (least-squares slope over "
          f"the step's second half <= {100 * BACKLOG_SLOPE_FRAC:g} % of the rate per second, or a rise under "
          f"{BACKLOG_FLOOR:,} readings), publisher at >= 97 % of the asked rate")
    print()
    print("| system | highest rate held | lag p50 / p90 there | backlog slope there, % of the rate per s | "
          "CPU ms per 1,000 readings there: consumer | + Mosquitto | + influxd | = pipeline | "
          "consumer cores there | peak RSS (whole ladder) | publisher achieved / asked, its CPU (ms per 1,000) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for sysname, s in summary.items():
        lag = f"{span([x * 1000 for x in s['lag_p50_s'] if x is not None])} / " \
              f"{span([x * 1000 for x in s['lag_p90_s'] if x is not None])} ms"
        top = f" (top of ladder: {args.max_rate:,.0f})" if any(
            r.get("held_rate") and r.get("held_rate") == r.get("ladder_top")
            for r in runs if r["system"] == sysname) else ""
        pace = span([100 * p for p in s["pace"]], "{:.1f}") + " %"
        pubc = span(s["publisher_cores"], "{:.2f}") + " core"
        bound = f", {s['pub_bound_steps']} pub-bound step(s)" if s["pub_bound_steps"] else ""
        err = f" ERROR: {s['errors'][0][:80]}" if s["errors"] else ""
        print(f"| {names.get(sysname, sysname)} | {span(s['held_rates'])}/s{top}{err} | {lag} | "
              f"{span(s['backlog_slope_pct'], '{:+.1f}')} | {span(s['cpu_ms_per_1000'], '{:.0f}')} | "
              f"{span(s['mosquitto_ms_per_1000'], '{:.0f}')} | {span(s['influxd_ms_per_1000'], '{:.0f}')} | "
              f"{span(s['pipeline_ms_per_1000'], '{:.0f}')} | {span(s['consumer_cores'], '{:.2f}')} | "
              f"{span(s['peak_rss_mb'], '{:.0f}')} MB | {pace}, {pubc} "
              f"({span(s['publisher_ms_per_1000'], '{:.0f}')}){bound} |")
    print()
    print("every step (asked/s: sent/s pace, publisher cores | missing, drain | lag p50/p90 | backlog after 1 s, "
          "at the end, slope over the second half | CPU ms/1000 consumer + mosquitto + influxd = pipeline "
          "(publisher), consumer cores | RSS | mosquitto, influxd cores | whole machine busy, others', steal "
          "cores, load avg 1 min):")
    for r in runs:
        print(f"  {r['system']} #{r['repetition']}" + (f"  ERROR {r['error']}" if "error" in r else ""))
        for s in r["steps"]:
            print(f"    {s['rate']:>7,.0f}: {s['achieved_rate']:>9,.0f} ({100 * s['pace']:.1f} %), "
                  f"{s['publisher_cpu_cores']:.2f} | {s['missing']:,}, {s['drain_s']:.1f} s | "
                  f"{fmt_s(s['lag_p50_s'])}/{fmt_s(s['lag_p90_s'])} | {fmt_num(s['backlog_after_1s'])}, "
                  f"{fmt_num(s['backlog_end'])}, {fmt_slope(s)} | {s['cpu_ms_per_1000']:.0f} + "
                  f"{s['mosquitto_ms_per_1000']:.0f} + {s['influxd_ms_per_1000']:.0f} = "
                  f"{s['pipeline_ms_per_1000']:.0f} ({s['publisher_ms_per_1000']:.0f}), "
                  f"{s['consumer_cores']:.2f} | {s['peak_rss_mb']:.0f} MB | "
                  f"{s['mosquitto_cores']:.2f}, {s['influxd_cores']:.2f} | "
                  f"machine {s['machine_cores']:.2f}, others {s['other_cores']:.2f}, steal {s['steal_cores']:.2f}, "
                  f"load {s['loadavg_1m_end']:.2f}  {mark(s)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--step", type=float, default=2500.0, help="rate step, readings/s")
    ap.add_argument("--step-seconds", type=float, default=20.0)
    ap.add_argument("--max-rate", type=float, default=45000.0, help="top of the ladder, readings/s")
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--stop-after", type=int, default=2,
                    help="end a ladder after this many steps in a row not held (0: climb to the top)")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated subset of {','.join(SYSTEMS)}")
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--inflight", type=int, default=1000, help="publisher's unacknowledged QoS 1 window")
    ap.add_argument("--drain-seconds", type=float, default=15.0, help="bound on the wait after each step")
    ap.add_argument("--nodered-dir", default="/tmp/cb-nodered-cache", help="npm install of Node-RED (cached)")
    ap.add_argument("--profile-rate", type=float, default=0.0,
                    help="instead of the ladder: one step of the service at this rate under py-spy record")
    ap.add_argument("--profile-gil", action="store_true", help="py-spy --gil: only the GIL holder")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "vs_nodered.json"))
    ap.add_argument("--keep-tmp", action="store_true")
    args = ap.parse_args(argv)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    bad = [s for s in systems if s not in SYSTEMS]
    if bad:
        ap.error(f"unknown system(s) {', '.join(bad)}; choose from {', '.join(SYSTEMS)}")
    if (args.step <= 0 or args.max_rate < args.step or args.step_seconds <= 0 or args.repetitions < 1
            or args.stop_after < 0):
        ap.error("need --step > 0, --max-rate >= --step, --step-seconds > 0, --repetitions >= 1, --stop-after >= 0")
    if args.profile_rate:
        systems = ["service"]
        args.repetitions = 1

    from tests import servers as servers_mod

    def _terminated(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _terminated)
    red = ensure_nodered(Path(args.nodered_dir)) if any(s.startswith("nodered") for s in systems) else None
    ctx = mp.get_context("spawn")
    tmp = Path(tempfile.mkdtemp(prefix="cb-vs-nodered-"))
    log(f"workdir {tmp}")
    runs: list[dict[str, Any]] = []
    ok = False
    try:
        for rep in range(1, args.repetitions + 1):
            for sysname in systems:  # interleaved: one ladder of each system per repetition
                runs.append(run_system(sysname, rep, args, ctx, tmp, servers_mod, red, args.profile_rate))
        if args.profile_rate:
            prof = runs[0].get("profile", {})
            step = runs[0]["steps"][0] if runs[0]["steps"] else {}
            print(json.dumps({"step": step, "profile": prof}, indent=1))
            res: dict[str, Any] = {"runs": runs}
        else:
            summary = summarize(runs, systems)
            print_table(summary, runs, args)
            comparison = compare(runs) if {"service", "nodered-q1"} <= set(systems) else None
            print_comparison(comparison)
            res = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "args": vars(args), "summary": summary,
                   "comparison": comparison, "runs": runs, "nproc": os.cpu_count(),
                   "backlog_criterion": {"slope_fraction_of_rate_per_s": BACKLOG_SLOPE_FRAC,
                                         "min_rise_readings": BACKLOG_FLOOR, "window": "second half of the step",
                                         "min_samples": BACKLOG_MIN_SAMPLES}}
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2, default=str))
        log(f"wrote {out}")
        ok = not any("error" in r for r in runs)
        return 0 if ok else 1
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        if args.keep_tmp or not ok:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
