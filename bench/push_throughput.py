#!/usr/bin/env python3
"""HTTP push throughput: CTWing dataReports -> `cbrain run` (answered once durable) -> InfluxDB.

One run measures, on this machine, with real Mosquitto and influxd on loopback:

- a site file with one `ctwing` source (`profile: nb-smoke`) and --devices NB smoke detectors
  registered on it; `cbrain run --config` as a subprocess (own CPU and RSS, its store writer
  child included);
- --connections keep-alive HTTP/1.1 connections, spread over --clients client processes, each
  connection with one push outstanding at a time (as a platform pushes: the next push once the
  previous is answered). A push is `POST /ingest/ctwing/aep?token=...` with a dataReport
  (tests/sources_kit.ctwing_report): deviceIds round-robin, upPacketSN counting up per device,
  `timestamp` = a base + the push's number in ms (distinct per push, so every push is one point),
  Alarm_Status 7 except one push in --alarm-every (1, an alarm, on changing devices). The clients
  are asyncio protocols writing raw requests and reading the status line and Content-Length only;
  their own CPU is measured, and the summary says when they (rather than the service) set the pace;
- for --duration seconds, as fast as the connections allow, or at --rate pushes/s (pushes are
  scheduled at fixed times; a connection that is still waiting for its answer delays the next
  scheduled push, which is reported as being behind schedule);
- pushes/s answered 200 (all, and steady: the middle half of the window), latency send -> 200
  p50/p90/p99/max, status counts (200, 503, other, connection errors), the service's CPU (cores,
  by thread) and RSS, Mosquitto's, influxd's and the clients' CPU, and the machine's;
- at the end, InfluxDB must hold exactly one point for every push answered 200 (`SELECT
  count(battery_pct) FROM smoke_detector`, then every point's timestamp, i.e. its push's number):
  a push answered 200 that is missing, or a point stored twice (the store's
  `cb_readings_stored_total` above the points InfluxDB holds), prints FAIL and exits 1.

With --rate, the summary also says whether the service held the rate: steady 200s at least 97 %
of it, nothing answered otherwise, and the pushes never more than 1 s behind their schedule. It
always says what set the pace: a client process using a whole core, the machine's CPU, the
service's busiest thread, or connections / latency (with one push outstanding per connection, C
connections cannot take more than C / mean latency pushes a second, whatever the CPU). PASS (exit
0) needs InfluxDB exact, and the rate held (--rate) or the --target (default 2,000/s, steady) reached
(full speed).

Run: .venv/bin/python bench/push_throughput.py [--duration 30] [--devices 1000] [--connections 32]
     [--clients 1] [--rate 2000] [--target 2000] [--out bench/results/push.json] [--profile 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from array import array
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness.figures import pctl  # noqa: E402
from bench.ingest_throughput import (  # noqa: E402
    ProcessTree,
    analyse_profile,
    cores_between,
    finish,
    http_get,
    log,
    machine_times,
    parse_metrics,
    proc_cpu,
    py_spy_dump,
    start_profile,
    tail,
    thread_names,
)

COMMUNITY = "bench"
DATABASE = "bench"
SOURCE_ID = "aep"
TOKEN = "bench-push-token-0042"
MEASUREMENT = "smoke_detector"
FIELD = "battery_pct"
PUSH_PATH = f"/ingest/ctwing/{SOURCE_ID}?token={TOKEN}"
HELD_SHARE = 0.97  # --rate is held when the steady 200s reach this share of it...
HELD_BEHIND_S = 1.0  # ...and no push was sent more than this late against its schedule
CLIENT_BOUND_CORES = 0.85  # a one-threaded client process above this was (close to) the limit
BUSY_THREAD_CORES = 0.85  # so was a service thread above this (the event loop, in practice)
ANSWER_TIMEOUT_S = 30.0  # a push unanswered this long counts as an error (the service says 503 after 5 s)
DRAIN_TIMEOUT_S = 120.0
TS_BACK_MS = 3_600_000  # push n has timestamp (start - 1 h) + n ms: all in the past, all distinct


def address_of(k: int) -> str:
    """AEP's deviceId of device k (AEP's ids are its productId followed by the IMEI)."""
    return f"15083367{868591050000000 + k}"


def is_alarm(n: int, every: int) -> bool:
    """Whether push n carries an alarm: about one in `every`, on changing devices (a hash of n, so that
    the alarms do not fall on the same few devices whatever `every` and the number of devices are)."""
    return every > 0 and ((n * 2654435761) & 0xFFFFFFFF) % every == 0


# ---- the client processes ------------------------------------------------------------------------


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with at most one request outstanding."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buf[:end]).lower() + b"\r\n"
        at = head.find(b"\r\ncontent-length:")
        length = int(head[at + 17:head.index(b"\r\n", at + 2)]) if at >= 0 else 0
        if len(buf) < end + 4 + length:
            return
        status = int(buf[9:12])
        self.close_after = b"\r\nconnection: close" in head
        del buf[:end + 4 + length]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection closed ({exc})"))


def client_main(index: int, n_clients: int, port: int, connections: int, n_devices: int, duration_s: float,
                rate: float, max_pushes: int, ts_base_ms: int, alarm_every: int, sent_v: Any, ok_v: Any,
                ready: Any, go: Any, start_at: Any, stop: Any, results: Any) -> None:
    """Push from `connections` connections; this client's pushes are numbers index, index + n_clients, ...

    Reports every answered push (number, status, send time, answer time) through `results`.
    """
    report: dict[str, Any] = {"index": index, "connections": connections}
    try:
        report.update(asyncio.run(_client(index, n_clients, port, connections, n_devices, duration_s, rate,
                                          max_pushes, ts_base_ms, alarm_every, sent_v, ok_v, ready, go,
                                          start_at, stop)))
    except BaseException as exc:  # report, then let the parent decide
        report["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        ready.set()
    results.put(report)


async def _client(index: int, n_clients: int, port: int, connections: int, n_devices: int, duration_s: float,
                  rate: float, max_pushes: int, ts_base_ms: int, alarm_every: int, sent_v: Any, ok_v: Any,
                  ready: Any, go: Any, start_at: Any, stop: Any) -> dict[str, Any]:
    from tests.sources_kit import ctwing_report

    loop = asyncio.get_running_loop()
    head = (f"POST {PUSH_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n\r\n").encode()
    addresses = [address_of(k) for k in range(n_devices)]

    async def connect() -> _Conn:
        _, proto = await loop.create_connection(_Conn, "127.0.0.1", port)
        return proto

    conns = [await connect() for _ in range(connections)]
    ready.set()
    while not go.is_set():
        await asyncio.sleep(0.02)
        if stop.is_set():
            return {"sent": 0}
    t0 = start_at.value
    end = t0 + duration_s
    await asyncio.sleep(max(0.0, t0 - time.monotonic()))
    # One client's share of the pushes: numbers index, index + n_clients, ... up to max_pushes.
    own_max = (max_pushes - index + n_clients - 1) // n_clients
    per_s = rate / n_clients if rate > 0 else 0.0
    number = array("q")  # push number of every answered push
    status = array("H")  # its HTTP status (0 = connection error or no answer)
    t_send = array("d")  # monotonic send time
    t_answer = array("d")  # monotonic answer time
    behind = array("d")  # seconds the send was late against its schedule (--rate)
    state = {"next": 0, "sent": 0, "ok": 0, "reconnects": 0, "stop": False}
    statuses: Counter[int] = Counter()

    def record(n: int, code: int, sent: float, answered: float) -> None:
        number.append(n)
        status.append(code)
        t_send.append(sent)
        t_answer.append(answered)
        statuses[code] += 1
        if code == 200:
            state["ok"] += 1

    async def run(slot: int) -> None:
        conn = conns[slot]
        while not state["stop"]:
            j = state["next"]  # claimed before any wait: every push number is sent once
            state["next"] = j + 1
            if j >= own_max:
                return
            now = time.monotonic()
            if now >= end:  # the window is over, also for pushes still due (they count as not sent)
                return
            if per_s:
                due = t0 + j / per_s
                if due >= end:
                    return
                if due > now:
                    await asyncio.sleep(due - now)
                    now = time.monotonic()
                behind.append(now - due)
            n = index + j * n_clients
            device = n % n_devices
            body = ctwing_report(addresses[device], 1 if is_alarm(n, alarm_every) else 7, sn=n // n_devices,
                                 ts_ms=ts_base_ms + n, battery=80)
            if conn.closed or conn.close_after:
                state["reconnects"] += 1
                try:
                    conn = conns[slot] = await connect()
                except OSError:
                    record(n, 0, time.monotonic(), time.monotonic())
                    await asyncio.sleep(0.1)
                    continue
            conn.waiter = waiter = loop.create_future()
            sent = time.monotonic()
            assert conn.transport is not None
            conn.transport.write(head % len(body) + body)
            state["sent"] += 1
            try:
                code = await asyncio.wait_for(waiter, ANSWER_TIMEOUT_S)
            except (ConnectionError, TimeoutError):
                code = 0
                conn.closed = True
                if conn.transport is not None:
                    conn.transport.abort()
            conn.waiter = None
            record(n, code, sent, time.monotonic())

    async def progress() -> None:
        while True:
            sent_v.value, ok_v.value = state["sent"], state["ok"]
            state["stop"] = stop.is_set()
            await asyncio.sleep(0.2)

    ticker = asyncio.create_task(progress())
    await asyncio.gather(*(run(k) for k in range(connections)))
    ticker.cancel()
    t_done = time.monotonic()
    sent_v.value, ok_v.value = state["sent"], state["ok"]
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    planned = min(own_max, math.ceil(duration_s * per_s)) if per_s else None
    return {"sent": state["sent"], "ok": state["ok"], "planned": planned, "reconnects": state["reconnects"],
            "t0": t0, "t_done": t_done,
            "statuses": dict(statuses), "number": number, "status": status, "t_send": t_send,
            "t_answer": t_answer, "behind": behind, "exhausted": state["next"] > own_max}


class Clients:
    """The client processes, started together and told when to begin."""

    def __init__(self, ctx: Any, args: argparse.Namespace, port: int, ts_base_ms: int) -> None:
        self.results = ctx.Queue()
        self.go = ctx.Event()
        self.stop = ctx.Event()
        self.start_at = ctx.Value("d", 0.0, lock=False)
        self.sent = [ctx.Value("q", 0, lock=False) for _ in range(args.clients)]
        self.ok = [ctx.Value("q", 0, lock=False) for _ in range(args.clients)]
        self.readies = [ctx.Event() for _ in range(args.clients)]
        self.procs = []
        for k in range(args.clients):
            conns = args.connections // args.clients + (1 if k < args.connections % args.clients else 0)
            p = ctx.Process(target=client_main, name=f"bench-push-client-{k}", daemon=True,
                            args=(k, args.clients, port, conns, args.devices, args.duration, args.rate,
                                  args.max_pushes, ts_base_ms, args.alarm_every, self.sent[k], self.ok[k],
                                  self.readies[k], self.go, self.start_at, self.stop, self.results))
            self.procs.append(p)

    def start(self, timeout: float = 60.0) -> None:
        for p in self.procs:
            p.start()
        deadline = time.monotonic() + timeout
        for k, ev in enumerate(self.readies):
            while not ev.wait(0.2):
                if not self.procs[k].is_alive():
                    raise RuntimeError(f"client {k} died during start (exit {self.procs[k].exitcode})")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"client {k} not ready after {timeout:.0f} s")

    def begin(self, at: float) -> None:
        self.start_at.value = at
        self.go.set()

    def counts(self) -> tuple[int, int]:
        return sum(v.value for v in self.sent), sum(v.value for v in self.ok)

    def collect(self, timeout: float) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(out) < len(self.procs) and time.monotonic() < deadline:
            try:
                out.append(self.results.get(timeout=0.5))
            except Exception:
                if not any(p.is_alive() for p in self.procs) and self.results.empty():
                    break
        for p in self.procs:
            p.join(5)
        errors = [r["error"] for r in out if "error" in r]
        if errors:
            raise RuntimeError("client failed:\n" + "\n".join(errors))
        if len(out) < len(self.procs):
            raise RuntimeError(f"only {len(out)} of {len(self.procs)} clients reported")
        return sorted(out, key=lambda r: r["index"])

    def terminate(self) -> None:
        self.stop.set()
        self.go.set()
        for p in self.procs:
            if p.is_alive():
                p.join(3)
            if p.is_alive():
                p.terminate()
                p.join(3)
            if p.is_alive():
                p.kill()
                p.join(3)


# ---- the service ---------------------------------------------------------------------------------


def write_site(path: Path, mqtt_url: str, influx_url: str, http_port: int, state_dir: Path, n_devices: int,
               ingest: dict[str, Any]) -> None:
    """One community with one building, one CTWing source and n_devices NB smoke detectors on it."""
    import yaml

    raw: dict[str, Any] = {
        "mqtt": {"url": mqtt_url, "prefix": "cb", "client_id": "bench-push"},
        "influx": {"url": influx_url, "database": DATABASE},
        "http": {"host": "127.0.0.1", "port": http_port},
        "state_dir": str(state_dir),
        "communities": [{"id": COMMUNITY, "name": "Bench", "grids": [{"id": "g1", "name": "G1"}],
                         "buildings": [{"id": "b1", "name": "B1", "grid": "g1"}]}],
        "sources": [{"id": SOURCE_ID, "type": "ctwing", "token": TOKEN, "profile": "nb-smoke"}],
        "devices": [{"id": f"sd-nb-{k:05d}", "type": "smoke_detector", "community": COMMUNITY, "building": "b1",
                     "source": SOURCE_ID, "address": address_of(k)} for k in range(n_devices)],
    }
    if ingest:
        raw["ingest"] = ingest
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")


def service_env() -> dict[str, str]:
    """The service's environment: ours without CB_ overrides, running this checkout's code (the venv's
    editable install may point at another checkout); whatever PYTHONPATH held comes after it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CB_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return env


