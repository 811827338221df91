"""What one run of the alert benchmark starts: influxd, Mosquitto, the receiver, the floor subscriber,
each part's `cbrain run` and probe; and its CPU snapshots."""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.harness.figures import Records, log_problems
from bench.harness.processes import floor_main, probe_main, receiver_main
from bench.harness.sampler import Sampler
from bench.harness.topics import COMMUNITY, DATABASE, PREFIX, PROBE_DEVICE, PROBE_HIGH, PROBE_LOW
from bench.ingest_throughput import (  # helpers shared with the ingest benchmark
    ProcessTree,
    http_get,
    log,
    machine_times,
    proc_cpu,
    py_spy_dump,
    tail,
    thread_names,
)

REPO = Path(__file__).resolve().parents[2]


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


class Rig:
    """Everything one run starts, and what it measured (the scenarios are bench/alert_latency.py).

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
        part["sproc"] = ProcessTree(psutil.Process(svc.pid))  # with the store writer's process
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
