#!/usr/bin/env python3
"""Ingest throughput benchmark: MQTT (QoS 1) -> `cbrain run` -> InfluxDB, against a bare paho ceiling.

One run measures, on this machine, with real Mosquitto and influxd on loopback:

1. ceiling  - a bare paho-mqtt 2.x subscriber (MQTT 5, QoS 1, auto-ack, on_message only counts)
              receiving from Mosquitto while publisher process(es) publish at QoS 1 as fast as the
              broker accepts; rate = messages / (last message - first message).
2. service  - `cbrain run` as a subprocess (own CPU and RSS), the same publishers sending valid
              ebike_charger readings; /metrics `cb_readings_stored_total` polled every second;
              overall rate = stored / (last stored - first publish), steady rate over the middle
              half of the publishing window; at the end InfluxDB must hold exactly what was
              published (SELECT count(current_a) FROM ebike_charger), else FAIL.
3. memory   - the service's RSS every 5 s: first, min, max, last, and the slope (MB/min, least
              squares over the second half of the run).
4. summary  - table on stdout and all figures as JSON in --out.

Back-pressure: publishers may run at most --max-backlog messages ahead of what the consumer has
taken (the ceiling subscriber's count, or the service's stored count as last polled). That keeps
the broker's queue bounded (it holds 1,000,000 messages per client at most and saves its whole
database every second) while always leaving the consumer work to do, so the measured rate is the
consumer's sustained capacity; when the backlog stays near zero the publishers were the limit,
and the summary says so.

Run: .venv/bin/python bench/ingest_throughput.py [--duration 60] [--devices 1000] [--publishers 1]
     [--out bench/results/ingest.json] [--profile 20]
"""

from __future__ import annotations

import argparse
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
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PREFIX = "cb"
COMMUNITY = "bench"
DEVICE_TYPE = "ebike_charger"
DATABASE = "bench"
PAYLOAD_FMT = (b'{"ts": %d, "seq": %d, "current_a": 2.1, "voltage_v": 220.0, '
               b'"temperature_c": 30.5, "charging": true}')
TARGET_PCT = 50.0
DRAIN_TIMEOUT_S = 120.0
RSS_EVERY_S = 5.0
FLAT_MB_PER_MIN = 1.0  # |slope| below this is reported as "flat" (a choice of this benchmark)

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def finish(cleanup: list[Any], tmp: Path, *, keep: bool) -> None:
    """Stop everything the run started (last first), then remove or keep its directory."""
    for fn in reversed(cleanup):
        try:
            fn()
        except Exception as exc:
            log(f"cleanup: {exc}")
    if keep:
        log(f"kept {tmp} (logs and data)")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def device_ids(n: int) -> list[str]:
    return [f"ev-{i:05d}" for i in range(n)]


def topic_of(device_id: str) -> str:
    return f"{PREFIX}/{COMMUNITY}/{DEVICE_TYPE}/{device_id}/telemetry"


# ---- child processes ----------------------------------------------------------------------------