def http_parser() -> str:
    """What uvicorn parses requests with in the service: httptools when it can import it, else h11."""
    r = subprocess.run([sys.executable, "-c", "import httptools"], env=service_env(), capture_output=True)
    return "httptools" if r.returncode == 0 else "h11"


def start_service(tmp: Path, cfg: Path, base: str, cleanup: list[Any]) -> tuple[subprocess.Popen[bytes], Path]:
    cbrain = Path(sys.executable).parent / "cbrain"
    if not cbrain.exists():
        cbrain = REPO / ".venv" / "bin" / "cbrain"
    argv = [str(cbrain), "run", "--config", str(cfg)]
    setpriv = shutil.which("setpriv")
    if setpriv:  # the service dies with us even if we are SIGKILLed (setpriv execs: same pid)
        argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
    env = service_env()
    log_path = tmp / "service.log"
    log(f"service: {' '.join(argv)} (log: {log_path})")
    with log_path.open("wb") as out:
        svc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                               cwd=tmp, env=env, start_new_session=True)

    def _stop() -> None:
        if svc.poll() is None:
            svc.send_signal(signal.SIGTERM)
            try:
                svc.wait(20)
            except subprocess.TimeoutExpired:
                svc.kill()
                svc.wait()

    cleanup.append(_stop)
    deadline = time.monotonic() + 60
    while True:
        if svc.poll() is not None:
            raise RuntimeError(f"service exited with {svc.returncode} during start\n{tail(log_path)}")
        try:
            code, _ = http_get(f"{base}/health", 1.0)
            if code == 200:
                return svc, log_path
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"service /health not 200 after 60 s\n{tail(log_path)}")
        time.sleep(0.2)


