"""A paced MQTT 3.1.1 QoS 1 load over several connections, for brokers that take each connection's
publishes one after the other (NATS's MQTT listener stores each QoS 1 publish in its replicated stream
before the PUBACK): the cluster benchmark's publisher (bench/cluster_throughput.py).

One child process holds `connections` raw sockets (bench/harness/processes.RawPublisher: pre-encoded
PUBLISH packets, one write per burst, ~2 µs of CPU a message), spread round-robin over the given ports.
Device d always publishes on connection d % connections, so one device's readings reach the broker, and
its stream, in their order. Message i (global index idx0 + i) is device (idx0 + i) % devices, with seq
(idx0 + i) // devices (counting up per device across steps) and ts = its scheduled time in epoch ms
(start_at + i / rate): distinct per device as long as devices >= rate / 1000.
"""

from __future__ import annotations

import bisect
import os
import select
import time
import traceback
from collections import deque
from typing import Any

from bench.harness.processes import RawPublisher, _child_init
from device_sim.mqtt import encode_string

PAYLOAD_FMT = (b'{"ts": %d, "seq": %d, "current_a": 2.0, "voltage_v": 220.0, "temperature_c": 30.0, '
               b'"charging": true}')
MEASUREMENT = "ebike_charger"
FIELD = "current_a"
BURST_S = 0.001  # what is due goes at most once a millisecond
PACKET_IDS = 65535


def device_topic(prefix: str, community: str, device: str) -> str:
    return f"{prefix}/{community}/{MEASUREMENT}/{device}/telemetry"


def load_main(ports: list[int], connections: int, topics: list[str], rate: float, seconds: float,
              start_at: float, idx0: int, inflight: int, sent: Any, ready: Any, stop: Any, results: Any) -> None:
    """Publish `rate` readings/s from start_at (epoch s) for `seconds` over `connections` connections.

    topics[d] is device d's topic. Each connection keeps at most `inflight` messages unacknowledged; a
    connection at its window waits while the others go on. Reports planned/sent/acked, the achieved rate,
    how far behind schedule it ever was, how often a window was full, its own CPU over the sending, and
    the PUBACK latency (send -> acknowledgement of the last message of each burst, p50/p90/p99/max in ms):
    for NATS's MQTT listener the time until the cluster has stored the reading on a majority of nodes.
    """
    _child_init()
    report: dict[str, Any] = {"rate": rate, "idx0": idx0, "connections": connections,
                              "client": "raw MQTT 3.1.1, QoS 1"}
    pubs: list[RawPublisher] = []
    try:
        count = round(rate * seconds)
        n_dev = len(topics)
        inflight = min(inflight, PACKET_IDS - 1)  # packet ids must not wrap onto unacknowledged ones
        t = time.monotonic()
        start_ms = int(start_at * 1000)
        encoded = [encode_string(tp) for tp in topics]
        # Per connection: the global positions (within this step) of its messages, and their packets.
        where: list[list[int]] = [[] for _ in range(connections)]
        packets: list[list[bytes]] = [[] for _ in range(connections)]
        for i in range(count):
            d = (idx0 + i) % n_dev
            k = d % connections
            body = PAYLOAD_FMT % (start_ms + int(i * 1000 / rate), (idx0 + i) // n_dev)
            where[k].append(i)
            packets[k].append(RawPublisher.packet(encoded[d], body, len(packets[k])))
        report["pregen_s"] = round(time.monotonic() - t, 3)
        for k in range(connections):
            pubs.append(RawPublisher("127.0.0.1", ports[k % len(ports)], f"bench-load-{idx0}-{k}-{os.getpid()}"))
        ready.set()
        while time.time() < start_at and not stop.is_set():
            time.sleep(min(0.05, max(0.0, start_at - time.time())))
        report["late_start_s"] = round(max(0.0, time.time() - start_at), 4)
        cpu0 = os.times()
        pos = [0] * connections  # next packet of each connection
        total = 0
        max_lag = 0.0
        window_waits = 0
        hard_end = start_at + seconds + 10.0  # bound: give up a schedule the broker cannot take
        t_first = t_last = None
        socks = [p.sock for p in pubs]
        bursts: list[deque[tuple[int, float]]] = [deque() for _ in pubs]  # (packets sent up to, when), unacked
        acks = _Acks(pubs, socks, bursts)
        while total < count and not stop.is_set():
            now = time.time()
            if now > hard_end:
                break
            due = min(count, int((now - start_at) * rate) + 1)
            if total < due:
                max_lag = max(max_lag, now - (start_at + total / rate))
                if t_first is None:
                    t_first = now
                moved = 0
                for k, pub in enumerate(pubs):
                    upto = min(bisect.bisect_left(where[k], due), pub.acked + inflight)
                    if upto > pos[k]:
                        bursts[k].append((upto, time.time()))
                        pub.send(b"".join(packets[k][pos[k]:upto]), hard_end)
                        moved += upto - pos[k]
                        pos[k] = upto
                    elif pos[k] < bisect.bisect_left(where[k], due):
                        window_waits += 1
                total += moved
                sent.value = total
                if moved:
                    t_last = time.time()
                else:
                    acks.read(0.002)
            else:
                wait = min(0.002, max(BURST_S - (now - (t_last or 0.0)), start_at + total / rate - now))
                acks.read(max(0.0, wait))
        sent.value = total
        t_sent = time.time()
        cpu1 = os.times()
        ack_deadline = time.monotonic() + 30
        while sum(p.acked for p in pubs) < total and time.monotonic() < ack_deadline:
            acks.read(0.05)
        acked = sum(p.acked for p in pubs)
        span = (t_last - t_first) if t_first is not None and t_last is not None else 0.0
        report.update(planned=count, sent=total, acked=acked, bad_acks=sum(p.bad_acks for p in pubs),
                      t_first=t_first, t_last=t_last, t_sent=t_sent,
                      achieved_rate=round((total - 1) / span, 1) if span > 0 else None,
                      max_lag_s=round(max_lag, 4), window_waits=window_waits,
                      cpu_s=round((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system), 3),
                      next_index=idx0 + total, puback_ms=acks.latency())
        if acked < total:
            report["error"] = f"{total - acked} of {total} publishes not acknowledged 30 s after the last"
        elif report["bad_acks"]:
            report["error"] = f"{report['bad_acks']} PUBACKs out of order or with unknown packet ids"
    except BaseException as exc:
        report["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        ready.set()
    finally:
        for p in pubs:
            p.close()
    results.put(report)


class _Acks:
    """Reads the PUBACKs of every connection; one latency sample per burst, when its last message is acked."""

    def __init__(self, pubs: list[RawPublisher], socks: list[Any], bursts: list[deque[tuple[int, float]]]) -> None:
        self.pubs, self.socks, self.bursts = pubs, socks, bursts
        self.samples: list[float] = []

    def read(self, timeout: float) -> None:
        """Count the PUBACKs waiting on every connection, waiting up to timeout for any."""
        if timeout > 0:
            select.select(self.socks, [], [], timeout)
        now = time.time()
        for p, bursts in zip(self.pubs, self.bursts, strict=True):
            p.read_acks(0)
            while bursts and p.acked >= bursts[0][0]:
                self.samples.append(now - bursts.popleft()[1])

    def latency(self) -> dict[str, float | int | None]:
        s = sorted(self.samples)
        if not s:
            return {"n": 0}
        at = lambda q: round(1000 * s[min(len(s) - 1, int(q * (len(s) - 1)))], 1)  # noqa: E731
        return {"n": len(s), "p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": round(1000 * s[-1], 1)}
