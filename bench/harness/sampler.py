"""The service's metrics, sampled every 0.5 s while the benchmark runs."""

from __future__ import annotations

import threading
import time
from typing import Any

from bench.harness.figures import parse_metrics_labels
from bench.harness.topics import SAMPLE_EVERY_S
from bench.ingest_throughput import (  # helpers shared with the ingest benchmark
    http_get,
    proc_cpu,
)


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