def publisher_main(index: int, host: str, port: int, devices: list[str], count: int, duration_s: float,
                   inflight: int, n_publishers: int, max_backlog: int, ts_base_ms: int,
                   progress: Any, published: Any, ready: Any, go: Any, stop: Any, results: Any) -> None:
    """Pre-encode `count` readings over `devices`, then publish them at QoS 1 as fast as the broker acks.

    Publishing stops after `count` messages or `duration_s`, whichever comes first; it never runs more
    than (progress + max_backlog) / n_publishers messages ahead (back-pressure, see module doc).
    """
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    report: dict[str, Any] = {"index": index, "devices": len(devices), "pregenerated": count}
    try:
        t = time.monotonic()
        topics = [topic_of(d) for d in devices]
        n_dev = len(devices)
        fmt = PAYLOAD_FMT
        # message i: device i % n_dev, seq i // n_dev, ts base + seq ms (distinct per device)
        payloads = [fmt % (ts_base_ms + i // n_dev, i // n_dev) for i in range(count)]
        report["pregen_s"] = time.monotonic() - t
        report["payload_bytes"] = len(payloads[0]) if payloads else 0

        acked = [0]

        def on_publish(_c: Any, _u: Any, _mid: int, _rc: Any, _p: Any) -> None:
            acked[0] += 1

        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{index}-{os.getpid()}",
                             protocol=paho.MQTTv5)
        # 0 = no paho-side limit. paho 2.x scans every unacknowledged message on each PUBACK when a
        # limit is set (Client._update_inflight), which costs O(window) per message; the window
        # (`inflight`, >= 1000 by default) is kept by this loop instead.
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        client.on_publish = on_publish
        client.connect(host, port, keepalive=60)
        deadline = time.monotonic() + 15
        while not client.is_connected():
            client.loop(timeout=0.1)
            if time.monotonic() > deadline:
                raise RuntimeError(f"publisher {index}: no CONNACK from {host}:{port}")
        ready.set()
        while not go.wait(0.5):
            client.loop(timeout=0)  # keep the connection serviced
            if stop.is_set():
                break
        t0 = time.monotonic()
        end = t0 + duration_s
        i = 0
        waited_credit = waited_acks = 0.0
        exhausted = False
        publish = client.publish
        loop = client.loop
        while not stop.is_set():
            if i >= count:
                exhausted = True
                break
            allowed = (progress.value + max_backlog) // n_publishers if max_backlog > 0 else count
            upto = min(count, allowed, acked[0] + inflight)
            if i >= upto:
                w = time.monotonic()
                loop(timeout=0.005)
                if allowed <= i:
                    waited_credit += time.monotonic() - w
                else:
                    waited_acks += time.monotonic() - w
                if w > end:
                    break
                continue
            upto = min(upto, i + 500)
            while i < upto:
                publish(topics[i % n_dev], payloads[i], qos=1)
                i += 1
            published.value = i
            loop(timeout=0)
            if time.monotonic() > end:
                break
        t_stop = time.monotonic()
        published.value = i
        ack_deadline = time.monotonic() + 60
        while acked[0] < i and time.monotonic() < ack_deadline:
            loop(timeout=0.05)
        t_acked = time.monotonic()
        client.disconnect()
        loop(timeout=0.5)
        report.update(sent=i, acked=acked[0], t0=t0, t_stop=t_stop, t_acked=t_acked,
                      exhausted=exhausted, waited_credit_s=waited_credit, waited_acks_s=waited_acks,
                      publish_rate=i / (t_stop - t0) if t_stop > t0 else 0.0)
    except BaseException as exc:  # report, then let the parent decide
        report["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        ready.set()
    results.put(report)


def ceiling_subscriber_main(host: str, port: int, received: Any, target: Any, ready: Any,
                            stop: Any, results: Any, idle_timeout_s: float) -> None:
    """A bare paho subscriber: MQTT 5, QoS 1, auto-ack; on_message only increments a counter."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    report: dict[str, Any] = {}
    try:
        count = 0

        def on_message(_c: Any, _u: Any, _m: Any) -> None:
            nonlocal count
            count += 1

        subscribed = [False]

        def on_subscribe(_c: Any, _u: Any, _mid: Any, _rc: Any, _p: Any) -> None:
            subscribed[0] = True

        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-ceiling-{os.getpid()}",
                             protocol=paho.MQTTv5)
        client.on_message = on_message
        client.on_subscribe = on_subscribe
        client.connect(host, port, keepalive=60, clean_start=True)
        client.subscribe(f"{PREFIX}/#", qos=1)
        deadline = time.monotonic() + 15
        while not subscribed[0]:
            client.loop(timeout=0.1)
            if time.monotonic() > deadline:
                raise RuntimeError("ceiling subscriber: not subscribed after 15 s")
        ready.set()
        first = last = None
        seen = 0
        loop = client.loop
        now = time.monotonic()
        while not stop.is_set():
            loop(timeout=0.1)
            now = time.monotonic()
            if count != seen:
                seen = count
                if first is None:
                    first = now
                last = now
                received.value = seen
            goal = target.value
            if goal > 0 and seen >= goal:
                break
            if goal > 0 and now - (last or now) > idle_timeout_s:
                break
        client.disconnect()
        report.update(received=count, t_first=first, t_last=last)
    except BaseException as exc:
        report["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        ready.set()
    results.put(report)


# ---- helpers -------------------------------------------------------------------------------------


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with _NO_PROXY.open(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {name: value summed over labels}."""
    out: dict[str, float] = defaultdict(float)
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        try:
            name_part, value = line.rsplit(" ", 1)
            name = name_part.split("{", 1)[0]
            out[name] += float(value)
        except ValueError:
            continue
    return dict(out)


class ProcessTree:
    """A process with its children, as psutil sees one: the service's store writer runs in a child."""

    def __init__(self, proc: Any) -> None:
        self.proc = proc
        self.pid = proc.pid

    def _all(self) -> list[Any]:
        try:
            return [self.proc, *self.proc.children(recursive=True)]
        except Exception:
            return [self.proc]

    def cpu_times(self) -> Any:
        """User and system CPU seconds of the process and its live children."""
        import types

        user = system = 0.0
        for p in self._all():
            try:
                t = p.cpu_times()
            except Exception:
                if p is self.proc:
                    raise
                continue
            user, system = user + t.user, system + t.system
        return types.SimpleNamespace(user=user, system=system)

    def memory_info(self) -> Any:
        """RSS of the process and its live children."""
        import types

        rss = 0
        for p in self._all():
            try:
                rss += p.memory_info().rss
            except Exception:
                if p is self.proc:
                    raise
        return types.SimpleNamespace(rss=rss)

    def threads(self) -> Any:
        """The main process's threads."""
        return self.proc.threads()


def proc_cpu(p: Any) -> float | None:
    try:
        t = p.cpu_times()
        return float(t.user + t.system)
    except Exception:
        return None


def machine_times() -> dict[str, float]:
    """CPU seconds (all cores, since boot) the machine spent busy, and that the hypervisor stole."""
    import psutil

    t = psutil.cpu_times()
    # guest time is already counted in user; steal is time this VM did not get at all
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    return {"machine": float(busy), "steal": float(getattr(t, "steal", 0.0))}


def cores_between(cpu_a: dict[str, float | None], cpu_b: dict[str, float | None], dt: float) -> dict[str, float]:
    """Cores used by each watched process between two snapshots, and by everything else on the machine.

    `machine` is every process of the machine; `other` is what is left when ours are taken out
    (other work running on the machine at the same time: a source of noise); `steal` is CPU time
    the hypervisor gave to other guests while this VM wanted to run.
    """
    out: dict[str, float] = {}
    if dt <= 0:
        return out
    for k in cpu_b:
        a, b = cpu_a.get(k), cpu_b.get(k)
        if a is not None and b is not None:
            out[k] = round((b - a) / dt, 2)
    if "machine" in out:
        ours = sum(v for k, v in out.items() if k not in ("machine", "steal"))
        out["other"] = round(max(0.0, out["machine"] - ours), 2)
    return out


def slope_per_min(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MB) in MB per minute."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    if sxx == 0:
        return None
    sxy = sum((p[0] - mx) * (p[1] - my) for p in points)
    return sxy / sxx * 60.0


def rate_between(samples: list[dict[str, Any]], key: str, t_a: float, t_b: float) -> float | None:
    """Rate of samples[key] between the samples nearest to t_a and t_b."""
    if not samples:
        return None
    a = min(samples, key=lambda s: abs(s["t"] - t_a))
    b = min(samples, key=lambda s: abs(s["t"] - t_b))
    if b["t"] - a["t"] <= 0:
        return None
    return (b[key] - a[key]) / (b["t"] - a["t"])


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"<{path} missing>"


class Publishers:
    """N publisher processes over a split of the devices, started together."""

    def __init__(self, ctx: Any, n: int, host: str, port: int, devices: list[str], total: int,
                 duration_s: float, inflight: int, max_backlog: int, progress: Any) -> None:
        self.ctx = ctx
        self.results = ctx.Queue()
        self.go = ctx.Event()
        self.stop = ctx.Event()
        self.published = [ctx.Value("q", 0, lock=False) for _ in range(n)]
        self.readies = [ctx.Event() for _ in range(n)]
        per_dev = math.ceil(total / n / max(1, len(devices) // n)) + 2
        ts_base_ms = int(time.time() * 1000) - per_dev - 60_000
        self.procs = []
        for k in range(n):
            share = devices[k::n]
            count = math.ceil(total / n)
            p = ctx.Process(target=publisher_main, name=f"bench-publisher-{k}", daemon=True,
                            args=(k, host, port, share, count, duration_s, inflight, n, max_backlog,
                                  ts_base_ms, progress, self.published[k], self.readies[k], self.go,
                                  self.stop, self.results))
            self.procs.append(p)

    def start(self, timeout: float = 180.0) -> None:
        for p in self.procs:
            p.start()
        deadline = time.monotonic() + timeout
        for k, ev in enumerate(self.readies):
            while not ev.wait(0.5):
                if not self.procs[k].is_alive():
                    raise RuntimeError(f"publisher {k} died during start (exit {self.procs[k].exitcode})")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"publisher {k} not ready after {timeout:.0f} s")

    def sent(self) -> int:
        return sum(v.value for v in self.published)

    def collect(self, timeout: float = 120.0) -> list[dict[str, Any]]:
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
            raise RuntimeError("publisher failed:\n" + "\n".join(errors))
        if len(out) < len(self.procs):
            raise RuntimeError(f"only {len(out)} of {len(self.procs)} publishers reported")
        return sorted(out, key=lambda r: r["index"])

    def terminate(self) -> None:
        self.stop.set()
        for p in self.procs:
            if p.is_alive():
                p.join(3)
            if p.is_alive():
                p.terminate()
                p.join(3)
            if p.is_alive():
                p.kill()
                p.join(3)


def summarize_publishers(reports: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "sent": sum(r["sent"] for r in reports),
        "acked": sum(r["acked"] for r in reports),
        "t0": min(r["t0"] for r in reports),
        "t_stop": max(r["t_stop"] for r in reports),
        "publish_rate_sum": sum(r["publish_rate"] for r in reports),
        "pregen_s_max": max(r["pregen_s"] for r in reports),
        "pregenerated": sum(r["pregenerated"] for r in reports),
        "exhausted": any(r["exhausted"] for r in reports),
        "waited_credit_s": [round(r["waited_credit_s"], 2) for r in reports],
        "waited_acks_s": [round(r["waited_acks_s"], 2) for r in reports],
        "credit_wait_share": max(r["waited_credit_s"] / max(1e-9, r["t_stop"] - r["t0"]) for r in reports),
        "payload_bytes": reports[0].get("payload_bytes"),
    }


# ---- phase 1: ceiling ---------------------------------------------------------------------------


def run_ceiling(args: argparse.Namespace, ctx: Any, tmp: Path, servers_mod: Any, cleanup: list[Any]) -> dict[str, Any]:
    log(f"ceiling: starting a fresh Mosquitto; bare paho subscriber; {args.publishers} publisher(s), "
        f"up to {args.ceiling_count} messages or {args.ceiling_duration:g} s")
    broker = servers_mod.Mosquitto(tmp / "mosquitto-ceiling")
    cleanup.append(broker.stop)
    broker.start()
    received = ctx.Value("q", 0, lock=False)
    target = ctx.Value("q", 0, lock=False)
    sub_ready, sub_stop, sub_results = ctx.Event(), ctx.Event(), ctx.Queue()
    sub = ctx.Process(target=ceiling_subscriber_main, name="bench-ceiling-sub", daemon=True,
                      args=(broker.host, broker.port, received, target, sub_ready, sub_stop, sub_results, 10.0))
    pubs = Publishers(ctx, args.publishers, broker.host, broker.port, device_ids(args.devices),
                      args.ceiling_count, args.ceiling_duration, args.inflight, args.max_backlog, received)

    def _cleanup() -> None:
        sub_stop.set()
        pubs.terminate()
        if sub.is_alive():
            sub.join(3)
        if sub.is_alive():
            sub.terminate()
            sub.join(3)

    cleanup.append(_cleanup)
    sub.start()
    if not sub_ready.wait(30):
        raise RuntimeError("ceiling subscriber not ready")
    pubs.start()
    import psutil

    watched = {"subscriber": psutil.Process(sub.pid), "mosquitto": psutil.Process(broker.pid),
               "bench": psutil.Process()}
    watched.update({f"publisher{k}": psutil.Process(p.pid) for k, p in enumerate(pubs.procs)})

    def snapshot() -> dict[str, float | None]:
        snap = {k: proc_cpu(p) for k, p in watched.items()}
        snap.update(machine_times())
        return snap

    load_before = os.getloadavg()
    cpu0 = snapshot()
    t_go = time.monotonic()
    pubs.go.set()
    # CPU of the publishers is read while they still run (they exit when done).
    pub_cpu_t = t_go + min(args.ceiling_duration * 0.9, args.ceiling_duration - 0.5)
    while time.monotonic() < pub_cpu_t and all(p.is_alive() for p in pubs.procs):
        time.sleep(0.1)
    cpu_mid = snapshot()
    t_mid = time.monotonic()
    reports = pubs.collect(timeout=args.ceiling_duration + 120)
    pub = summarize_publishers(reports)
    target.value = pub["acked"]
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    sub_report: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        try:
            sub_report = sub_results.get(timeout=0.5)
            break
        except Exception:
            if not sub.is_alive():
                break
    sub_stop.set()
    sub.join(5)
    if sub_report is None:
        raise RuntimeError(f"ceiling subscriber did not report (received {received.value})")
    if "error" in sub_report:
        raise RuntimeError("ceiling subscriber failed:\n" + sub_report["error"])
    n = sub_report["received"]
    span = (sub_report["t_last"] or 0) - (sub_report["t_first"] or 0)
    rate = n / span if span > 0 else 0.0
    cores = cores_between(cpu0, cpu_mid, t_mid - t_go)
    broker.stop()
    result = {
        "received": n, "published_acked": pub["acked"], "lost": pub["acked"] - n,
        "seconds_first_to_last": round(span, 3), "rate_msg_s": round(rate, 1),
        "publish_rate_msg_s": round(pub["publish_rate_sum"], 1),
        "publishers": args.publishers, "pregenerated": pub["pregenerated"],
        "publishers_exhausted_payloads": pub["exhausted"],
        "publisher_wait_credit_s": pub["waited_credit_s"], "publisher_wait_acks_s": pub["waited_acks_s"],
        # the subscriber took messages as fast as they were published: the publishers set the pace
        "publisher_bound": rate >= 0.95 * pub["publish_rate_sum"] and pub["credit_wait_share"] < 0.1,
        "cpu_cores_while_publishing": cores,
        "loadavg_before": [round(x, 2) for x in load_before],
    }
    log(f"ceiling: {n} received in {span:.2f} s = {rate:,.0f} msg/s "
        f"(publishers sent {pub['acked']} at {pub['publish_rate_sum']:,.0f} msg/s; cores while publishing "
        f"{cores})")
    if n != pub["acked"]:
        log(f"ceiling: WARNING subscriber received {n}, publishers had {pub['acked']} acked")
    return result


# ---- phase 2: the service -----------------------------------------------------------------------


def write_config(path: Path, mqtt_url: str, influx_url: str, http_port: int, state_dir: Path) -> None:
    import yaml

    raw = {
        "mqtt": {"url": mqtt_url, "prefix": PREFIX, "client_id": "bench-ingest"},
        "influx": {"url": influx_url, "database": DATABASE},
        "http": {"host": "127.0.0.1", "port": http_port},
        "state_dir": str(state_dir),
        "communities": [{"id": COMMUNITY, "name": "Bench"}],
    }
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")


def start_profile(pid: int, seconds: float, out: Path, gil: bool) -> subprocess.Popen[bytes] | None:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        log("profile: py-spy not found (pip install py-spy into the venv); skipping")
        return None
    argv = [exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "100",
            "--format", "raw", "--threads", "--nonblocking", "-o", str(out)] + (["--gil"] if gil else [])
    log(f"profile: {' '.join(argv)}")
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=out.with_suffix(".err").open("wb"))


def py_spy_dump(pid: int, out: Path) -> None:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        return
    # One short pause of the service (a blocking dump): --nonblocking often fails to read the stacks.
    for _ in range(3):
        try:
            r = subprocess.run([exe, "dump", "--pid", str(pid)], capture_output=True, timeout=30)
        except Exception as exc:
            out.write_text(f"py-spy dump failed: {exc}")
            continue
        out.write_bytes(r.stdout + r.stderr)
        if r.returncode == 0:
            return


def thread_names(dump: Path) -> dict[int, str]:
    """Thread id -> Python thread name, from a `py-spy dump` (Python does not name OS threads)."""
    import re

    try:
        text = dump.read_text(errors="replace")
    except FileNotFoundError:
        return {}
    return {int(m[1]): m[2] for m in re.finditer(r'^Thread (\d+) \([^)]*\): "([^"]*)"', text, re.M)}


def analyse_profile(raw: Path, top: int = 15) -> dict[str, Any]:
    """Aggregate py-spy raw (collapsed) stacks: samples per thread, self and inclusive per function."""
    threads: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    self_fn: Counter[str] = Counter()
    incl_fn: Counter[str] = Counter()
    total = 0
    try:
        lines = raw.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return {"error": f"{raw} missing"}
    for line in lines:
        stack, _, n = line.rpartition(" ")
        try:
            count = int(n)
        except ValueError:
            continue
        frames = stack.split(";")
        # with --threads: "process ...", "thread (0x...)" or "thread \"name\" ..." come first
        th = next((f for f in frames[:2] if f.startswith("thread")), "?")
        code = [f for f in frames if not f.startswith(("process ", "thread "))]
        total += count
        threads[th] += count
        # the asyncio callback or task step that was running (the frame after Handle._run), if any
        runs = [k for k, f in enumerate(code) if f.startswith("Handle._run (")]
        step = _fn(code[runs[-1] + 1]) if runs and runs[-1] + 1 < len(code) else (
            "event loop itself" if any(f.startswith("BaseEventLoop._run_once") for f in code) else "-")
        stages[f"{th.split(': ', 1)[-1]} / {step}"] += count
        if code:
            self_fn[_fn(code[-1])] += count
            packages[_package(code[-1])] += count
        for f in set(_fn(f) for f in code):
            incl_fn[f] += count

    def pct(c: Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(100.0 * v / total, 1)) for k, v in c.most_common(top)] if total else []

    return {"samples": total, "threads_pct": pct(threads), "stages_pct": pct(stages),
            "packages_pct": pct(packages), "self_pct": pct(self_fn), "inclusive_pct": pct(incl_fn)}


def _package(frame: str) -> str:
    """The package of a frame's code: 'decode_publish (mqtt/_packet.py:12)' -> 'mqtt' (paho)."""
    _, _, loc = frame.partition(" (")
    path = loc.rstrip(")").rsplit(":", 1)[0]
    if "/" not in path:
        return f"stdlib {path}" if path.endswith(".py") else path or "?"
    top = path.split("/", 1)[0]
    return "paho (mqtt)" if top == "mqtt" else top


def _fn(frame: str) -> str:
    """'func (path/to/file.py:123)' -> 'func (file.py)' so lines of one function add up."""
    name, _, loc = frame.partition(" (")
    loc = loc.rstrip(")")
    path = loc.rsplit(":", 1)[0]
    short = "/".join(Path(path).parts[-2:]) if path else ""
    return f"{name} ({short})" if short else name


def run_service(args: argparse.Namespace, ctx: Any, tmp: Path, servers_mod: Any, cleanup: list[Any],
                ceiling_rate: float) -> dict[str, Any]:
    import psutil

    log("service: starting influxd and a fresh Mosquitto")
    influx = servers_mod.InfluxD(tmp / "influxd")
    cleanup.append(influx.stop)
    influx.start()
    broker = servers_mod.Mosquitto(tmp / "mosquitto-service")
    cleanup.append(broker.stop)
    broker.start()
    http_port = servers_mod.free_port()
    cfg = tmp / "bench.yaml"
    write_config(cfg, broker.url, influx.url, http_port, tmp / "state")
    base = f"http://127.0.0.1:{http_port}"
    cbrain = Path(sys.executable).parent / "cbrain"
    if not cbrain.exists():
        cbrain = REPO / ".venv" / "bin" / "cbrain"
    argv = [str(cbrain), "run", "--config", str(cfg)]
    setpriv = shutil.which("setpriv")
    if setpriv:  # the service dies with us even if we are SIGKILLed (setpriv execs: same pid)
        argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CB_")}
    env["PYTHONUNBUFFERED"] = "1"
    log_path = tmp / "service.log"
    log(f"service: {' '.join(argv)} (log: {log_path})")
    with log_path.open("wb") as out:
        svc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                               cwd=tmp, env=env, start_new_session=True)

    def _stop_service() -> None:
        if svc.poll() is None:
            svc.send_signal(signal.SIGTERM)
            try:
                svc.wait(20)
            except subprocess.TimeoutExpired:
                svc.kill()
                svc.wait()

    cleanup.append(_stop_service)
    deadline = time.monotonic() + 60
    while True:
        if svc.poll() is not None:
            raise RuntimeError(f"service exited with {svc.returncode} during start\n{tail(log_path)}")
        try:
            code, _ = http_get(f"{base}/health", 1.0)
            if code == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"service /health not 200 after 60 s\n{tail(log_path)}")
        time.sleep(0.2)
    sproc = ProcessTree(psutil.Process(svc.pid))  # CPU and RSS with the store writer's process
    log(f"service: healthy (pid {svc.pid}, http {base})")

    # Enough pre-encoded payloads for the consumer at the ceiling rate, plus the allowed backlog.
    want = int(max(ceiling_rate, 10_000) * 1.15 * args.duration) + args.max_backlog
    total = min(args.max_messages, want)
    stored_v = ctx.Value("q", 0, lock=False)
    pubs = Publishers(ctx, args.publishers, broker.host, broker.port, device_ids(args.devices), total,
                      args.duration, args.inflight, args.max_backlog, stored_v)
    cleanup.append(pubs.terminate)
    log(f"service: pre-encoding {total:,} readings over {args.devices} devices in {args.publishers} "
        f"publisher process(es)")
    t = time.monotonic()
    pubs.start()
    log(f"service: publishers ready after {time.monotonic() - t:.1f} s; publishing for {args.duration:g} s")

    others = {"mosquitto": psutil.Process(broker.pid), "influxd": psutil.Process(influx.pid),
              "bench": psutil.Process()}
    others.update({f"publisher{k}": psutil.Process(p.pid) for k, p in enumerate(pubs.procs)})
    rss: list[tuple[float, float]] = [(time.monotonic(), sproc.memory_info().rss / 2**20)]
    cpu_start = proc_cpu(sproc)
    samples: list[dict[str, Any]] = []

    def sample() -> dict[str, Any]:
        now = time.monotonic()
        m: dict[str, float] = {}
        try:
            code, body = http_get(f"{base}/metrics", 5.0)
            if code == 200:
                m = parse_metrics(body.decode())
        except OSError as exc:
            log(f"service: /metrics failed: {exc}")
        s = {"t": now, "stored": int(m.get("cb_readings_stored_total", samples[-1]["stored"] if samples else 0)),
             "received": int(m.get("cb_messages_received_total", 0)),
             "rejected": int(m.get("cb_readings_rejected_total", 0)),
             "duplicates": int(m.get("cb_readings_duplicates_total", 0)),
             "spool": int(m.get("cb_spool_points", 0)), "inbox": int(m.get("cb_mqtt_inbox", 0)),
             "store_errors": int(m.get("cb_store_write_errors_total", 0)),
             "commits": int(m.get("cb_spool_commits_total", 0)),
             "writes": int(m.get("cb_store_write_seconds_count", 0)),
             "write_s": float(m.get("cb_store_write_seconds_sum", 0.0)),
             "sent": pubs.sent(), "cpu": {"service": proc_cpu(sproc)}}
        try:
            s["threads"] = {t.id: t.user_time + t.system_time for t in sproc.threads()}
        except Exception:
            s["threads"] = {}
        for k, p in others.items():
            s["cpu"][k] = proc_cpu(p)
        s["cpu"].update(machine_times())
        stored_v.value = s["stored"]
        samples.append(s)
        return s

    load_before = os.getloadavg()
    sample()
    t_go = time.monotonic()
    pubs.go.set()
    next_rss = t_go + RSS_EVERY_S
    next_poll = t_go + 1.0
    prof: subprocess.Popen[bytes] | None = None
    prof_at = t_go + max(2.0, (args.duration - (args.profile or 0)) / 2)
    dumped = False
    end_pub = t_go + args.duration
    last_line = t_go
    while time.monotonic() < end_pub + 2:
        time.sleep(max(0.0, next_poll - time.monotonic()))
        next_poll += 1.0
        s = sample()
        if svc.poll() is not None:
            raise RuntimeError(f"service exited with {svc.returncode} during the run\n{tail(log_path, 60)}")
        if s["t"] >= next_rss:
            rss.append((s["t"], sproc.memory_info().rss / 2**20))
            next_rss += RSS_EVERY_S
        if args.profile and prof is None and s["t"] >= prof_at:
            prof = start_profile(svc.pid, args.profile, tmp / "pyspy.raw", args.profile_gil)
        if not dumped and s["t"] >= t_go + args.duration / 2:
            py_spy_dump(svc.pid, tmp / "pyspy-dump.txt")
            dumped = True
        if s["t"] - last_line >= 5 or s["t"] > end_pub:
            last_line = s["t"]
            prev = samples[-6] if len(samples) > 6 else samples[0]
            r = (s["stored"] - prev["stored"]) / (s["t"] - prev["t"])
            log(f"  t={s['t'] - t_go:5.1f}s sent={s['sent']:>9,} received={s['received']:>9,} "
                f"stored={s['stored']:>9,} ({r:,.0f}/s) backlog={s['sent'] - s['stored']:,} "
                f"spool={s['spool']:,} rss={rss[-1][1]:.0f}MB")
        if all(not p.is_alive() for p in pubs.procs):
            break
    reports = pubs.collect(timeout=90)
    pub = summarize_publishers(reports)
    published = pub["acked"]
    log(f"service: publishing done: {published:,} acked by the broker "
        f"({pub['publish_rate_sum']:,.0f} msg/s while publishing); waiting for the service to store them")
    stored_v.value = 1 << 60  # no more credit needed
    drain_deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < drain_deadline:
        s = sample()
        if s["t"] >= next_rss:
            rss.append((s["t"], sproc.memory_info().rss / 2**20))
            next_rss += RSS_EVERY_S
        if s["stored"] >= published:
            break
        if svc.poll() is not None:
            raise RuntimeError(f"service exited with {svc.returncode} while draining\n{tail(log_path, 60)}")
        time.sleep(0.25)
    final_stored = samples[-1]["stored"]
    t_last_stored = min(s["t"] for s in samples if s["stored"] == final_stored)
    rss.append((time.monotonic(), sproc.memory_info().rss / 2**20))
    cpu_end = proc_cpu(sproc)
    final = samples[-1]
    if prof is not None:
        try:
            prof.wait(args.profile + 30)
        except subprocess.TimeoutExpired:
            prof.kill()
            prof.wait()

    # Verify InfluxDB holds exactly what was published.
    influx_count: int | None = None
    try:
        res = influx.query(f"SELECT count(current_a) FROM {DEVICE_TYPE}", db=DATABASE, epoch=None)
        series = res["results"][0].get("series", [])
        influx_count = int(series[0]["values"][0][1]) if series else 0
    except Exception as exc:
        log(f"service: InfluxDB count query failed: {exc}")
    count_ok = influx_count == published and final["stored"] == published

    # Rates.
    t0 = pub["t0"]
    overall = final["stored"] / (t_last_stored - t0) if t_last_stored > t0 else 0.0
    pub_end = pub["t_stop"]
    a, b = t0 + 0.25 * (pub_end - t0), t0 + 0.75 * (pub_end - t0)
    steady = rate_between(samples, "stored", a, b) or 0.0
    mid = [s for s in samples if a <= s["t"] <= b]
    backlog_mid = [s["sent"] - s["stored"] for s in mid]
    min_backlog = min(backlog_mid) if backlog_mid else None
    steady_pub = rate_between(samples, "sent", a, b) or 0.0
    # The service stored readings as fast as they were published: the publishers set the pace.
    # (When the publishers waited for credit, the service set the pace, whatever the two rates say.)
    publisher_bound = steady >= 0.95 * steady_pub and pub["credit_wait_share"] < 0.1
    s_end = min(samples, key=lambda s: abs(s["t"] - pub_end))
    s_last = min(samples, key=lambda s: abs(s["t"] - t_last_stored))
    drain_rate = ((s_last["stored"] - s_end["stored"]) / (s_last["t"] - s_end["t"])
                  if s_last["t"] > s_end["t"] + 0.5 else None)
    drain_cores = cores_between(s_end["cpu"], s_last["cpu"], s_last["t"] - s_end["t"])

    def batching(x: dict[str, Any], y: dict[str, Any]) -> dict[str, float | None]:
        """Readings per spool commit and per store write, and the mean write time, between two samples."""
        commits, writes = y["commits"] - x["commits"], y["writes"] - x["writes"]
        stored, received = y["stored"] - x["stored"], y["received"] - x["received"]
        return {"readings_per_commit": round(received / commits, 1) if commits else None,
                "readings_per_write": round(stored / writes, 1) if writes else None,
                "commits_per_s": round(commits / (y["t"] - x["t"]), 1) if y["t"] > x["t"] else None,
                "mean_write_ms": round(1000 * (y["write_s"] - x["write_s"]) / writes, 1) if writes else None}

    # CPU per process over the steady window and over the whole publishing+drain window.
    sa = min(samples, key=lambda s: abs(s["t"] - a))
    sb = min(samples, key=lambda s: abs(s["t"] - b))
    steady_cores = cores_between(sa["cpu"], sb["cpu"], sb["t"] - sa["t"])
    names = thread_names(tmp / "pyspy-dump.txt")
    thread_cores = {f"{tid} {names.get(tid, '?')}": round((sb["threads"][tid] - sa["threads"][tid]) /
                                                         (sb["t"] - sa["t"]), 2)
                    for tid in sb.get("threads", {}) if tid in sa.get("threads", {}) and sb["t"] > sa["t"]}

    # Memory.
    rss_mb = [m for _, m in rss]
    half = rss[0][0] + (rss[-1][0] - rss[0][0]) / 2
    second_half = [(t - rss[0][0], m) for t, m in rss if t >= half]
    slope = slope_per_min(second_half)

    # Service log: warnings/errors.
    log_text = log_path.read_text(errors="replace") if log_path.exists() else ""
    problems = [ln for ln in log_text.splitlines() if " WARNING " in ln or " ERROR " in ln or "Traceback" in ln]

    result = {
        "published": published, "sent": pub["sent"], "stored_metric": final["stored"],
        "received_metric": final["received"], "rejected_metric": final["rejected"],
        "duplicates_metric": final["duplicates"], "store_write_errors_metric": final["store_errors"],
        "influx_count": influx_count, "count_ok": count_ok,
        "overall_rate": round(overall, 1), "steady_rate": round(steady, 1),
        "seconds_first_publish_to_last_stored": round(t_last_stored - t0, 2),
        "publishing_seconds": round(pub_end - t0, 2),
        "drain_seconds": round(t_last_stored - pub_end, 2),
        "publish_rate_msg_s": round(pub["publish_rate_sum"], 1),
        "publisher_wait_credit_s": pub["waited_credit_s"], "publisher_wait_acks_s": pub["waited_acks_s"],
        "pregenerated": pub["pregenerated"], "publishers_exhausted_payloads": pub["exhausted"],
        "steady_window_s": [round(a - t0, 1), round(b - t0, 1)],
        "steady_min_backlog": min_backlog, "publisher_bound": publisher_bound,
        "steady_publish_rate": round(steady_pub, 1),
        "drain_rate": None if drain_rate is None else round(drain_rate, 1),
        "drain_cpu_cores": drain_cores,
        "steady_batching": batching(sa, sb),
        "drain_batching": batching(s_end, s_last),
        "steady_cpu_cores": steady_cores,
        "steady_service_thread_cores": thread_cores,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "service_cpu_seconds": round((cpu_end or 0) - (cpu_start or 0), 2),
        "service_cpu_seconds_total": round(cpu_end or 0, 2),
        "rss_mb": {"first": round(rss_mb[0], 1), "min": round(min(rss_mb), 1), "max": round(max(rss_mb), 1),
                   "last": round(rss_mb[-1], 1),
                   "slope_mb_per_min_second_half": None if slope is None else round(slope, 3),
                   "samples": [(round(t - t_go, 1), round(m, 1)) for t, m in rss]},
        "log_problems": problems[-20:],
        "log_path": str(log_path),
        "samples": [{"t": round(s["t"] - t_go, 2), **{k: s[k] for k in
                     ("sent", "received", "stored", "spool", "inbox", "rejected", "commits", "writes")}}
                    for s in samples],
    }
    if args.profile:
        result["profile"] = analyse_profile(tmp / "pyspy.raw")
        result["profile_raw"] = str(tmp / "pyspy.raw")
        result["py_spy_dump"] = (tmp / "pyspy-dump.txt").read_text(errors="replace") \
            if (tmp / "pyspy-dump.txt").exists() else None

    # Stop the service in order and note how it went.
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


