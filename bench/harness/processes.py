"""The benchmark's child processes: webhook receiver, background load, probe, broker floor, storm."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import traceback
from typing import Any

from bench.harness.topics import (
    BG_FMT,
    BURST_S,
    PROBE_FMT,
    PROBE_HIGH,
    PROBE_LOW,
    STORM_FMT,
    bg_topic,
    probe_topic,
    storm_topic,
)
from device_sim.mqtt import connect_packet, encode_string, publish_packet

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
