#!/usr/bin/env python3
"""Alert latency and alert storm benchmark: MQTT (QoS 1) -> `cbrain run` -> webhook receiver.

One run, with real Mosquitto and influxd on loopback and `cbrain run` as a subprocess configured
from the example site (examples/site.yaml, every recipient's webhook pointed at a receiver
process of this benchmark):

1. latency  - a probe process publishes, every --probe-interval s, a reading of the registered
              water_level device `wl-gate-east` (linfen-yicun, b03 -> grid g2), alternately
              level_cm 12.0 (fires blue `water.level` -> worker-g2) and -20.0 (clears it; the site
              file sets the rule's clear_for to 0s for this device, so each high reading is a new
              episode). Latency = time the receiver got the `fired` (or `resolved`) notification for
              worker-g2 - time.time() just before the probe's publish(). Notifications are paired
              with probes by the alert's `started_at`, which is the probe reading's `ts`.
              Measured with no background load (--idle-seconds), then under each --loads rate of
              quiet ebike_charger readings from --devices unregistered devices, published at an
              exactly paced rate (pre-encoded, paced against the start time) by a separate process,
              --seconds per load; after each load, probing continues until the service has taken
              every published message from the broker (bounded by --drain-timeout).
              A bare paho subscriber on the probe topic gives the broker's own publish -> receive
              latency at the same moments (the floor).
2. storm    - --storm-devices unregistered water_level devices (wl-storm-N, linfen-yicun: unplaced,
              so routed to committee-yicun) each publish one reading at level_cm 12 (blue), paced
              over --storm-seconds; measured: notifications delivered per second, time until all are
              delivered (or how many after --storm-wait s), the service's RSS before / peak / after,
              and cb_notifications_pending over time. Probes keep running: their latency shows what a
              storm does to an unrelated alert.
3. summary  - table on stdout, all figures and samples as JSON in --out.

Run: .venv/bin/python bench/alert_latency.py [--loads 1000,5000,10000] [--seconds 30]
     [--storm-devices 10000] [--storm-seconds 60] [--out bench/results/alerts.json] [--profile 10]
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
for _p in (str(REPO), str(BENCH)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from ingest_throughput import (  # noqa: E402  (helpers shared with the ingest benchmark)
    analyse_profile,
    cores_between,
    finish,
    http_get,
    log,
    machine_times,
    proc_cpu,
    py_spy_dump,
    start_profile,
    tail,
    thread_names,
)

from device_sim.mqtt import connect_packet, encode_string, publish_packet  # noqa: E402

PREFIX = "cb"
COMMUNITY = "linfen-yicun"
DATABASE = "bench_alerts"
PROBE_DEVICE = "wl-gate-east"  # registered: linfen-yicun, building b03 -> grid g2
PROBE_RECIPIENT = "worker-g2"
PROBE_RULE = "water.level"
STORM_RECIPIENT = "committee-yicun"
STORM_PREFIX = "wl-storm-"
PROBE_HIGH, PROBE_LOW = 12.0, -20.0
BG_FMT = (b'{"ts": %d, "seq": %d, "current_a": 2.0, "voltage_v": 220.0, "temperature_c": 30.0, '
          b'"charging": true}')
PROBE_FMT = b'{"ts": %d, "seq": %d, "level_cm": %.1f}'
STORM_FMT = b'{"ts": %d, "seq": 0, "level_cm": %.1f}'
SAMPLE_EVERY_S = 0.5
BURST_S = 0.001  # the background load sends what is due at most once a millisecond


def probe_topic() -> str:
    return f"{PREFIX}/{COMMUNITY}/water_level/{PROBE_DEVICE}/telemetry"


def bg_topic(i: int) -> str:
    return f"{PREFIX}/{COMMUNITY}/ebike_charger/ev-bg-{i:04d}/telemetry"


def storm_topic(i: int) -> str:
    return f"{PREFIX}/{COMMUNITY}/water_level/{STORM_PREFIX}{i}/telemetry"


# ---- child processes ----------------------------------------------------------------------------


def _child_init() -> None:
    """Children leave Ctrl-C to the parent, which stops them through their stop events (or terminates them)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _connect(paho: Any, client: Any, host: str, port: int, who: str, timeout: float = 15.0) -> None:
    client.connect(host, port, keepalive=60)
    deadline = time.monotonic() + timeout
    while not client.is_connected():
        client.loop(timeout=0.1)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{who}: no CONNACK from {host}:{port}")


def receiver_main(port: int, out_path: str, count: Any, ready: Any, stop: Any) -> None:
    """Webhook receiver (device_sim/receiver.py: HTTP/1.1 keep-alive, answers 200), recording each arrival.

    One line of JSON per request (arrival time.time() taken when the body has been read) in
    out_path, flushed per request so the parent can follow it.
    """
    _child_init()
    import orjson

    from device_sim.receiver import Received, Receiver

    out = open(out_path, "ab")  # noqa: SIM115  (closed below)

    def record(r: Received) -> None:  # called under the receiver's lock, one request at a time
        rec: dict[str, Any] = {"t": r.at, "path": r.path, "id": r.header("X-CB-Event-Id") or None,
                               "bytes": len(r.body)}
        try:
            d = orjson.loads(r.body)
            a = d.get("alert") or {}
            rec.update(event=d.get("event"), recipient=d.get("recipient"), rule=a.get("rule"),
                       level=a.get("level"), device=a.get("device_id"), alert=a.get("id"),
                       started_at=a.get("started_at"), updated_at=a.get("updated_at"), value=a.get("value"))
            g = d.get("group")
            if isinstance(g, dict):  # a storm's grouped message: every member alert with its event id
                rec["group"] = [[eid, m.get("device_id"), m.get("rule"), m.get("started_at"), m.get("updated_at"),
                                 m.get("id"), m.get("level")]
                                for eid, m in zip(g.get("event_ids") or [], g.get("alerts") or [], strict=False)]
        except Exception as exc:  # record it anyway
            rec["error"] = f"{type(exc).__name__}: {exc}"
        out.write(orjson.dumps(rec) + b"\n")
        out.flush()
        count.value += 1

    try:
        receiver = Receiver([("127.0.0.1", port)], on_received=record, keep=False).start()
    except OSError:
        ready.set()
        raise
    ready.set()
    stop.wait()
    receiver.stop()
    out.close()


class RawPublisher:
    """A minimal MQTT 3.1.1 QoS 1 publisher on a plain socket, for the background load.

    paho's publish() costs ~50 µs of CPU per message here, half a core at 10,000/s on a 2-core machine
    that also runs the service and the broker. This one sends pre-encoded PUBLISH packets (each with its
    own packet id) in one write per burst and counts the broker's PUBACKs, checking that they come back
    in order with the ids sent (Mosquitto acknowledges QoS 1 in order): ~2 µs per message. The load is
    the same: QoS 1 from one client, every message acknowledged before it is counted.
    """

    def __init__(self, host: str, port: int, client_id: str, timeout: float = 15.0) -> None:
        import socket

        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Clean session, keepalive 0 (the load sends all the time).
        self.sock.sendall(connect_packet(client_id, keepalive=0))
        connack = b""
        while len(connack) < 4:
            got = self.sock.recv(4 - len(connack))
            if not got:
                raise RuntimeError(f"background publisher: {host}:{port} closed the connection")
            connack += got
        if connack[0] != 0x20 or connack[3] != 0:
            raise RuntimeError(f"background publisher: CONNACK {connack.hex()}")
        self.sock.setblocking(False)
        self.acked = 0  # PUBACKs received, in order
        self.bad_acks = 0  # PUBACKs whose packet id was not the next one sent
        self._rest = b""

    @staticmethod
    def packet(topic: bytes, payload: bytes, index: int) -> bytes:
        """PUBLISH QoS 1 of message `index` (packet id index % 65535 + 1); topic as from encode_string."""
        return publish_packet(topic, payload, qos=1, packet_id=index % 65535 + 1)

    def send(self, data: bytes, stop_at: float) -> None:
        """Write data, reading PUBACKs meanwhile (the broker must not block on a full socket)."""
        import select

        view = memoryview(data)
        while view:
            try:
                sent = self.sock.send(view)
                view = view[sent:]
            except BlockingIOError:
                if time.time() > stop_at:
                    raise RuntimeError("background publisher: the broker stopped reading") from None
                select.select([self.sock], [self.sock], [], 0.05)
            self.read_acks(0)

    def read_acks(self, timeout: float) -> None:
        """Count the PUBACKs that have arrived, waiting up to timeout for the first."""
        import select

        if timeout > 0:
            select.select([self.sock], [], [], timeout)
        while True:
            try:
                got = self.sock.recv(65536)
            except BlockingIOError:
                return
            if not got:
                raise RuntimeError("background publisher: the broker closed the connection")
            buf = self._rest + got
            whole = len(buf) - len(buf) % 4
            for off in range(0, whole, 4):
                if buf[off] != 0x40 or buf[off + 1] != 2 or int.from_bytes(buf[off + 2:off + 4], "big") != (
                        self.acked % 65535 + 1):
                    self.bad_acks += 1
                self.acked += 1
            self._rest = buf[whole:]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.setblocking(True)
            self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        self.sock.close()