def print_summary(res: dict[str, Any]) -> None:
    c, s, m = res["ceiling"], res["service"], res["service"]["rss_mb"]
    ratio = res["ratio_pct_overall"]
    rows = [
        ("machine", f"{res['machine']['nproc']} cores, {res['machine']['python']}, {res['machine']['platform']}"),
        ("devices / publishers", f"{res['args']['devices']} / {res['args']['publishers']} "
                                 f"(max backlog {res['args']['max_backlog']:,})"),
        ("ceiling (bare paho QoS 1)", f"{c['rate_msg_s']:>12,.0f} msg/s  ({c['received']:,} msgs in "
                                      f"{c['seconds_first_to_last']:.1f} s)"
                                      + ("  [publisher-bound: subscriber kept up]" if c["publisher_bound"]
                                         else "")),
        ("cores used (ceiling)", ", ".join(f"{k} {v:.2f}" for k, v in c["cpu_cores_while_publishing"].items())),
        ("service overall", f"{s['overall_rate']:>12,.0f} readings/s  ({s['stored_metric']:,} stored in "
                            f"{s['seconds_first_publish_to_last_stored']:.1f} s from first publish)"),
        ("service steady (middle)", f"{s['steady_rate']:>12,.0f} readings/s  (t={s['steady_window_s'][0]}"
                                    f"..{s['steady_window_s'][1]} s)"),
        ("ratio service/ceiling", f"{ratio:>11.1f} %  overall, {res['ratio_pct_steady']:.1f} % steady"),
        ("target", f"{TARGET_PCT:>11.0f} %  -> {res['verdict_throughput']}"),
        ("published / stored / influx", f"{s['published']:,} / {s['stored_metric']:,} / {s['influx_count']} "
                                        f"-> {'OK' if s['count_ok'] else 'FAIL'}"),
        ("RSS MB first/min/max/last", f"{m['first']:.1f} / {m['min']:.1f} / {m['max']:.1f} / {m['last']:.1f}"),
        ("RSS slope (2nd half)", "n/a" if m["slope_mb_per_min_second_half"] is None else
         f"{m['slope_mb_per_min_second_half']:+.2f} MB/min -> {res['verdict_memory']}"),
        ("service CPU seconds", f"{s['service_cpu_seconds']:.1f} s during the run "
                                f"({s['service_cpu_seconds_total']:.1f} s since start)"),
        ("cores used (service steady)", ", ".join(f"{k} {v:.2f}" for k, v in s["steady_cpu_cores"].items())),
        ("service threads (steady)", ", ".join(f"{k} {v:.2f}" for k, v in
                                               sorted(s["steady_service_thread_cores"].items(),
                                                      key=lambda kv: -kv[1])[:5])),
        ("drain after publishing", f"{s['drain_seconds']:.1f} s" + ("" if s["drain_rate"] is None else
                                   f" at {s['drain_rate']:,.0f} readings/s; cores "
                                   + ", ".join(f"{k} {v:.2f}" for k, v in s["drain_cpu_cores"].items()))),
        ("batching steady / drain", " / ".join(
            f"{b['readings_per_commit']} per commit, {b['commits_per_s']} commits/s, {b['readings_per_write']} "
            f"per store write ({b['mean_write_ms']} ms)" for b in (s["steady_batching"], s["drain_batching"]))),
        ("publisher rate", f"{s['publish_rate_msg_s']:,.0f} msg/s while publishing, "
                           f"{s['steady_publish_rate']:,.0f} in the steady window"
                           + ("  [publisher-bound: service kept up]" if s["publisher_bound"] else "")),
        ("overall", res["verdict"]),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    print("=" * 100)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print("=" * 100)
    if s.get("profile"):
        p = s["profile"]
        what = "GIL holder only" if res["args"]["profile_gil"] else "active threads"
        print(f"\npy-spy profile of the service ({p.get('samples', 0)} samples, {what}):")
        for title, key in (("threads", "threads_pct"), ("thread / asyncio step", "stages_pct"),
                           ("package of the running code", "packages_pct"),
                           ("self time (leaf function)", "self_pct"), ("inclusive", "inclusive_pct")):
            print(f"  {title}:")
            for name, pct in p.get(key, []):
                print(f"    {pct:5.1f}%  {name}")
    cc, sc = c["cpu_cores_while_publishing"], s["steady_cpu_cores"]
    noise_c = cc.get("steal", 0.0) + cc.get("other", 0.0)
    noise_s = sc.get("steal", 0.0) + sc.get("other", 0.0)
    if max(noise_c, noise_s) >= 0.2:
        print(f"\nNOTE: CPU taken by the hypervisor (steal) or by other processes: {noise_c:.2f} cores during the "
              f"ceiling, {noise_s:.2f} during the service's steady window (of {res['machine']['nproc']}); "
              "rates on this machine move with it"
              + (": the ratio is not like for like." if abs(noise_c - noise_s) >= 0.2 else "."))
    if s["log_problems"]:
        print(f"\nservice log warnings/errors ({len(s['log_problems'])} shown, log {s['log_path']}):")
        for ln in s["log_problems"]:
            print("  " + ln)
    if not s["count_ok"]:
        print("\nFAIL: InfluxDB does not hold exactly the published readings "
              f"(published {s['published']}, stored metric {s['stored_metric']}, influx {s['influx_count']}, "
              f"rejected {s['rejected_metric']}, duplicates {s['duplicates_metric']}, "
              f"store write errors {s['store_write_errors_metric']})")
        print(f"--- service log tail ({s['log_path']}) ---\n{s.get('service_log_tail', '')}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of publishing to the service")
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--publishers", type=int, default=1, help="publisher processes (devices split between)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "ingest.json"))
    ap.add_argument("--ceiling-duration", type=float, default=20.0, help="max seconds of ceiling publishing")
    ap.add_argument("--ceiling-count", type=int, default=1_000_000, help="max messages for the ceiling")
    ap.add_argument("--max-backlog", type=int, default=50_000,
                    help="publishers stay at most this many messages ahead of the consumer (0: no limit)")
    ap.add_argument("--inflight", type=int, default=1000,
                    help="unacknowledged QoS 1 messages a publisher may have outstanding")
    ap.add_argument("--max-messages", type=int, default=15_000_000,
                    help="cap on pre-encoded readings for the service phase (memory)")
    ap.add_argument("--profile", type=float, default=0.0,
                    help="seconds of py-spy record of the service in the middle of the run (0 = off)")
    ap.add_argument("--profile-gil", action="store_true",
                    help="profile only the thread holding the GIL (py-spy --gil): what serialises the service")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (logs, data)")
    args = ap.parse_args(argv)
    if args.devices < args.publishers:
        ap.error("--devices must be >= --publishers")
    if args.profile and args.profile > args.duration - 2:
        args.profile = max(1.0, args.duration - 4)

    from tests import servers as servers_mod  # the repo root is on sys.path (top of file)

    def _terminated(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _terminated)  # clean up as on Ctrl-C
    ctx = mp.get_context("spawn")
    tmp = Path(tempfile.mkdtemp(prefix="cb-bench-"))
    log(f"workdir {tmp}")
    cleanup: list[Any] = []
    ok = False
    try:
        ceiling = run_ceiling(args, ctx, tmp, servers_mod, cleanup)
        service = run_service(args, ctx, tmp, servers_mod, cleanup, ceiling["rate_msg_s"])
        ratio = 100.0 * service["overall_rate"] / ceiling["rate_msg_s"] if ceiling["rate_msg_s"] else 0.0
        ratio_steady = 100.0 * service["steady_rate"] / ceiling["rate_msg_s"] if ceiling["rate_msg_s"] else 0.0
        slope = service["rss_mb"]["slope_mb_per_min_second_half"]
        v_tp = "PASS" if ratio >= TARGET_PCT else "FAIL"
        v_mem = "n/a" if slope is None else ("flat" if abs(slope) < FLAT_MB_PER_MIN else
                                            ("growing" if slope > 0 else "shrinking"))
        verdict = "PASS" if v_tp == "PASS" and service["count_ok"] else "FAIL"
        res = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"nproc": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform()},
            "args": vars(args),
            "ceiling": ceiling, "service": service,
            "ratio_pct_overall": round(ratio, 1), "ratio_pct_steady": round(ratio_steady, 1),
            "target_pct": TARGET_PCT, "verdict_throughput": v_tp, "verdict_memory": v_mem,
            "flat_threshold_mb_per_min": FLAT_MB_PER_MIN, "verdict": verdict,
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