def influx_points(influx: Any) -> tuple[int | None, list[int], str | None]:
    """InfluxDB's count of the pushes' points, and every point's timestamp (epoch ms)."""
    try:
        res = influx.query(f"SELECT count({FIELD}) FROM {MEASUREMENT}", db=DATABASE, epoch=None)
        series = res["results"][0].get("series", [])
        count = int(series[0]["values"][0][1]) if series else 0
        res = influx.query(f"SELECT {FIELD} FROM {MEASUREMENT}", db=DATABASE, epoch="ms")
        times = [int(v[0]) for s in res["results"][0].get("series", []) for v in s["values"]]
        return count, times, None
    except Exception as exc:
        return None, [], f"{type(exc).__name__}: {exc}"


def ingest_settings(pairs: list[str]) -> dict[str, Any]:
    """--ingest KEY=VALUE pairs as the site file's `ingest:` settings (values read as YAML)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--ingest wants KEY=VALUE, not {pair!r}")
        out[key] = yaml.safe_load(value)
    return out


# ---- figures -------------------------------------------------------------------------------------


def stats(values: list[float], scale: float = 1000.0) -> dict[str, Any]:
    """n, p50, p90, p99, max, mean (ms by default)."""
    if not values:
        return {"n": 0}
    s = sorted(values)
    return {"n": len(s), **{f"p{q}": round(scale * (pctl(s, q) or 0.0), 1) for q in (50, 90, 99)},
            "max": round(scale * s[-1], 1), "mean": round(scale * sum(s) / len(s), 1)}


def run(args: argparse.Namespace, ctx: Any, tmp: Path, cleanup: list[Any]) -> dict[str, Any]:
    import psutil

    from tests import servers as servers_mod  # the repo root is on sys.path (top of file)

    log("starting influxd and Mosquitto")
    influx = servers_mod.InfluxD(tmp / "influxd")
    cleanup.append(influx.stop)
    influx.start()
    broker = servers_mod.Mosquitto(tmp / "mosquitto")
    cleanup.append(broker.stop)
    broker.start()
    http_port = servers_mod.free_port()
    cfg = tmp / "site.yaml"
    write_site(cfg, broker.url, influx.url, http_port, tmp / "state", args.devices, ingest_settings(args.ingest))
    base = f"http://127.0.0.1:{http_port}"
    svc, log_path = start_service(tmp, cfg, base, cleanup)
    sproc = ProcessTree(psutil.Process(svc.pid))  # with its store writer's process
    log(f"service: healthy (pid {svc.pid}, http {base}, {args.devices} devices on source {SOURCE_ID!r})")

    ts_base_ms = int(time.time() * 1000) - TS_BACK_MS
    clients = Clients(ctx, args, http_port, ts_base_ms)
    cleanup.append(clients.terminate)
    clients.start()
    mode = f"at {args.rate:,.0f}/s" if args.rate else "as fast as answered"
    log(f"{args.clients} client process(es), {args.connections} connections ready; pushing {mode} "
        f"for {args.duration:g} s")

    watched = {"mosquitto": psutil.Process(broker.pid), "influxd": psutil.Process(influx.pid),
               "bench": psutil.Process()}
    watched.update({f"client{k}": psutil.Process(p.pid) for k, p in enumerate(clients.procs)})
    samples: list[dict[str, Any]] = []

    def sample() -> dict[str, Any]:
        now = time.monotonic()
        m: dict[str, float] = {}
        try:
            code, body = http_get(f"{base}/metrics", 5.0)
            if code == 200:
                m = parse_metrics(body.decode())
        except OSError as exc:
            log(f"/metrics failed: {exc}")
        sent, ok = clients.counts()
        s: dict[str, Any] = {
            "t": now, "sent": sent, "ok": ok,
            "stored": int(m.get("cb_readings_stored_total", samples[-1]["stored"] if samples else 0)),
            "received": int(m.get("cb_messages_received_total", 0)),
            "rejected": int(m.get("cb_readings_rejected_total", 0)),
            "duplicates": int(m.get("cb_readings_duplicates_total", 0)),
            "commits": int(m.get("cb_spool_commits_total", 0)),
            "commit_s": float(m.get("cb_spool_commit_seconds_sum", 0.0)),
            "cpu": {"service": proc_cpu(sproc), **{k: proc_cpu(p) for k, p in watched.items()}, **machine_times()},
        }
        try:
            s["rss_mb"] = sproc.memory_info().rss / 2**20
        except Exception:
            s["rss_mb"] = None
        try:
            s["threads"] = {t.id: t.user_time + t.system_time for t in sproc.threads()}
            s["writer_cpu"] = sum(proc_cpu(c) or 0.0 for c in sproc.proc.children(recursive=True))
        except Exception:
            s["threads"], s["writer_cpu"] = {}, None
        samples.append(s)
        return s

    load_before = os.getloadavg()
    sample()
    t0 = time.monotonic() + 0.5
    clients.begin(t0)
    end = t0 + args.duration
    prof: subprocess.Popen[bytes] | None = None
    prof_at = t0 + max(1.0, (args.duration - (args.profile or 0)) / 2)
    dumped = False
    next_poll = t0 + 1.0
    last_line = t0
    while time.monotonic() < end + 1.0:
        time.sleep(max(0.0, next_poll - time.monotonic()))
        next_poll += 1.0
        s = sample()
        if svc.poll() is not None:
            raise RuntimeError(f"service exited with {svc.returncode} during the run\n{tail(log_path, 60)}")
        if args.profile and prof is None and s["t"] >= prof_at:
            prof = start_profile(svc.pid, args.profile, tmp / "pyspy.raw", args.profile_gil)
        if not dumped and s["t"] >= t0 + args.duration / 2:
            py_spy_dump(svc.pid, tmp / "pyspy-dump.txt")  # thread names; skipped without py-spy
            dumped = True
        if s["t"] - last_line >= 5 or s["t"] > end:
            last_line = s["t"]
            prev = samples[-6] if len(samples) > 6 else samples[0]
            dt = s["t"] - prev["t"]
            svc_cores = ((s["cpu"]["service"] or 0) - (prev["cpu"]["service"] or 0)) / dt
            log(f"  t={s['t'] - t0:5.1f}s sent={s['sent']:>8,} 200={s['ok']:>8,} ({(s['ok'] - prev['ok']) / dt:,.0f}/s)"
                f" stored={s['stored']:>8,} service {svc_cores:.2f} cores, {s['rss_mb'] or 0:.0f} MB")
        if all(not p.is_alive() for p in clients.procs):
            break
    reports = clients.collect(timeout=ANSWER_TIMEOUT_S + 30)
    log("pushing done; waiting for the service to store everything it took")

    # Wait until the store has taken at least every push answered 200 and nothing more comes.
    n_ok = sum(r["ok"] for r in reports)
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    stable_since = time.monotonic()
    last_stored = -1
    while time.monotonic() < deadline:
        s = sample()
        if s["stored"] != last_stored:
            last_stored, stable_since = s["stored"], s["t"]
        if s["stored"] >= n_ok and s["t"] - stable_since >= 2.0:
            break
        if svc.poll() is not None:
            raise RuntimeError(f"service exited with {svc.returncode} while draining\n{tail(log_path, 60)}")
        time.sleep(0.25)
    final = samples[-1]
    if prof is not None:
        try:
            prof.wait(args.profile + 30)
        except subprocess.TimeoutExpired:
            prof.kill()
            prof.wait()

    # ---- what InfluxDB holds, push by push
    influx_count, times, influx_error = influx_points(influx)
    stored_numbers = Counter(t - ts_base_ms for t in times)
    numbers_200 = {n for r in reports for n, c in zip(r["number"], r["status"], strict=True) if c == 200}
    numbers_sent = {n for r in reports for n in r["number"]}
    missing = sorted(numbers_200 - stored_numbers.keys())
    twice_rows = sum(c - 1 for c in stored_numbers.values() if c > 1)
    not_sent = sorted(stored_numbers.keys() - numbers_sent)
    stored_not_200 = len((numbers_sent - numbers_200) & stored_numbers.keys())
    stored_metric = final["stored"]
    # The store counts what it wrote; InfluxDB keeps one point per series and time. More writes than
    # points, beyond the pushes missing from InfluxDB, were points written twice.
    written_twice = max(0, stored_metric - (influx_count or 0) - len(missing))
    count_ok = (influx_error is None and not missing and not twice_rows and not not_sent and not written_twice
                and influx_count == len(stored_numbers))

    # ---- rates and latency
    span = args.duration
    a, b = t0 + 0.25 * span, t0 + 0.75 * span
    answered = [(ta, ta - ts, c) for r in reports for ts, ta, c in zip(r["t_send"], r["t_answer"], r["status"],
                                                                       strict=True)]
    ok_lat = [lat for _, lat, c in answered if c == 200]
    ok_lat_mid = [lat for ta, lat, c in answered if c == 200 and a <= ta < b]
    steady = sum(1 for ta, _, c in answered if c == 200 and a <= ta < b) / (b - a)
    t_last = max((ta for ta, _, _ in answered), default=t0)
    overall = n_ok / max(1e-9, max(t_last, t0 + 1e-3) - t0)
    statuses: Counter[str] = Counter()
    for r in reports:
        for code, n in r["statuses"].items():
            statuses["200" if code == 200 else "503" if code == 503 else "error" if code == 0 else f"{code}"] += n
    behind = [x for r in reports for x in r["behind"]]
    behind_stats = stats(behind) if behind else None

    # ---- CPU and memory over the steady window
    sa = min(samples, key=lambda s: abs(s["t"] - a))
    sb = min(samples, key=lambda s: abs(s["t"] - b))
    dt = sb["t"] - sa["t"]
    cores = cores_between(sa["cpu"], sb["cpu"], dt)
    writer_cores = (round((sb["writer_cpu"] - sa["writer_cpu"]) / dt, 2)
                    if dt > 0 and sa.get("writer_cpu") is not None and sb.get("writer_cpu") is not None else None)
    names = thread_names(tmp / "pyspy-dump.txt")
    thread_cores = {f"{tid} {names.get(tid, '?')}": round((sb["threads"][tid] - sa["threads"][tid]) / dt, 2)
                    for tid in sb.get("threads", {}) if tid in sa.get("threads", {}) and dt > 0}
    pushes_mid = sb["ok"] - sa["ok"]
    cpu_us_per_push = (round(1e6 * cores.get("service", 0.0) * dt / pushes_mid, 1) if pushes_mid else None)
    client_cores = {k: v for k, v in cores.items() if k.startswith("client")}
    commits = sb["commits"] - sa["commits"]
    rss = [s["rss_mb"] for s in samples if s.get("rss_mb") is not None]
    log_text = log_path.read_text(errors="replace") if log_path.exists() else ""
    problems = [ln for ln in log_text.splitlines() if " WARNING " in ln or " ERROR " in ln or "Traceback" in ln]

    # ---- who set the pace
    mean_lat = (sum(ok_lat_mid) / len(ok_lat_mid)) if ok_lat_mid else None
    little = args.connections / mean_lat if mean_lat else None  # what C connections allow at that latency
    nproc = os.cpu_count() or 1
    if max(client_cores.values(), default=0.0) >= CLIENT_BOUND_CORES:
        limit = "client (a client process used a whole core: add --clients)"
    elif args.rate and steady >= HELD_SHARE * args.rate:
        limit = "the offered rate (the service kept up)"
    elif max(thread_cores.values(), default=0.0) >= BUSY_THREAD_CORES:
        name, busy = max(thread_cores.items(), key=lambda kv: kv[1])
        limit = f"the service's busiest thread ({name}: {busy:.2f} cores; its event loop runs the HTTP requests)"
    elif cores.get("machine", 0.0) >= 0.9 * nproc:
        limit = (f"the machine's CPU: all cores busy, {cores.get('other', 0.0):.2f} of them other work on the "
                 f"machine (and {cores.get('steal', 0.0):.2f} stolen)")
    else:
        limit = (f"connections x latency: {args.connections} connections with one push each, "
                 f"{1000 * (mean_lat or 0):.1f} ms per push -> at most {little or 0:,.0f}/s; "
                 "neither the service nor the client used a whole core")
    reached = None if args.rate or not args.target else steady >= args.target
    held = None
    if args.rate:
        worst_behind = max(behind, default=0.0)
        held = (steady >= HELD_SHARE * args.rate and statuses["200"] == sum(statuses.values())
                and worst_behind <= HELD_BEHIND_S)

    result: dict[str, Any] = {
        "mode": "rate" if args.rate else "full speed", "offered_rate": args.rate or None,
        "http_parser": http_parser(),
        "sent": sum(r["sent"] for r in reports), "answered_200": n_ok, "statuses": dict(statuses),
        "scheduled_not_sent": (sum(r["planned"] for r in reports) - sum(r["sent"] for r in reports)
                               if args.rate else None),
        "reconnects": sum(r["reconnects"] for r in reports),
        "pushes_exhausted": any(r["exhausted"] for r in reports),
        "rate_200_overall": round(overall, 1), "rate_200_steady": round(steady, 1),
        "steady_window_s": [round(0.25 * span, 1), round(0.75 * span, 1)],
        "latency_ms_200": stats(ok_lat), "latency_ms_200_steady": stats(ok_lat_mid),
        "behind_schedule_ms": behind_stats,
        "held": held, "target": args.target or None, "target_reached": reached,
        "limit": limit, "little_rate": None if little is None else round(little, 1),
        "influx_count": influx_count, "influx_distinct_pushes": len(stored_numbers), "influx_error": influx_error,
        "missing_200": len(missing), "missing_200_first": missing[:20], "rows_twice": twice_rows,
        "stored_not_sent": len(not_sent), "stored_not_answered_200": stored_not_200,
        "stored_metric": stored_metric, "written_twice": written_twice,
        "received_metric": final["received"], "rejected_metric": final["rejected"],
        "duplicates_metric": final["duplicates"], "count_ok": count_ok,
        "steady_cpu_cores": cores, "steady_writer_cores": writer_cores,
        "steady_service_thread_cores": thread_cores, "service_cpu_us_per_push_steady": cpu_us_per_push,
        "steady_commits_per_s": round(commits / dt, 1) if dt > 0 else None,
        "steady_pushes_per_commit": round(pushes_mid / commits, 1) if commits else None,
        "steady_mean_commit_ms": round(1000 * (sb["commit_s"] - sa["commit_s"]) / commits, 2) if commits else None,
        "rss_mb": {"first": round(rss[0], 1), "max": round(max(rss), 1), "last": round(rss[-1], 1)} if rss else None,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "log_problems": problems[-20:], "log_path": str(log_path),
        "samples": [{"t": round(s["t"] - t0, 2), **{k: s[k] for k in ("sent", "ok", "stored", "received", "commits")},
                     "rss_mb": None if s.get("rss_mb") is None else round(s["rss_mb"], 1)} for s in samples],
    }
    if args.profile:
        result["profile"] = analyse_profile(tmp / "pyspy.raw", top=25)
        result["profile_raw"] = str(tmp / "pyspy.raw")
    svc.send_signal(signal.SIGTERM)
    try:
        result["service_exit"] = svc.wait(30)
    except subprocess.TimeoutExpired:
        svc.kill()
        svc.wait()
        result["service_exit"] = "killed after 30 s"
    if not count_ok:
        result["service_log_tail"] = tail(log_path, 60)
    return result


# ---- report -------------------------------------------------------------------------------------


def _lat(s: dict[str, Any] | None) -> str:
    if not s or not s.get("n"):
        return "-"
    return f"{s['p50']:.1f} / {s['p90']:.1f} / {s['p99']:.1f} / {s['max']:.1f} ms (n={s['n']:,})"


def print_summary(res: dict[str, Any]) -> None:
    r, a = res["result"], res["args"]
    cores = r["steady_cpu_cores"]
    threads = sorted(r["steady_service_thread_cores"].items(), key=lambda kv: -kv[1])[:4]
    rows = [
        ("machine", f"{res['machine']['nproc']} cores, {res['machine']['python']}, {res['machine']['platform']}"),
        ("ingest settings", ", ".join(a["ingest"]) or "defaults"),
        ("pushes", f"CTWing dataReport to {a['devices']} devices, {a['connections']} keep-alive connections in "
                   f"{a['clients']} client process(es), {r['mode']}"
                   + (f" {a['rate']:,.0f}/s" if a["rate"] else "") + f", {a['duration']:g} s; "
                   f"uvicorn parses with {r['http_parser']}"),
        ("answered 200 steady (middle)", f"{r['rate_200_steady']:>10,.0f} pushes/s  (t={r['steady_window_s'][0]}"
                                         f"..{r['steady_window_s'][1]} s)"),
        ("answered 200 overall", f"{r['rate_200_overall']:>10,.0f} pushes/s  ({r['answered_200']:,} of "
                                 f"{r['sent']:,} sent)"),
        ("statuses", ", ".join(f"{k}: {v:,}" for k, v in sorted(r["statuses"].items())) +
         f"; reconnects {r['reconnects']}"),
        ("latency send->200 p50/p90/p99/max", _lat(r["latency_ms_200"])),
        ("  in the steady window", _lat(r["latency_ms_200_steady"])),
    ]
    if a["rate"]:
        bs = r["behind_schedule_ms"] or {}
        rows.append(("behind schedule p50/p99/max", f"{bs.get('p50', 0):.1f} / {bs.get('p99', 0):.1f} / "
                                                    f"{bs.get('max', 0):.1f} ms; {r['scheduled_not_sent']:,} "
                                                    "scheduled pushes never sent (the window ended first)"))
        rows.append(("rate held", f"{'yes' if r['held'] else 'NO'} ({a['rate']:,.0f}/s asked; held = steady 200s "
                                  f">= {HELD_SHARE:.0%} of it, no other answer, never > {HELD_BEHIND_S:g} s behind)"))
    elif r["target_reached"] is not None:
        rows.append(("target", f"{r['target']:,.0f}/s steady -> {'reached' if r['target_reached'] else 'NOT reached'}"))
    lat = r["latency_ms_200_steady"]
    rows += [
        ("limit", r["limit"]),
        ("connections / latency", "-" if not r["little_rate"] else
         f"{a['connections']} / {lat['mean']:.1f} ms mean = {r['little_rate']:,.0f} pushes/s at most (one push "
         "outstanding per connection)"),
        ("service CPU (steady)", f"{cores.get('service', 0):.2f} cores with its writer ({r['steady_writer_cores']} "
                                 f"of them the writer), {r['service_cpu_us_per_push_steady']} us per push"),
        ("service threads (steady)", ", ".join(f"{k} {v:.2f}" for k, v in threads)),
        ("commits (steady)", f"{r['steady_commits_per_s']}/s, {r['steady_pushes_per_commit']} pushes each, "
                             f"{r['steady_mean_commit_ms']} ms each"),
        ("service RSS first/max/last", "-" if not r["rss_mb"] else
         f"{r['rss_mb']['first']:.0f} / {r['rss_mb']['max']:.0f} / {r['rss_mb']['last']:.0f} MB (with its writer)"),
        ("cores used (steady)", ", ".join(f"{k} {v:.2f}" for k, v in cores.items())),
        ("InfluxDB", f"{r['influx_count']} points ({r['influx_distinct_pushes']:,} distinct pushes); "
                     f"answered 200 {r['answered_200']:,}, of them missing {r['missing_200']}; stored but not "
                     f"answered 200 {r['stored_not_answered_200']}; "
                     f"stored twice {r['rows_twice'] + r['written_twice']} "
                     f"(store metric {r['stored_metric']:,}) -> {'OK' if r['count_ok'] else 'FAIL'}"),
        ("service metrics", f"received {r['received_metric']:,}, rejected {r['rejected_metric']}, "
                            f"duplicates {r['duplicates_metric']}"),
        ("overall", res["verdict"]),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    print("=" * 100)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print("=" * 100)
    if r.get("profile"):
        p = r["profile"]
        what = "GIL holder only" if a["profile_gil"] else "active threads"
        print(f"\npy-spy profile of the service ({p.get('samples', 0)} samples, {what}):")
        for title, key in (("threads", "threads_pct"), ("thread / asyncio step", "stages_pct"),
                           ("package of the running code", "packages_pct"),
                           ("self time (leaf function)", "self_pct"), ("inclusive", "inclusive_pct")):
            print(f"  {title}:")
            for name, pct in p.get(key, []):
                print(f"    {pct:5.1f}%  {name}")
    noise = cores.get("steal", 0.0) + cores.get("other", 0.0)
    if noise >= 0.2:
        print(f"\nNOTE: {noise:.2f} cores went to the hypervisor (steal) or to other processes during the steady "
              "window: rates on this machine move with it.")
    if r["log_problems"]:
        print(f"\nservice log warnings/errors ({len(r['log_problems'])} shown, log {r['log_path']}):")
        for ln in r["log_problems"]:
            print("  " + ln)
    if not r["count_ok"]:
        print("\nFAIL: InfluxDB does not hold exactly one point per push answered 200 "
              f"(missing {r['missing_200']}, first {r['missing_200_first'][:5]}; rows twice {r['rows_twice']}; "
              f"written twice {r['written_twice']}; points of pushes never sent {r['stored_not_sent']}; "
              f"query error {r['influx_error']})")
        print(f"--- service log tail ({r['log_path']}) ---\n{r.get('service_log_tail', '')}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of pushing")
    ap.add_argument("--devices", type=int, default=1000, help="NB smoke detectors registered on the source")
    ap.add_argument("--connections", type=int, default=32, help="keep-alive connections, one push outstanding each")
    ap.add_argument("--clients", type=int, default=1, help="client processes the connections are spread over")
    ap.add_argument("--rate", type=float, default=0.0, help="pushes/s to offer (0: as fast as answered)")
    ap.add_argument("--target", type=float, default=2000.0,
                    help="pushes/s answered 200 (steady) a full-speed run must reach to PASS (0: none)")
    ap.add_argument("--alarm-every", type=int, default=10_000,
                    help="one push in this many carries Alarm_Status 1 (an alarm); 0: none")
    ap.add_argument("--ingest", action="append", default=[], metavar="KEY=VALUE",
                    help="an `ingest:` setting of the site file, e.g. commit_spacing_s=0.002 (repeatable)")
    ap.add_argument("--max-pushes", type=int, default=2_000_000, help="cap on pushes (memory, timestamps)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "push.json"))
    ap.add_argument("--profile", type=float, default=0.0,
                    help="seconds of py-spy record of the service in the middle of the run (0 = off)")
    ap.add_argument("--profile-gil", action="store_true", help="profile only the thread holding the GIL")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (logs, data)")
    args = ap.parse_args(argv)
    if args.clients < 1 or args.connections < args.clients:
        ap.error("--connections must be >= --clients >= 1")
    if not 0 < args.max_pushes < TS_BACK_MS:
        ap.error(f"--max-pushes must be below {TS_BACK_MS} (one ms of timestamp per push)")
    if args.duration <= 0 or args.duration > 3600:
        ap.error("--duration must be in (0, 3600]")
    if args.profile and args.profile > args.duration - 2:
        args.profile = max(1.0, args.duration - 4)

    def _terminated(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _terminated)  # clean up as on Ctrl-C
    ctx = mp.get_context("spawn")
    tmp = Path(tempfile.mkdtemp(prefix="cb-bench-push-"))
    log(f"workdir {tmp}")
    cleanup: list[Any] = []
    ok = False
    try:
        result = run(args, ctx, tmp, cleanup)
        verdict = "PASS" if (result["count_ok"] and result["held"] is not False
                             and result["target_reached"] is not False) else "FAIL"
        why = [w for w, bad in (("InfluxDB does not hold exactly the pushes answered 200", not result["count_ok"]),
                                ("rate not held", result["held"] is False),
                                ("target not reached", result["target_reached"] is False)) if bad]
        verdict += f" ({'; '.join(why)})" if why else ""
        res = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"nproc": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform()},
            "args": vars(args), "result": result, "verdict": verdict,
        }
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2, default=str))
        print_summary(res)
        log(f"wrote {out}")
        ok = verdict == "PASS"
        return 0 if ok else 1
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        finish(cleanup, tmp, keep=args.keep_tmp or not ok)


if __name__ == "__main__":
    sys.exit(main())