def background_main(host: str, port: int, rate: float, seconds: float, start_at: float, idx0: int,
                    n_dev: int, inflight_max: int, sent: Any, ready: Any, stop: Any, results: Any) -> None:
    """Quiet ebike_charger readings at exactly `rate` per second from start_at (epoch s) for `seconds`.

    Message i (global index idx0 + i) goes to device (idx0 + i) % n_dev with seq (idx0 + i) // n_dev
    and ts = its scheduled time in epoch ms; all are encoded (as whole PUBLISH packets) before start_at.
    Publishing paces against the start time (message i is due at start_at + i / rate), at QoS 1 with at
    most inflight_max unacknowledged, through RawPublisher.
    """
    _child_init()
    report: dict[str, Any] = {"rate": rate, "idx0": idx0, "client": "raw MQTT 3.1.1"}
    try:
        count = round(rate * seconds)
        inflight_max = min(inflight_max, 60000)  # packet ids must not wrap onto unacknowledged ones
        t = time.monotonic()
        start_ms = int(start_at * 1000)
        topics = [encode_string(bg_topic(d)) for d in range(n_dev)]
        packets = [RawPublisher.packet(topics[(idx0 + i) % n_dev],
                                       BG_FMT % (start_ms + int(i * 1000 / rate), (idx0 + i) // n_dev), i)
                   for i in range(count)]
        report["pregen_s"] = round(time.monotonic() - t, 3)
        pub = RawPublisher(host, port, f"bench-bg-{idx0}-{os.getpid()}")
        ready.set()
        while time.time() < start_at and not stop.is_set():
            time.sleep(min(0.05, max(0.0, start_at - time.time())))
        report["late_start_s"] = round(max(0.0, time.time() - start_at), 4)
        i = 0
        max_lag = 0.0
        window_waits = 0
        hard_end = start_at + seconds + 10.0  # bound: give up a schedule the broker cannot take
        t_first = t_last = None
        while i < count and not stop.is_set():
            now = time.time()
            if now > hard_end:
                break
            due = min(count, int((now - start_at) * rate) + 1)
            if i < due:
                lag = now - (start_at + i / rate)
                if lag > max_lag:
                    max_lag = lag
                if t_first is None:
                    t_first = now
                upto = min(due, pub.acked + inflight_max)
                if upto <= i:
                    window_waits += 1
                    pub.read_acks(0.002)
                    continue
                pub.send(b"".join(packets[i:upto]), hard_end)
                i = upto
                t_last = time.time()
                sent.value = i
            else:
                # Bursts at least BURST_S apart: at 10,000/s the next message is due every 0.1 ms, and a
                # system call or two per message would cost more than the messages.
                pub.read_acks(min(0.002, max(BURST_S - (now - (t_last or 0.0)), start_at + i / rate - now)))
        sent.value = i
        ack_deadline = time.monotonic() + 30
        while pub.acked < i and time.monotonic() < ack_deadline:
            pub.read_acks(0.05)
        pub.close()
        span = (t_last - t_first) if t_first is not None and t_last is not None else 0.0
        report.update(planned=count, sent=i, acked=pub.acked, bad_acks=pub.bad_acks, t_first=t_first, t_last=t_last,
                      achieved_rate=round((i - 1) / span, 1) if span > 0 else None,
                      max_lag_s=round(max_lag, 4), window_waits=window_waits)
        if pub.bad_acks:
            report["error"] = f"{pub.bad_acks} PUBACKs out of order or with unknown packet ids"
    except BaseException as exc:
        report["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        ready.set()
    results.put(report)


def probe_main(host: str, port: int, interval: float, start_at: float, k0: int, max_probes: int, n: Any,
               ready: Any, stop: Any, results: Any) -> None:
    """Every `interval` s from start_at: one reading of the probe device, high and low in turn (high first).

    Each probe k (from k0): seq k, ts = max(now ms, previous + 1); its publish time is time.time() taken
    just before publish(). Records (k, high, ts_ms, t_pub, t_puback) go to `results` as they are made.
    """
    _child_init()
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    try:
        acks: dict[int, float] = {}
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-probe-{os.getpid()}",
                             protocol=paho.MQTTv5)
        client.on_publish = lambda _c, _u, mid, _rc, _p: acks.__setitem__(mid, time.time())
        client.connect(host, port, keepalive=60)
        client.loop_start()
        deadline = time.monotonic() + 15
        while not client.is_connected():
            if time.monotonic() > deadline:
                raise RuntimeError("probe: not connected after 15 s")
            time.sleep(0.05)
        ready.set()
        topic = probe_topic()
        k, last_ts = k0, 0
        next_t = start_at
        pending: list[tuple[int, bool, int, float, int]] = []
        while k < k0 + max_probes and not stop.is_set():
            if stop.wait(max(0.0, next_t - time.time())):
                break
            high = (k - k0) % 2 == 0
            ts = max(int(time.time() * 1000), last_ts + 1)
            last_ts = ts
            payload = PROBE_FMT % (ts, k, PROBE_HIGH if high else PROBE_LOW)
            t_pub = time.time()
            info = client.publish(topic, payload, qos=1)
            pending.append((k, high, ts, t_pub, info.mid))
            k += 1
            n.value = k - k0
            next_t += interval
            if next_t < time.time():  # fell behind (machine stalled): keep the interval, skip the gap
                next_t = time.time() + interval
            # hand over the probes whose PUBACK came (or that are old enough to report without it)
            keep = []
            for rec in pending:
                pk, ph, pts, pt, mid = rec
                if mid in acks or time.time() - pt > 10:
                    results.put((pk, ph, pts, pt, acks.pop(mid, None)))
                else:
                    keep.append(rec)
            pending = keep
        end = time.monotonic() + 5
        while pending and time.monotonic() < end:
            time.sleep(0.05)
            keep = []
            for pk, ph, pts, pt, mid in pending:
                if mid in acks:
                    results.put((pk, ph, pts, pt, acks.pop(mid)))
                else:
                    keep.append((pk, ph, pts, pt, mid))
            pending = keep
        for pk, ph, pts, pt, _mid in pending:
            results.put((pk, ph, pts, pt, None))
        client.disconnect()
        client.loop_stop()
    except BaseException as exc:
        results.put(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
        ready.set()
    results.put(("done",))


def floor_main(host: str, port: int, ready: Any, stop: Any, results: Any) -> None:
    """A bare paho subscriber (MQTT 5, QoS 1) on the probe topic: (seq, receive time) per message."""
    _child_init()
    import orjson
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    recs: list[tuple[int, float]] = []
    try:
        def on_message(_c: Any, _u: Any, m: Any) -> None:
            t = time.time()
            with contextlib.suppress(Exception):
                recs.append((int(orjson.loads(m.payload)["seq"]), t))

        subscribed = [False]
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-floor-{os.getpid()}",
                             protocol=paho.MQTTv5)
        client.on_message = on_message
        client.on_subscribe = lambda *_a: subscribed.__setitem__(0, True)
        _connect(paho, client, host, port, "floor subscriber")
        client.subscribe(probe_topic(), qos=1)
        deadline = time.monotonic() + 15
        while not subscribed[0]:
            client.loop(timeout=0.1)
            if time.monotonic() > deadline:
                raise RuntimeError("floor subscriber: not subscribed after 15 s")
        ready.set()
        while not stop.is_set():
            client.loop(timeout=0.05)
        client.disconnect()
        results.put({"recs": recs})
    except BaseException as exc:
        results.put({"recs": recs, "error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"})
        ready.set()


def storm_main(host: str, port: int, n_dev: int, seconds: float, level_cm: float, start_at: float, sent: Any,
               ready: Any, stop: Any, results: Any) -> None:
    """One reading at level_cm (12: blue) from each of n_dev storm devices, paced evenly over `seconds`."""
    _child_init()
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    report: dict[str, Any] = {}
    try:
        rate = n_dev / seconds
        start_ms = int(start_at * 1000)
        topics = [storm_topic(i) for i in range(n_dev)]
        payloads = [STORM_FMT % (start_ms + int(i * 1000 / rate), level_cm) for i in range(n_dev)]
        acked = [0]

        def on_publish(_c: Any, _u: Any, _mid: int, _rc: Any, _p: Any) -> None:
            acked[0] += 1

        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-storm-{os.getpid()}",
                             protocol=paho.MQTTv5)
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        client.on_publish = on_publish
        _connect(paho, client, host, port, "storm publisher")
        ready.set()
        while time.time() < start_at and not stop.is_set():
            client.loop(timeout=min(0.05, max(0.0, start_at - time.time())))
        t_pub: list[float] = []
        i = 0
        hard_end = start_at + seconds + 10.0
        while i < n_dev and not stop.is_set() and time.time() < hard_end:
            now = time.time()
            due = min(n_dev, int((now - start_at) * rate) + 1)
            while i < due:
                t_pub.append(time.time())
                client.publish(topics[i], payloads[i], qos=1)
                i += 1
            sent.value = i
            client.loop(timeout=min(0.005, max(0.0, start_at + i / rate - time.time())))
        ack_deadline = time.monotonic() + 30
        while acked[0] < i and time.monotonic() < ack_deadline:
            client.loop(timeout=0.05)
        client.disconnect()
        client.loop(timeout=0.2)
        report.update(sent=i, acked=acked[0], t_pub=t_pub, rate=rate)
    except BaseException as exc:
        report["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        ready.set()
    results.put(report)


# ---- helpers -------------------------------------------------------------------------------------


def parse_metrics_labels(text: str) -> tuple[dict[str, float], dict[str, float]]:
    """Prometheus text -> ({name: value summed over labels}, {series with labels: value})."""
    sums: dict[str, float] = defaultdict(float)
    series: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        try:
            name_part, value = line.rsplit(" ", 1)
            v = float(value)
        except ValueError:
            continue
        sums[name_part.split("{", 1)[0]] += v
        series[name_part] = v
    return dict(sums), series


def pctl(values: list[float], q: float) -> float | None:
    """Percentile with linear interpolation between closest ranks (q in 0..100)."""
    if not values:
        return None
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def stats_ms(seconds: list[float]) -> dict[str, Any]:
    """n, p50, p90, p99, max, mean in milliseconds."""
    ms = [x * 1000.0 for x in seconds]
    if not ms:
        return {"n": 0}
    return {"n": len(ms), "p50": round(pctl(ms, 50) or 0, 1), "p90": round(pctl(ms, 90) or 0, 1),
            "p99": round(pctl(ms, 99) or 0, 1), "max": round(max(ms), 1), "min": round(min(ms), 1),
            "mean": round(sum(ms) / len(ms), 1)}


def fmt_stats(s: dict[str, Any]) -> str:
    if not s or not s.get("n"):
        return "-"
    return f"{s['p50']:.0f}/{s['p90']:.0f}/{s['p99']:.0f}/{s['max']:.0f} (n={s['n']})"


def rfc3339_ms(text: str | None) -> int | None:
    """'2025-01-02T03:04:05.678Z' -> epoch milliseconds."""
    if not text:
        return None
    try:
        dt = datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return round(dt.timestamp() * 1000)


class Records:
    """Follows the receiver's output file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.all: list[dict[str, Any]] = []
        self._rest = b""

    def read_new(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self._rest + data
        lines = data.split(b"\n")
        self._rest = lines.pop()
        new = [json.loads(ln) for ln in lines if ln.strip()]
        self.all.extend(new)
        return new


def expand(records: list[dict[str, Any]], seen: set[str] | None = None) -> tuple[list[dict[str, Any]], int]:
    """One entry per notification (a grouped message stands for each member alert), deduplicated by event id
    as receivers must; and how many were duplicates."""
    seen = set() if seen is None else seen
    out: list[dict[str, Any]] = []
    dups = 0
    for r in records:
        if "group" in r:
            members = r["group"]
            for eid, dev, rule, started, updated, aid, level in members:
                if eid in seen:
                    dups += 1
                    continue
                seen.add(eid)
                out.append({"t": r["t"], "id": eid, "event": r.get("event"), "recipient": r.get("recipient"),
                            "rule": rule, "device": dev, "started_at": started, "updated_at": updated, "alert": aid,
                            "level": level, "grouped": True, "message": r.get("id"), "group_size": len(members)})
        else:
            eid = r.get("id")
            if eid in seen:
                dups += 1
                continue
            if eid:
                seen.add(eid)
            out.append({**r, "grouped": False, "message": eid, "group_size": 1})
    return out, dups


class Sampler(threading.Thread):
    """Every SAMPLE_EVERY_S: the service's /metrics, RSS, CPU, and what was published so far."""

    def __init__(self, base: str, sproc: Any, published: Any, receiver_count: Any) -> None:
        super().__init__(name="sampler", daemon=True)
        self.base = base
        self.sproc = sproc
        self.published = published
        self.receiver_count = receiver_count
        self.samples: list[dict[str, Any]] = []
        self.stop_ev = threading.Event()
        self.errors = 0
        self._lock = threading.Lock()

    def run(self) -> None:
        next_t = time.time()
        while not self.stop_ev.is_set():
            self.sample()
            next_t += SAMPLE_EVERY_S
            self.stop_ev.wait(max(0.0, next_t - time.time()))

    def sample(self) -> dict[str, Any]:
        t = time.time()
        m: dict[str, float] = {}
        series: dict[str, float] = {}
        code: int | str = "error"
        try:
            code, body = http_get(f"{self.base}/metrics", 5.0)
            if code == 200:
                m, series = parse_metrics_labels(body.decode())
        except OSError as exc:
            code = f"{type(exc).__name__}"
        if code != 200:
            self.errors += 1
        s: dict[str, Any] = {"t": t, "metrics_ms": round((time.time() - t) * 1000, 1), "metrics_status": code}
        try:
            s["rss_mb"] = round(self.sproc.memory_info().rss / 2**20, 2)
        except Exception:
            s["rss_mb"] = None
        s["cpu_s"] = proc_cpu(self.sproc)
        if m:
            s.update(received=int(m.get("cb_messages_received_total", 0)),
                     stored=int(m.get("cb_readings_stored_total", 0)),
                     inbox=int(m.get("cb_mqtt_inbox", 0)),
                     pending=int(m.get("cb_notifications_pending", 0)),
                     delivered=int(m.get("cb_notifications_delivered_total", 0)),
                     failed=int(m.get("cb_notifications_failed_total", 0)),
                     retries=int(m.get("cb_notifications_retries_total", 0)),
                     commits=int(m.get("cb_spool_commits_total", 0)),
                     spool=int(m.get("cb_spool_points", 0)),
                     rejected=int(m.get("cb_readings_rejected_total", 0)),
                     duplicates=int(m.get("cb_readings_duplicates_total", 0)),
                     fired=int(series.get('cb_alert_events_total{level="blue",event="fired"}', 0)),
                     open_alerts=int(m.get("cb_alerts_open", 0)))
        s["published"] = self.published()
        s["receiver"] = self.receiver_count.value
        with self._lock:
            self.samples.append(s)
        return s

    def latest(self) -> dict[str, Any]:
        with self._lock:
            for s in reversed(self.samples):
                if "received" in s:
                    return dict(s)
        return {}

    def between(self, t0: float, t1: float) -> list[dict[str, Any]]:
        with self._lock:
            return [s for s in self.samples if t0 <= s["t"] <= t1]


# ---- the run -------------------------------------------------------------------------------------


RULE_OVERRIDES = [
    # each high probe is a new episode: it clears on the next (low) probe at once
    {"rule": "water.level", "match": {"device": PROBE_DEVICE}, "set": {"clear_for": "0s"}},
    # -20 -> 12 is a rise of 32 cm: keep water.rising out of the measurement
    {"rule": "water.rising", "match": {"device": PROBE_DEVICE}, "set": {"rise": 1000}},
    # background and storm devices go quiet between phases; their device.offline alerts would land in
    # the middle of the storm (ebike after 90 s, water_level after 180 s of silence)
    {"rule": "device.offline", "match": {"community": COMMUNITY}, "set": {"after_intervals": 100000}},
]


def alert_defaults() -> dict[str, Any]:
    """The service's default storm grouping (kernel.settings.AlertSettings), for the report."""
    try:
        from kernel.settings import AlertSettings

        d = AlertSettings()
        return {k: getattr(d, k) for k in ("storm_threshold", "storm_window_s", "group_wait_s") if hasattr(d, k)}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


class Run:
    """Everything one run starts, and what it measured.

    Two parts, each with its own `cbrain run` (own state directory, MQTT client id and HTTP port) on the
    same broker, influxd, receiver and floor subscriber: "latency" (idle + loads) and "storm".
    """

    def __init__(self, args: argparse.Namespace, tmp: Path, cleanup: list[Any]) -> None:
        self.args = args
        self.tmp = tmp
        self.cleanup = cleanup
        self.ctx = mp.get_context("spawn")
        self.bg_values: list[Any] = []
        self.probe_values: list[Any] = []
        self.storm_sent = self.ctx.Value("q", 0, lock=False)
        self.receiver_count = self.ctx.Value("q", 0, lock=False)
        self.probes: dict[int, dict[str, Any]] = {}
        self.probe_next = 0
        self.phases: list[dict[str, Any]] = []
        self.watched: dict[str, Any] = {}
        self.profiles: dict[str, Any] = {}
        self.problems: list[str] = []
        self.parts: dict[str, dict[str, Any]] = {}
        self.part: dict[str, Any] = {}

    def published(self) -> int:
        """Messages published to the service's topics so far, by every publisher of this run."""
        return int(sum(v.value for v in self.bg_values) + sum(v.value for v in self.probe_values)
                   + self.storm_sent.value)

    @property
    def sampler(self) -> Sampler:
        s: Sampler = self.part["sampler"]
        return s

    @property
    def svc(self) -> subprocess.Popen[bytes]:
        p: subprocess.Popen[bytes] = self.part["svc"]
        return p

    # ---- start-up ----

    def start_common(self) -> None:
        import psutil

        from tests import servers as servers_mod

        tmp, ctx = self.tmp, self.ctx
        self.free_port = servers_mod.free_port
        log("starting influxd and Mosquitto")
        self.influx = servers_mod.InfluxD(tmp / "influxd")
        self.cleanup.append(self.influx.stop)
        self.influx.start()
        self.broker = servers_mod.Mosquitto(tmp / "mosquitto")
        self.cleanup.append(self.broker.stop)
        self.broker.start()

        self.recv_port = servers_mod.free_port()
        self.recv_path = tmp / "received.jsonl"
        self.recv_ready, self.recv_stop = ctx.Event(), ctx.Event()
        self.recv_proc = ctx.Process(target=receiver_main, name="bench-receiver", daemon=True,
                                     args=(self.recv_port, str(self.recv_path), self.receiver_count,
                                           self.recv_ready, self.recv_stop))
        self.recv_proc.start()
        self.cleanup.append(lambda: self._stop_proc(self.recv_proc, self.recv_stop))
        if not self.recv_ready.wait(30) or not self.recv_proc.is_alive():
            raise RuntimeError("receiver did not start")
        self.records = Records(self.recv_path)
        self.recv_base = f"http://127.0.0.1:{self.recv_port}"

        self.floor_ready, self.floor_stop, self.floor_q = ctx.Event(), ctx.Event(), ctx.Queue()
        self.floor_proc = None
        self.floor_recs: list[tuple[int, float]] = []
        if not self.args.no_floor:
            self.floor_proc = ctx.Process(target=floor_main, name="bench-floor", daemon=True,
                                          args=(self.broker.host, self.broker.port, self.floor_ready, self.floor_stop,
                                                self.floor_q))
            self.floor_proc.start()
            self.cleanup.append(lambda: self._stop_proc(self.floor_proc, self.floor_stop))
            if not self.floor_ready.wait(30):
                raise RuntimeError("floor subscriber not ready")
        self.watched = {"mosquitto": psutil.Process(self.broker.pid), "influxd": psutil.Process(self.influx.pid),
                        "receiver": psutil.Process(self.recv_proc.pid), "bench": psutil.Process()}
        if self.floor_proc is not None:
            self.watched["floor"] = psutil.Process(self.floor_proc.pid)

    def start_service(self, name: str, alerts: dict[str, Any] | None) -> None:
        """A fresh `cbrain run` for one part: own directory, state, MQTT client id and HTTP port."""
        import psutil
        import yaml

        from tests.service import recipients_at, site_config

        d = self.tmp / name
        d.mkdir(parents=True, exist_ok=True)
        extra: dict[str, Any] = {"recipients": recipients_at(self.recv_base), "rule_overrides": RULE_OVERRIDES,
                                 "mqtt": {"client_id": f"cbrain-bench-{name}"}}
        if alerts:
            extra["alerts"] = alerts
        cfg = site_config(d, mqtt_url=self.broker.url, influx_url=self.influx.url, database=DATABASE, prefix=PREFIX,
                          extra=extra, name="site.yaml")
        raw = yaml.safe_load(cfg.read_text(encoding="utf-8"))
        base = f"http://127.0.0.1:{raw['http']['port']}"
        cbrain = Path(sys.executable).parent / "cbrain"
        if not cbrain.exists():
            cbrain = REPO / ".venv" / "bin" / "cbrain"
        argv = [str(cbrain), "run", "--config", str(cfg)]
        setpriv = shutil.which("setpriv")
        if setpriv:  # the service dies with us even if we are SIGKILLed
            argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CB_")}
        env["PYTHONUNBUFFERED"] = "1"
        log_path = d / "service.log"
        log(f"{name}: service {' '.join(argv)} (alerts settings {raw.get('alerts') or 'default'}; log {log_path})")
        with log_path.open("wb") as out:
            svc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   cwd=d, env=env, start_new_session=True)
        part: dict[str, Any] = {"name": name, "svc": svc, "base": base, "log_path": log_path,
                                "alerts_settings": raw.get("alerts") or {}, "config": str(cfg)}
        self.parts[name] = part
        self.part = part

        def _stop() -> None:
            if svc.poll() is None:
                svc.send_signal(signal.SIGTERM)
                try:
                    svc.wait(20)
                except subprocess.TimeoutExpired:
                    svc.kill()
                    svc.wait()

        self.cleanup.append(_stop)
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
        part["sproc"] = psutil.Process(svc.pid)
        self.watched["service"] = part["sproc"]
        offset = self.published()  # what earlier parts published was for the other service
        part["published_offset"] = offset
        part["sampler"] = Sampler(base, part["sproc"], lambda: self.published() - offset, self.receiver_count)
        part["sampler"].start()
        self.cleanup.append(part["sampler"].stop_ev.set)
        log(f"{name}: service healthy (pid {svc.pid}, {base}); receiver {self.recv_base}")

    def start_probe(self, interval: float, planned_s: float) -> None:
        import psutil

        ctx = self.ctx
        n = ctx.Value("q", 0, lock=False)
        self.probe_values.append(n)
        ready, stop, q = ctx.Event(), ctx.Event(), ctx.Queue()
        start_at = time.time() + 1.0
        proc = ctx.Process(target=probe_main, name="bench-probe", daemon=True,
                           args=(self.broker.host, self.broker.port, interval, start_at, self.probe_next,
                                 int(planned_s / interval) + 10, n, ready, stop, q))
        proc.start()
        self.cleanup.append(lambda: self._stop_proc(proc, stop))
        if not ready.wait(30):
            raise RuntimeError("probe publisher not ready")
        self.probe = {"proc": proc, "stop": stop, "q": q, "n": n, "start_at": start_at, "interval": interval}
        self.watched["probe"] = psutil.Process(proc.pid)
        log(f"{self.part['name']}: probing every {interval:g} s ({PROBE_DEVICE}: level_cm {PROBE_HIGH:g} / "
            f"{PROBE_LOW:g} in turn)")

    def stop_probe(self) -> None:
        """Stop the probe publisher and collect its probes; give the last one time to be told."""
        time.sleep(max(1.0, 2 * self.args.probe_interval))
        pr = self.probe
        pr["stop"].set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                item = pr["q"].get(timeout=0.5)
            except Exception:
                if not pr["proc"].is_alive() and pr["q"].empty():
                    break
                continue
            if item[0] == "done":
                break
            if item[0] == "error":
                self.problems.append("probe publisher: " + item[1])
                continue
            k, high, ts, t_pub, t_ack = item
            self.probes[k] = {"k": k, "high": high, "ts": ts, "t_pub": t_pub, "t_ack": t_ack, "part": self.part["name"]}
        pr["proc"].join(5)
        self.probe_next = max(self.probes, default=-1) + 1
        self.watched.pop("probe", None)

    def stop_service(self) -> None:
        """Wait (bounded) for the last notifications, then record the service's final state and stop it."""
        part = self.part
        end = time.time() + 10
        while time.time() < end and self.svc.poll() is None:
            s = self.sampler.sample()
            if s.get("received", -1) >= self.sampler.published() and s.get("pending", 1) == 0:
                break
            time.sleep(0.25)
        time.sleep(0.5)
        self.sampler.stop_ev.set()
        self.sampler.join(10)
        self.records.read_new()
        dump = part["log_path"].parent / "pyspy-dump.txt"
        with contextlib.suppress(Exception):
            py_spy_dump(self.svc.pid, dump)
        part["thread_names"] = thread_names(dump)
        part["py_spy_dump"] = dump.read_text(errors="replace") if dump.exists() else None
        part["final_metrics"] = ""
        try:
            code, body = http_get(f"{part['base']}/metrics", 5.0)
            part["final_metrics"] = body.decode(errors="replace") if code == 200 else f"HTTP {code}"
        except OSError as exc:
            part["final_metrics"] = f"{type(exc).__name__}: {exc}"
        self.svc.send_signal(signal.SIGTERM)
        try:
            part["exit"] = self.svc.wait(30)
        except subprocess.TimeoutExpired:
            self.svc.kill()
            self.svc.wait()
            part["exit"] = "killed after 30 s"
        text = part["log_path"].read_text(errors="replace") if part["log_path"].exists() else ""
        part["log_problems"] = log_problems(text)
        ss = self.sampler.samples
        part["metrics_scrapes"] = {"total": len(ss), "failed": self.sampler.errors,
                                   "statuses": dict(Counter(str(s.get("metrics_status")) for s in ss))}
        self.watched.pop("service", None)
        log(f"{part['name']}: service stopped (exit {part['exit']})")

    def stop_floor(self) -> None:
        if self.floor_proc is None:
            return
        self.floor_stop.set()
        try:
            rep = self.floor_q.get(timeout=15)
            self.floor_recs = [(int(r[0]), float(r[1])) for r in rep.get("recs", [])]
            if rep.get("error"):
                self.problems.append("floor subscriber: " + rep["error"])
        except Exception:
            self.problems.append("floor subscriber did not report")
        self.floor_proc.join(5)

    def _stop_proc(self, proc: Any, stop: Any) -> None:
        if proc is None:
            return
        stop.set()
        if proc.is_alive():
            proc.join(5)
        if proc.is_alive():
            proc.terminate()
            proc.join(3)
        if proc.is_alive():
            proc.kill()
            proc.join(3)

    def check_alive(self) -> None:
        if self.svc.poll() is not None:
            raise RuntimeError(f"service exited with {self.svc.returncode}\n{tail(self.part['log_path'], 60)}")

    def snapshot(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        snap: dict[str, Any] = {k: proc_cpu(p) for k, p in {**self.watched, **(extra or {})}.items()}
        snap.update(machine_times())
        try:
            threads = {t.id: t.user_time + t.system_time for t in self.part["sproc"].threads()}
        except Exception:
            threads = {}
        return {"t": time.time(), "cpu": snap, "threads": threads}

    # ---- phases ----

    def idle(self) -> None:
        a = self.args
        time.sleep(max(0.0, self.probe["start_at"] - time.time()))
        if a.idle_seconds <= 0:
            return
        log(f"idle: probing with no background load for {a.idle_seconds:g} s")
        s0 = self.snapshot()
        end = time.time() + a.idle_seconds
        while time.time() < end:
            self.check_alive()
            time.sleep(min(0.5, max(0.0, end - time.time())))
        s1 = self.snapshot()
        self.phases.append({"name": "idle", "kind": "load", "rate": 0, "t0": s0["t"], "t1": s1["t"],
                            "part": self.part["name"], "cpu": (s0, s1)})

    def load(self, rate: float, idx0: int) -> int:
        """One background load: publish for --seconds, then wait for the service to catch up."""
        import psutil

        a, ctx = self.args, self.ctx
        count = round(rate * a.seconds)
        lead = 2.0 + count / 400_000  # time to pre-encode before the planned start
        start_at = time.time() + lead
        sent = ctx.Value("q", 0, lock=False)
        self.bg_values.append(sent)
        ready, stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
        proc = ctx.Process(target=background_main, name=f"bench-bg-{int(rate)}", daemon=True,
                           args=(self.broker.host, self.broker.port, rate, a.seconds, start_at, idx0, a.devices,
                                 a.inflight, sent, ready, stop, results))
        log(f"load {rate:,.0f}/s: {count:,} readings from {a.devices} devices over {a.seconds:g} s "
            f"(start in {lead:.1f} s)")
        proc.start()
        self.cleanup.append(lambda: self._stop_proc(proc, stop))
        if not ready.wait(60):
            raise RuntimeError("background publisher not ready")
        pub = {"publisher": psutil.Process(proc.pid)}
        time.sleep(max(0.0, start_at - time.time()))
        s0 = self.snapshot(pub)
        prof = None
        prof_path = self.tmp / f"pyspy-load-{int(rate)}.raw"
        end = start_at + a.seconds
        next_line = time.time() + 5
        while time.time() < end:
            self.check_alive()
            if a.profile and prof is None and time.time() >= start_at + max(0.0, (a.seconds - a.profile) / 2):
                prof = start_profile(self.svc.pid, a.profile, prof_path, False)
            if time.time() >= next_line:
                next_line += 5
                self._progress(f"load {rate:,.0f}/s", start_at)
            time.sleep(min(0.25, max(0.0, end - time.time())))
        s1 = self.snapshot(pub)
        report = self._collect_one(results, proc, a.seconds + 60)
        stop.set()
        proc.join(5)
        if "error" in report:
            raise RuntimeError("background publisher failed:\n" + report["error"])
        # drain: until the service has taken from the broker everything published so far
        t_end = time.time()
        drained_at = None
        deadline = t_end + a.drain_timeout
        while time.time() < deadline:
            self.check_alive()
            s = self.sampler.sample()
            if s.get("received", -1) >= s["published"]:
                drained_at = s["t"]
                break
            if time.time() >= next_line:
                next_line += 5
                self._progress(f"drain after {rate:,.0f}/s", start_at)
            time.sleep(0.25)
        s2 = self.snapshot()
        if prof is not None:
            try:
                prof.wait(a.profile + 30)
            except subprocess.TimeoutExpired:
                prof.kill()
                prof.wait()
            self.profiles[f"load {int(rate)}/s"] = analyse_profile(prof_path)
        after = self.sampler.latest()
        log(f"load {rate:,.0f}/s: published {report['sent']:,} (achieved {report.get('achieved_rate') or 0:,.0f}/s, "
            f"max lag {report['max_lag_s'] * 1000:.0f} ms); "
            + (f"service caught up {drained_at - t_end:.1f} s after the load ended" if drained_at else
               f"service NOT caught up after {a.drain_timeout:g} s (backlog "
               f"{after.get('published', 0) - after.get('received', 0):,})"))
        self.phases.append({"name": f"load {rate:g}/s", "kind": "load", "rate": rate, "t0": start_at, "t1": t_end,
                            "t_drained": drained_at, "drain_deadline": deadline, "publisher": report,
                            "part": self.part["name"], "cpu": (s0, s1), "cpu_drain": (s1, s2)})
        time.sleep(2.0)  # let the last notifications arrive before the next phase
        return idx0 + int(report["sent"])

    def storm(self) -> None:
        import psutil

        a, ctx = self.args, self.ctx
        time.sleep(max(0.0, self.probe["start_at"] + 2.0 - time.time()))
        self.records.read_new()
        rss_before = round(self.part["sproc"].memory_info().rss / 2**20, 2)
        ready, stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
        start_at = time.time() + 2.0
        proc = ctx.Process(target=storm_main, name="bench-storm", daemon=True,
                           args=(self.broker.host, self.broker.port, a.storm_devices, a.storm_seconds,
                                 a.storm_level_cm, start_at, self.storm_sent, ready, stop, results))
        alerting = a.storm_level_cm >= 10.0  # water.level blue from 10 cm
        log(f"storm: {a.storm_devices:,} water_level devices, one reading each (level_cm {a.storm_level_cm:g}"
            f"{'' if alerting else ': no alert, a quiet comparison'}) over {a.storm_seconds:g} s "
            f"({a.storm_devices / a.storm_seconds:,.0f}/s); RSS before {rss_before:.1f} MB")
        proc.start()
        self.cleanup.append(lambda: self._stop_proc(proc, stop))
        if not ready.wait(60):
            raise RuntimeError("storm publisher not ready")
        pub = {"publisher": psutil.Process(proc.pid)}
        time.sleep(max(0.0, start_at - time.time()))
        s0 = self.snapshot(pub)
        prof = None
        prof_path = self.tmp / "pyspy-storm.raw"
        seen: set[str] = set()
        covered: set[str] = set()
        messages = 0
        t_all = None
        pub_end = start_at + a.storm_seconds
        deadline = pub_end + a.storm_wait
        next_line = time.time() + 5
        s1 = None
        while time.time() < deadline:
            self.check_alive()
            new = self.records.read_new()
            for n in expand(new, seen)[0]:
                if str(n.get("device", "")).startswith(STORM_PREFIX) and n.get("event") == "fired":
                    covered.add(str(n["device"]))
            messages += sum(1 for r in new if str(r.get("device", "")).startswith(STORM_PREFIX))
            now = time.time()
            if s1 is None and now >= pub_end:
                s1 = self.snapshot(pub)
            if a.profile and prof is None and now >= start_at + max(0.0, (a.storm_seconds - a.profile) / 2):
                prof = start_profile(self.svc.pid, a.profile, prof_path, False)
            if alerting and len(covered) >= a.storm_devices:
                t_all = now
                break
            if not alerting and self.storm_sent.value >= a.storm_devices:
                last = self.sampler.sample()
                if last.get("received", -1) >= last["published"]:
                    t_all = now  # the service has taken every reading
                    break
            if now >= next_line:
                next_line += 5
                last = self.sampler.latest()
                log(f"  storm t={now - start_at:5.1f}s published={self.storm_sent.value:>6,} alerts told="
                    f"{len(covered):>6,} in {messages:,} messages, pending={last.get('pending', '?')} "
                    f"rss={last.get('rss_mb', 0):.0f}MB")
            time.sleep(0.25)
        if s1 is None:
            s1 = self.snapshot(pub)
        s2 = self.snapshot()
        report = self._collect_one(results, proc, 60)
        stop.set()
        proc.join(5)
        if "error" in report:
            raise RuntimeError("storm publisher failed:\n" + report["error"])
        if prof is not None:
            try:
                prof.wait(a.profile + 30)
            except subprocess.TimeoutExpired:
                prof.kill()
                prof.wait()
            self.profiles["storm"] = analyse_profile(prof_path)
        # RSS after: once delivery is done, a few seconds of quiet
        settle_end = time.time() + a.storm_settle
        while time.time() < settle_end:
            self.check_alive()
            time.sleep(0.25)
        rss_after = round(self.part["sproc"].memory_info().rss / 2**20, 2)
        self.records.read_new()
        log(f"storm: {len(covered):,} of {a.storm_devices:,} storm alerts told in {messages:,} messages"
            + (f", done {t_all - start_at:.1f} s after the first publish" if t_all else
               f" after waiting {a.storm_wait:g} s past the last publish")
            + f"; RSS after {rss_after:.1f} MB")
        self.phases.append({"name": "storm", "kind": "storm", "alerting": alerting, "t0": start_at,
                            "t_pub_end": pub_end, "t1": t_all or time.time(), "t_all": t_all, "publisher": report,
                            "rss_before": rss_before, "rss_after": rss_after, "part": self.part["name"],
                            "cpu": (s0, s1), "cpu_after_pub": (s1, s2)})

    def _progress(self, what: str, t0: float) -> None:
        s = self.sampler.latest()
        if not s:
            return
        log(f"  {what} t={time.time() - t0:5.1f}s published={s['published']:>9,} received={s['received']:>9,} "
            f"backlog={s['published'] - s['received']:>7,} inbox={s['inbox']:,} pending={s['pending']} "
            f"rss={s['rss_mb']:.0f}MB")

    @staticmethod
    def _collect_one(q: Any, proc: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return dict(q.get(timeout=0.5))
            except Exception:
                if not proc.is_alive() and q.empty():
                    break
        return {"error": f"{proc.name} did not report (exit {proc.exitcode})"}

    # ---- analysis ----

    def analyse(self) -> dict[str, Any]:
        a = self.args
        notes, dups = expand(self.records.all)
        probes = self.probes
        by_ts = {p["ts"]: k for k, p in probes.items() if p["high"]}
        high_pub = sorted((p["t_pub"], k) for k, p in probes.items() if p["high"])
        high_times = [t for t, _ in high_pub]

        fired: dict[int, dict[str, Any]] = {}
        resolved: dict[int, dict[str, Any]] = {}
        fallback = 0
        other: Counter[str] = Counter()
        storm: list[dict[str, Any]] = []
        for r in notes:
            dev = str(r.get("device") or "")
            if dev == PROBE_DEVICE and r.get("rule") == PROBE_RULE and r.get("recipient") == PROBE_RECIPIENT \
                    and r.get("event") in ("fired", "resolved"):
                k = by_ts.get(rfc3339_ms(r.get("started_at")) or -1)
                if k is None:  # the most recent high probe before it
                    i = bisect.bisect_right(high_times, r["t"]) - 1
                    if i < 0:
                        other[f"{r.get('recipient')} {r.get('event')} {r.get('rule')} (no probe)"] += 1
                        continue
                    k = high_pub[i][1]
                    fallback += 1
                if r["event"] == "fired":
                    fired[k] = r
                else:
                    resolved[k + 1] = r
            elif dev.startswith(STORM_PREFIX):
                storm.append(r)
            else:
                other[f"{r.get('recipient')} {r.get('event')} {r.get('rule')} {r.get('level')} {dev}"] += 1

        def lat(k: int, r: dict[str, Any]) -> float:
            return float(r["t"]) - float(probes[k]["t_pub"])

        floor = dict(self.floor_recs)
        phase_out = []
        for w in self._windows():
            ks = [k for k, p in probes.items() if w["t0"] <= p["t_pub"] < w["t1"]]
            highs = [k for k in ks if probes[k]["high"]]
            lows = [k for k in ks if not probes[k]["high"]]
            f_lat = [lat(k, fired[k]) for k in highs if k in fired]
            r_lat = [lat(k, resolved[k]) for k in lows if k in resolved]
            # where the time goes: publish -> alert made (updated_at, the commit's clock, ms) -> received
            before = [(rfc3339_ms(fired[k].get("updated_at")) or 0) / 1000 - probes[k]["t_pub"]
                      for k in highs if k in fired]
            after = [fired[k]["t"] - (rfc3339_ms(fired[k].get("updated_at")) or 0) / 1000
                     for k in highs if k in fired]
            fl = [floor[k] - probes[k]["t_pub"] for k in ks if k in floor]
            trend = []
            step = a.trend_bucket
            t = w["t0"]
            while t < w["t1"] and step > 0:
                b = [lat(k, fired[k]) for k in highs if k in fired and t <= probes[k]["t_pub"] < t + step] + \
                    [lat(k, resolved[k]) for k in lows if k in resolved and t <= probes[k]["t_pub"] < t + step]
                if b:
                    trend.append({"from_s": round(t - w["t0"], 1), "n": len(b),
                                  "p50_ms": round((pctl(b, 50) or 0) * 1000, 1), "max_ms": round(max(b) * 1000, 1)})
                t += step
            entry = {"name": w["name"], "kind": w["kind"], "part": w["phase"]["part"], "rate": w.get("rate"),
                     "seconds": round(w["t1"] - w["t0"], 2), "probes": len(ks),
                     "fired_ms": stats_ms(f_lat), "resolved_ms": stats_ms(r_lat),
                     "all_ms": stats_ms(f_lat + r_lat),
                     "fired_grouped": sum(1 for k in highs if k in fired and fired[k].get("grouped")),
                     "fired_missing": [k for k in highs if k not in fired],
                     "resolved_missing": [k for k in lows if k not in resolved],
                     "publish_to_alert_made_ms": stats_ms(before),
                     "alert_made_to_received_ms": stats_ms(after),
                     "broker_floor_ms": stats_ms(fl), "floor_missing": sum(1 for k in ks if k not in floor),
                     "trend": trend}
            entry.update(self._service_side(w))
            phase_out.append(entry)

        result: dict[str, Any] = {
            "probes": len(probes), "probe_interval_s": a.probe_interval,
            "storm_probe_interval_s": a.storm_probe_interval,
            "messages_received": len(self.records.all), "notifications": len(notes), "duplicate_deliveries": dups,
            "matched_by_fallback": fallback, "other_notifications": dict(other.most_common()),
            "phases": phase_out,
        }
        st = next((p for p in self.phases if p["kind"] == "storm"), None)
        if st is not None:
            result["storm"] = self._storm(st, storm)
        result["profiles"] = self.profiles
        return result

    def _windows(self) -> list[dict[str, Any]]:
        out = []
        for p in self.phases:
            if p["kind"] == "load":
                out.append({"name": p["name"], "kind": "load", "rate": p["rate"], "t0": p["t0"], "t1": p["t1"],
                            "phase": p})
                if p["rate"]:
                    t_d = p["t_drained"] or p["drain_deadline"]
                    out.append({"name": f"  drain after {p['rate']:g}/s", "kind": "drain", "rate": p["rate"],
                                "t0": p["t1"], "t1": max(t_d, p["t1"] + 0.01), "phase": p})
            else:
                out.append({"name": "during storm", "kind": "storm", "t0": p["t0"], "t1": p["t1"], "phase": p})
        return out

    def _service_side(self, w: dict[str, Any]) -> dict[str, Any]:
        """Rates, backlog, CPU of the window from the samples and CPU snapshots."""
        p = w["phase"]
        sampler: Sampler = self.parts[p["part"]]["sampler"]
        ss = [s for s in sampler.between(w["t0"], w["t1"]) if "received" in s]
        out: dict[str, Any] = {}
        if len(ss) >= 2:
            dt = ss[-1]["t"] - ss[0]["t"]
            out["service_received_per_s"] = round((ss[-1]["received"] - ss[0]["received"]) / dt, 1) if dt > 0 else None
            backlog = [s["published"] - s["received"] for s in ss]
            out["backlog_max"] = max(backlog)
            out["backlog_end"] = backlog[-1]
            out["pending_max"] = max(s["pending"] for s in ss)
            out["metrics_ms_max"] = max(s["metrics_ms"] for s in ss)
            commits = ss[-1]["commits"] - ss[0]["commits"]
            if dt > 0 and commits > 0:
                out["commits_per_s"] = round(commits / dt, 1)
                out["messages_per_commit"] = round((ss[-1]["received"] - ss[0]["received"]) / commits, 1)
        if w["kind"] == "load":
            s0, s1 = p["cpu"]
            out["cpu_cores"] = cores_between(s0["cpu"], s1["cpu"], s1["t"] - s0["t"])
            out["service_thread_cores"] = self._threads(p["part"], s0, s1)
            if p.get("publisher"):
                pub = p["publisher"]
                out["publisher"] = {k: pub.get(k) for k in ("planned", "sent", "acked", "achieved_rate", "max_lag_s",
                                                            "late_start_s", "window_waits", "pregen_s")}
            if p.get("rate"):
                out["caught_up_s_after_load"] = round(p["t_drained"] - p["t1"], 2) if p["t_drained"] else None
        elif w["kind"] == "drain" and p.get("cpu_drain"):
            s0, s1 = p["cpu_drain"]
            out["cpu_cores"] = cores_between(s0["cpu"], s1["cpu"], s1["t"] - s0["t"])
        return out

    def _threads(self, part: str, s0: dict[str, Any], s1: dict[str, Any]) -> dict[str, float]:
        dt = s1["t"] - s0["t"]
        if dt <= 0:
            return {}
        names = self.parts[part].get("thread_names") or {}
        out = {f"{tid} {names.get(tid, '?')}": round((s1["threads"][tid] - s0["threads"][tid]) / dt, 2)
               for tid in s1["threads"] if tid in s0["threads"]}
        return dict(sorted(out.items(), key=lambda kv: -kv[1])[:6])

    def _storm(self, st: dict[str, Any], notes: list[dict[str, Any]]) -> dict[str, Any]:
        a = self.args
        t0 = st["t0"]
        pub = st["publisher"]
        t_pub = pub.get("t_pub") or []
        fired = [r for r in notes if r.get("event") == "fired"]
        by_dev: dict[int, dict[str, Any]] = {}
        for r in fired:
            try:
                by_dev[int(str(r["device"])[len(STORM_PREFIX):])] = r
            except ValueError:
                continue
        lat = [by_dev[i]["t"] - t_pub[i] for i in by_dev if i < len(t_pub)]
        arrivals = sorted(r["t"] for r in fired)
        msgs: dict[str, float] = {}
        for r in fired:
            msgs.setdefault(str(r.get("message")), r["t"])
        msg_bytes = [int(r.get("bytes") or 0) for r in self.records.all
                     if str(r.get("device", "")).startswith(STORM_PREFIX)]
        sizes = Counter(str(r.get("message")) for r in fired)
        grouped = [r for r in fired if r.get("grouped")]
        per_s: Counter[int] = Counter(int(t - t0) for t in arrivals)
        msg_per_s: Counter[int] = Counter(int(t - t0) for t in msgs.values())
        span = range(0, int(arrivals[-1] - t0) + 1) if arrivals else range(0)
        series = [per_s.get(i, 0) for i in span]
        sampler: Sampler = self.parts[st["part"]]["sampler"]
        ss = [s for s in sampler.between(t0 - 1.5, st["t1"] + a.storm_settle + 1) if "received" in s]
        rss = [s["rss_mb"] for s in ss if s.get("rss_mb") is not None]
        s0, s1 = st["cpu"]
        s1b, s2 = st["cpu_after_pub"]
        recipients = Counter(str(r.get("recipient")) for r in notes)
        events = Counter(str(r.get("event")) for r in notes)
        t_last_pub = t_pub[-1] if t_pub else st["t_pub_end"]
        final = self.parts[st["part"]].get("final_metrics") or ""
        grouped_metric = next((float(ln.rsplit(" ", 1)[1]) for ln in final.splitlines()
                               if ln.startswith("cb_notifications_grouped_total")), None)

        def rate_in(t_a: float, t_b: float) -> float | None:
            n = sum(1 for t in arrivals if t_a <= t < t_b)
            return round(n / (t_b - t_a), 1) if t_b - t_a > 1.0 and n else None

        return {
            "devices": a.storm_devices, "publish_seconds": a.storm_seconds, "level_cm": a.storm_level_cm,
            "alerting": st["alerting"], "published": pub.get("sent"), "acked_by_broker": pub.get("acked"),
            "publish_rate": round(pub.get("rate") or 0, 1),
            "service_alert_settings": self.parts[st["part"]].get("alerts_settings") or "default",
            "notifications": len(notes), "fired_notifications": len(fired), "distinct_devices": len(by_dev),
            "messages": len(msgs), "fired_in_groups": len(grouped),
            "group_size_max": max(sizes.values()) if sizes else 0,
            "message_bytes_max": max(msg_bytes, default=0),
            "group_size_mean": round(len(fired) / len(msgs), 1) if msgs else None,
            "grouped_metric": grouped_metric,
            "recipients": dict(recipients), "events": dict(events),
            "all_delivered": st["t_all"] is not None,
            "seconds_first_publish_to_all_delivered": round(st["t_all"] - t0, 2) if st["t_all"] else None,
            "seconds_last_publish_to_all_delivered": round(st["t_all"] - t_last_pub, 2) if st["t_all"] else None,
            "delivered_per_s_max": max(series) if series else 0,
            "delivered_per_s_mean": round(len(arrivals) / (arrivals[-1] - arrivals[0]), 1)
            if len(arrivals) > 1 and arrivals[-1] > arrivals[0] else None,
            "delivered_per_s_while_publishing": rate_in(t0, t_last_pub),
            "delivered_per_s_after_publishing": rate_in(t_last_pub, arrivals[-1]) if arrivals else None,
            "delivered_per_s": series,
            "messages_per_s": [msg_per_s.get(i, 0) for i in span],
            "latency_publish_to_received_ms": stats_ms(lat),
            "latency_single_ms": stats_ms([by_dev[i]["t"] - t_pub[i] for i in by_dev
                                           if i < len(t_pub) and not by_dev[i].get("grouped")]),
            "latency_grouped_ms": stats_ms([by_dev[i]["t"] - t_pub[i] for i in by_dev
                                            if i < len(t_pub) and by_dev[i].get("grouped")]),
            "rss_mb": {"before": st["rss_before"], "peak": max(rss) if rss else None, "after": st["rss_after"]},
            "pending_max": max((s["pending"] for s in ss), default=None),
            "pending_series": [(round(s["t"] - t0, 1), s["pending"]) for s in ss],
            "rss_series": [(round(s["t"] - t0, 1), s["rss_mb"]) for s in ss],
            "delivered_metric_series": [(round(s["t"] - t0, 1), s["delivered"]) for s in ss],
            "open_alerts_end": ss[-1].get("open_alerts") if ss else None,
            "cpu_cores_while_publishing": cores_between(s0["cpu"], s1["cpu"], s1["t"] - s0["t"]),
            "cpu_cores_after_publishing": cores_between(s1b["cpu"], s2["cpu"], s2["t"] - s1b["t"]),
            "service_thread_cores_while_publishing": self._threads(st["part"], s0, s1),
            "service_thread_cores_after_publishing": self._threads(st["part"], s1b, s2),
        }


# ---- report -------------------------------------------------------------------------------------


def every(series: list[tuple[float, Any]], step: float) -> list[tuple[float, Any]]:
    """The first point at or after each multiple of step (from the first point)."""
    out: list[tuple[float, Any]] = []
    nxt = None
    for t, v in series:
        if nxt is None or t >= nxt:
            out.append((t, v))
            nxt = (t if nxt is None else nxt) + step
    return out


def log_problems(text: str) -> dict[str, int]:
    """WARNING/ERROR lines (timestamps cut) and each traceback's exception line, counted."""
    import re

    out: Counter[str] = Counter()
    lines = text.splitlines()
    for i, ln in enumerate(lines):
        if ln.startswith("Traceback"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
                j += 1
            # the frame of ours nearest the exception, and the exception
            ours = [x.strip() for x in lines[i:j] if x.strip().startswith('File "/work/main/')
                    and "/.venv/" not in x]
            where = ours[-1] if ours else ""
            out[f"Traceback: {lines[j] if j < len(lines) else '?'}  [{where}]"] += 1
        elif " WARNING " in ln or " ERROR " in ln or ln.startswith("ERROR:"):
            out[re.sub(r"^\S+ \S+ ", "", ln)[:200]] += 1
    return dict(out.most_common(20))


def print_summary(res: dict[str, Any]) -> None:
    r = res["result"]
    print()
    print("=" * 118)
    print(f"alert latency: reading published (QoS 1) -> webhook received by {PROBE_RECIPIENT}, ms "
          f"p50/p90/p99/max (n); probe every {r['probe_interval_s']:g} s (storm part: "
          f"{r['storm_probe_interval_s']:g} s), high/low in turn")
    print(f"machine: {res['machine']['nproc']} cores, Python {res['machine']['python']}; "
          f"load average before {res['loadavg_before']}, after {res['loadavg_after']}")
    for name, part in res["parts"].items():
        print(f"{name} part: service alerts settings {part['alerts_settings'] or 'as the site file (defaults)'}"
              f" (defaults {res['alert_defaults']})")
    print("-" * 118)
    hdr = (f"{'window':<22} {'bg/s (sent)':>13} {'svc recv/s':>10} {'backlog max/end':>16}  "
           f"{'fired':<26} {'resolved':<26} {'broker floor':<22}")
    print(hdr)
    for p in r["phases"]:
        if p["kind"] == "drain" and not p["probes"]:
            continue  # caught up at once: nothing was probed while draining
        pub = p.get("publisher") or {}
        bg = (f"{p['rate']:,.0f} ({pub.get('achieved_rate') or 0:,.0f})" if p["kind"] == "load" and p["rate"]
              else ("0" if p["kind"] == "load" else ""))
        recv = f"{p['service_received_per_s']:,.0f}" if p.get("service_received_per_s") is not None else "-"
        bl = f"{p.get('backlog_max', 0):,}/{p.get('backlog_end', 0):,}" if "backlog_max" in p else "-"
        fl = p["broker_floor_ms"]
        floor = f"{fl['p50']:.1f}/{fl['p99']:.1f}/{fl['max']:.1f}" if fl.get("n") else "-"
        fired = fmt_stats(p["fired_ms"]) + (f" {p['fired_grouped']} grouped" if p.get("fired_grouped") else "")
        print(f"{p['name']:<22} {bg:>13} {recv:>10} {bl:>16}  {fired:<26} "
              f"{fmt_stats(p['resolved_ms']):<26} {floor:<22}")
    print("-" * 118)
    print("broker floor = bare paho subscriber on the probe topic, p50/p99/max ms. "
          "backlog = published - cb_messages_received_total.")
    for p in r["phases"]:
        if p["kind"] == "drain" and not p["probes"]:
            continue
        extra = []
        if p.get("fired_missing") or p.get("resolved_missing"):
            extra.append(f"missing fired {len(p['fired_missing'])}, resolved {len(p['resolved_missing'])}")
        if p.get("caught_up_s_after_load") is not None:
            extra.append(f"caught up {p['caught_up_s_after_load']:.1f} s after the load ended")
        elif p["kind"] == "load" and p.get("rate"):
            extra.append("NOT caught up within --drain-timeout")
        pm, am = p["publish_to_alert_made_ms"], p["alert_made_to_received_ms"]
        if pm.get("n"):
            extra.append(f"publish->alert made p50 {pm['p50']:.0f} ms, alert made->received p50 {am['p50']:.0f} ms")
        if p.get("commits_per_s"):
            extra.append(f"{p['commits_per_s']:g} commits/s of {p['messages_per_commit']:g} messages")
        cc = p.get("cpu_cores") or {}
        if cc:
            extra.append("cores " + ", ".join(f"{k} {v:.2f}" for k, v in cc.items()
                                              if k in ("service", "mosquitto", "publisher", "receiver", "steal",
                                                       "other", "machine")))
        pub = p.get("publisher") or {}
        if pub.get("max_lag_s") is not None:
            extra.append(f"publisher max lag {pub['max_lag_s'] * 1000:.0f} ms")
        if p.get("trend") and (p["kind"] in ("drain", "storm") or p.get("rate", 0) >= 5000):
            tr = p["trend"]
            pts = tr if len(tr) <= 6 else [tr[0], tr[len(tr) // 4], tr[len(tr) // 2], tr[3 * len(tr) // 4], tr[-1]]
            extra.append("trend (s: p50/max ms) " + ", ".join(f"{x['from_s']:g}: {x['p50_ms']:.0f}/{x['max_ms']:.0f}"
                                                             for x in pts))
        if extra:
            print(f"{p['name'].strip():<22} " + "; ".join(extra))
    st = r.get("storm")
    if st:
        print("-" * 118)
        print(f"alert storm: {st['devices']:,} unregistered water_level devices, one reading each "
              f"(level_cm {st['level_cm']:g}{'' if st['alerting'] else ', no alert: quiet comparison'}) over "
              f"{st['publish_seconds']:g} s ({st['publish_rate']:,.0f}/s) -> {', '.join(st['recipients']) or '-'}")
        rows = [
            ("published / acked by broker", f"{st['published']:,} / {st['acked_by_broker']:,}"),
            ("notifications received", f"{st['notifications']:,} ({st['fired_notifications']:,} fired, "
                                       f"{st['distinct_devices']:,} devices) in {st['messages']:,} HTTP messages: "
                                       f"{st['fired_in_groups']:,} inside grouped messages (largest group "
                                       f"{st['group_size_max']:,}, largest message {st['message_bytes_max']:,} bytes), "
                                       f"{st['fired_notifications'] - st['fired_in_groups']:,} one per message"),
            ("all delivered" if st["alerting"] else "service took every reading",
             (f"yes, {st['seconds_first_publish_to_all_delivered']:.1f} s after the first publish "
              f"({st['seconds_last_publish_to_all_delivered']:.1f} s after the last)")
             if st["all_delivered"] else "NO (bounded wait ran out)"),
            ("alerts told per second", f"max {st['delivered_per_s_max']:,}, mean {st['delivered_per_s_mean'] or 0:,.0f}"
                                     f"; {st['delivered_per_s_while_publishing'] or 0:,.0f}/s while readings arrived"
                                     + (f", {st['delivered_per_s_after_publishing']:,.0f}/s after"
                                        if st["delivered_per_s_after_publishing"] else "")),
            ("publish -> received ms", f"all {fmt_stats(st['latency_publish_to_received_ms'])}; one per message "
                                       f"{fmt_stats(st['latency_single_ms'])}; grouped "
                                       f"{fmt_stats(st['latency_grouped_ms'])}"),
            ("cb_notifications_pending", f"max {st['pending_max']}; every 5 s: "
                                         + " ".join(str(v) for _t, v in every(st["pending_series"], 5.0))),
            ("RSS MB every 5 s", " ".join(f"{v:.0f}" for _t, v in every(st["rss_series"], 5.0))),
            ("service RSS MB", f"before {st['rss_mb']['before']:.1f}, peak {st['rss_mb']['peak'] or 0:.1f}, "
                               f"after {st['rss_mb']['after']:.1f}"),
            ("cores while publishing", ", ".join(f"{k} {v:.2f}" for k, v in st["cpu_cores_while_publishing"].items()
                                                 if k in ("service", "mosquitto", "receiver", "publisher", "steal",
                                                          "other"))),
            ("service threads (publishing)", ", ".join(f"{k} {v:.2f}" for k, v in
                                                       list(st["service_thread_cores_while_publishing"].items())[:4])),
        ]
        w = max(len(k) for k, _ in rows)
        for k, v in rows:
            print(f"  {k:<{w}}  {v}")
    if r["other_notifications"]:
        print("-" * 118)
        print("other notifications: " + ", ".join(f"{k} x{v}" for k, v in r["other_notifications"].items()))
    if r["duplicate_deliveries"] or r["matched_by_fallback"]:
        print(f"duplicate deliveries {r['duplicate_deliveries']}, probes matched by time instead of started_at "
              f"{r['matched_by_fallback']}")
    for name, prof in (r.get("profiles") or {}).items():
        print(f"\npy-spy profile of the service during {name} ({prof.get('samples', 0)} samples):")
        for title, key in (("thread / asyncio step", "stages_pct"), ("self time", "self_pct")):
            print(f"  {title}:")
            for fn, pct in prof.get(key, [])[:10]:
                print(f"    {pct:5.1f}%  {fn}")
    for name, part in res["parts"].items():
        ms = part.get("metrics_scrapes") or {}
        if ms.get("failed"):
            print(f"\n{name} part: /metrics scrapes that failed: {ms['failed']} of {ms['total']} "
                  f"(status: {ms['statuses']})")
        if part.get("log_problems"):
            print(f"\n{name} part: service log warnings/errors (count):")
            for ln, n in part["log_problems"].items():
                print(f"  {n:>5}  {ln[:220]}")
    for pr in res.get("problems", []):
        print(f"\nPROBLEM: {pr}")
    print("=" * 118)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loads", default="1000,5000,10000", help="background readings per second, comma-separated")
    ap.add_argument("--seconds", type=float, default=30.0, help="seconds of each background load")
    ap.add_argument("--idle-seconds", type=float, default=10.0, help="seconds of probing with no background load")
    ap.add_argument("--devices", type=int, default=1000, help="background devices")
    ap.add_argument("--probe-interval", type=float, default=0.5)
    ap.add_argument("--latency-storm-threshold", type=int, default=0,
                    help="alerts.storm_threshold of the latency part's service (0: no grouping, as a probe fires "
                         "more often than the default threshold allows; -1: the service's default)")
    ap.add_argument("--storm-threshold", type=int, default=-1,
                    help="alerts.storm_threshold of the storm part's service (-1: the service's default)")
    ap.add_argument("--storm-probe-interval", type=float, default=6.25,
                    help="probe interval during the storm: one new probe alert per 12.5 s stays within the "
                         "default grouping threshold (5 a minute), so the probe itself is not grouped")
    ap.add_argument("--drain-timeout", type=float, default=120.0,
                    help="after a load, wait at most this long for the service to take the backlog")
    ap.add_argument("--inflight", type=int, default=20000, help="unacknowledged QoS 1 messages per publisher")
    ap.add_argument("--storm-devices", type=int, default=10000, help="0 skips the storm")
    ap.add_argument("--storm-seconds", type=float, default=60.0)
    ap.add_argument("--storm-level-cm", type=float, default=12.0,
                    help="level of the storm readings: 12 fires blue; below 10 none fires (a quiet comparison)")
    ap.add_argument("--storm-wait", type=float, default=120.0,
                    help="after the last storm reading, wait at most this long for every notification")
    ap.add_argument("--storm-settle", type=float, default=10.0, help="seconds of quiet before 'RSS after'")
    ap.add_argument("--trend-bucket", type=float, default=5.0, help="seconds per bucket of the latency trend")
    ap.add_argument("--no-floor", action="store_true", help="no bare paho subscriber (broker floor)")
    ap.add_argument("--profile", type=float, default=0.0,
                    help="seconds of py-spy record (--nonblocking) in the middle of each load and of the storm")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "alerts.json"))
    ap.add_argument("--keep-tmp", action="store_true")
    args = ap.parse_args(argv)
    args.loads = [float(x) for x in str(args.loads).split(",") if x.strip()]
    if any(x <= 0 for x in args.loads) or args.seconds <= 0 or min(args.probe_interval,
                                                                    args.storm_probe_interval) < 0.05:
        ap.error("loads and --seconds must be > 0, probe intervals >= 0.05 s")
    if args.profile:
        args.profile = min(args.profile, max(1.0, args.seconds - 2))

    def _terminated(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _terminated)
    tmp = Path(tempfile.mkdtemp(prefix="cb-bench-alerts-"))
    log(f"workdir {tmp}")
    cleanup: list[Any] = []
    ok = False
    load_before = [round(x, 2) for x in os.getloadavg()]
    try:
        run = Run(args, tmp, cleanup)
        run.start_common()
        if args.loads or args.idle_seconds > 0:
            lt = args.latency_storm_threshold
            run.start_service("latency", {"storm_threshold": lt} if lt >= 0 else None)
            planned = args.idle_seconds + len(args.loads) * (args.seconds + args.drain_timeout + 15) + 30
            run.start_probe(args.probe_interval, planned)
            run.idle()
            idx = 0
            for rate in args.loads:
                idx = run.load(rate, idx)
            run.stop_probe()
            run.stop_service()
        if args.storm_devices > 0:
            stt = args.storm_threshold
            run.start_service("storm", {"storm_threshold": stt} if stt >= 0 else None)
            run.start_probe(args.storm_probe_interval, args.storm_seconds + args.storm_wait + args.storm_settle + 30)
            run.storm()
            run.stop_probe()
            run.stop_service()
        run.stop_floor()
        result = run.analyse()
        parts = {name: {k: v for k, v in p.items() if k not in ("svc", "sproc", "sampler")}
                 for name, p in run.parts.items()}
        res = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"nproc": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform()},
            "loadavg_before": load_before, "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "args": vars(args), "rule_overrides": RULE_OVERRIDES, "alert_defaults": alert_defaults(),
            "result": result,
            "parts": parts,
            "problems": run.problems,
            "probes": sorted(run.probes.values(), key=lambda p: p["k"]),
            "samples": {name: p["sampler"].samples for name, p in run.parts.items()},
            "phases_raw": [{k: v for k, v in p.items() if k not in ("cpu", "cpu_drain", "cpu_after_pub")}
                           | {"publisher": {k: v for k, v in (p.get("publisher") or {}).items() if k != "t_pub"}}
                           for p in run.phases],
        }
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1, default=str))
        print_summary(res)
        log(f"wrote {out}")
        ok = not run.problems
        return 0 if ok else 1
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    except Exception as exc:
        log(f"FAILED: {type(exc).__name__}: {exc}")
        traceback.print_exc()
        return 1
    finally:
        finish(cleanup, tmp, keep=args.keep_tmp or not ok)


if __name__ == "__main__":
    sys.exit(main())
