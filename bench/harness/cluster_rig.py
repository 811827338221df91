"""The cluster benchmark's rig (bench/cluster_throughput.py): the site, the two systems it compares, the
CPU of every process, the paced steps and their figures.

    single   Mosquitto + one `cbrain run` without `cluster:` (the existing path: its InfluxDB writer in a
             process of its own)
    cluster  a 3-node NATS cluster (tests/nats_cluster.py, from app/nats_config.write_configs) + one or
             two `cbrain run` instances with `cluster:` (every partition a Service of its own, writer inline)

Both run this checkout's code (`python -m app.cli`, PYTHONPATH = the checkout first), on the same site
file (tests/cluster_kit.cluster_site: the example site plus clones of its first community) and the same
InfluxDB, each system in a database of its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from app.cluster.members import wanted_holder
from bench.harness.figures import log_problems, pctl
from bench.harness.mqtt_load import FIELD, MEASUREMENT, device_topic, load_main
from bench.ingest_throughput import ProcessTree, cores_between, http_get, log, machine_times, proc_cpu, tail
from kernel.cluster import partition_of
from tests.cluster_kit import cluster_site

REPO = Path(__file__).resolve().parents[2]
PREFIX = "cb"
LAG_EVERY_S = 0.5
LAG_FROM_S = 2.0  # lag samples start this long into a step (the first readings are just arriving)
PACE_SHORTFALL = 0.97  # sent / asked below this: the publisher was the limit


def balanced_communities(partitions: int, per_partition: int, stem: str = "k") -> list[str]:
    """Community ids, `per_partition` in each partition (kernel.cluster.partition_of, as the servers map)."""
    counts = [0] * partitions
    out: list[str] = []
    i = 0
    while len(out) < partitions * per_partition and i < 1_000_000:
        cid = f"{stem}{i}"
        p = partition_of(cid, partitions)
        if counts[p] < per_partition:
            counts[p] += 1
            out.append(cid)
        i += 1
    return out


def device_topics(communities: list[str], devices: int) -> list[str]:
    """Device d (ebike_charger `ev<d>`, not registered) is in community d % len(communities)."""
    return [device_topic(PREFIX, communities[d % len(communities)], f"ev{d:05d}") for d in range(devices)]


def start_cbrain(config: Path, log_path: Path, argv: list[str] | None = None) -> subprocess.Popen[bytes]:
    """`cbrain run --config` of this checkout (whatever checkout the venv's editable install names)."""
    argv = argv or [sys.executable, "-m", "app.cli", "run", "--config", str(config)]
    setpriv = shutil.which("setpriv")
    if setpriv:  # the service dies with the benchmark even if it is SIGKILLed
        argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CB_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    with log_path.open("ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                env=env, start_new_session=True)


def stop_proc(proc: subprocess.Popen[bytes] | None, timeout: float = 30.0) -> Any:
    if proc is None or proc.poll() is not None:
        return None if proc is None else proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return f"killed after {timeout:.0f} s"


def health(base: str) -> dict[str, Any]:
    import json

    try:
        code, body = http_get(f"{base}/health", 2.0)
        out: dict[str, Any] = json.loads(body)
        out["_status"] = code
        return out
    except (OSError, ValueError):
        return {}


class Service:
    """One `cbrain run` (a single process or an instance of the cluster): its config, log, process tree."""

    def __init__(self, name: str, config: Path, argv: list[str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.config = config
        raw = yaml.safe_load(config.read_text(encoding="utf-8"))
        self.base = f"http://127.0.0.1:{raw['http']['port']}"
        self.log_path = config.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.tree: ProcessTree | None = None
        self.exit: Any = None
        self.balanced_s: float | None = None

    def start(self) -> None:
        import psutil

        self.proc = start_cbrain(self.config, self.log_path, self.argv)
        self.tree = ProcessTree(psutil.Process(self.proc.pid))
        log(f"{self.name}: started pid {self.proc.pid} ({self.base}, log {self.log_path})")

    def check(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise RuntimeError(f"{self.name} exited ({code})\n{tail(self.log_path)}")

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while health(self.base).get("_status") != 200:
            self.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: /health not 200 after {timeout:.0f} s\n{tail(self.log_path)}")
            time.sleep(0.2)

    def held(self) -> tuple[set[int], set[str]]:
        """The partitions this instance runs, and the live instances it sees."""
        cluster = health(self.base).get("cluster") or {}
        held = {h["partition"] for h in cluster.get("held", []) if h.get("running")}
        return held, {i["name"] for i in cluster.get("instances", [])}

    def stop(self) -> None:
        if self.proc is not None and self.exit is None:
            self.exit = stop_proc(self.proc)
            log(f"{self.name}: stopped ({self.exit})")

    def handovers(self) -> list[dict[str, Any]]:
        """The partitions this instance took (GET /health's cluster.handovers, the last 20)."""
        return list((health(self.base).get("cluster") or {}).get("handovers") or [])

    def problems(self) -> dict[str, int]:
        """Warnings and errors of its log, but the example secrets' (the site is the example's)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return {k: v for k, v in log_problems(text).items() if "example secret" not in k}


class Rig:
    """influxd and the webhook receiver for the whole run; the systems one after the other."""

    def __init__(self, tmp: Path, args: Any, servers: Any, cleanup: list[Any]) -> None:
        from device_sim.receiver import Receiver

        self.tmp, self.args, self.servers, self.cleanup = tmp, args, servers, cleanup
        self.influx = servers.InfluxD(tmp / "influxd")
        cleanup.append(self.influx.stop)
        self.influx.start()
        self.receiver = Receiver(keep=False).start()
        cleanup.append(self.receiver.stop)
        self.communities = balanced_communities(args.partitions, args.communities_per_partition)
        self.topics = device_topics(self.communities, args.devices)
        self.next_index = 0  # the publisher's global message index (seq counts up per device across steps)
        self.watched: dict[str, Any] = {}
        self.services: list[Service] = []
        self.broker_names: list[str] = []
        self.mqtt_ports: list[int] = []
        self.database = ""
        self.acked_total = 0
        self.nats: Any = None
        self.unbalanced: list[dict[str, Any]] = []

    # ---- the systems ----------------------------------------------------------------------------

    def site(self, name: str, *, nats: list[str] | None, mqtt_port: int,
             timings: dict[str, float] | None = None) -> Path:
        """The site file of one service; without `cluster:` when nats is None; the cluster's timings are its
        defaults unless given."""
        d = self.tmp / name
        d.mkdir(parents=True, exist_ok=True)
        path = cluster_site(d, name=name, nats=nats or ["nats://127.0.0.1:1"], mqtt_port=mqtt_port,
                            influx_url=self.influx.url, database=self.database, receiver_base=self.receiver.base,
                            communities=self.communities, partitions=self.args.partitions, timings=timings or {})
        if nats is None:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            raw.pop("cluster")
            path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
        return path

    def use_database(self, name: str) -> None:
        self.database = name
        self.influx.create_database(name)
        self.acked_total = 0

    def start_single(self) -> Service:
        """Mosquitto and one `cbrain run` on it."""
        import psutil

        self.use_database("bench_single")
        broker = self.servers.Mosquitto(self.tmp / "mosquitto")
        self.cleanup.append(broker.stop)
        broker.start()
        self._stop_broker = broker.stop
        svc = Service("single", self.site("single", nats=None, mqtt_port=broker.port))
        self.cleanup.append(svc.stop)
        svc.start()
        svc.wait_healthy()
        self.services = [svc]
        self.mqtt_ports = [broker.port]
        self.watched = {"service:single": svc.tree, "mosquitto": psutil.Process(broker.pid)}
        self.broker_names = ["mosquitto"]
        log(f"single: healthy on Mosquitto {broker.url}")
        return svc

    def stop_single(self) -> None:
        for svc in self.services:
            svc.stop()
        self._stop_broker()
        self.services, self.watched = [], {}

    def start_cluster(self, where: str = "nats") -> None:
        """A fresh 3-node NATS cluster (nothing else yet)."""
        import psutil

        from tests.nats_cluster import NatsCluster

        self.use_database("bench_cluster" if where == "nats" else f"bench_{where.replace('-', '_')}")
        self.nats = NatsCluster(self.tmp / where, nodes=3, partitions=self.args.partitions, prefix=PREFIX)
        self.cleanup.append(self.nats.stop)
        self.nats.start(timeout=60)
        self.mqtt_ports = list(self.nats.mqtt_ports)
        self.broker_names = [f"nats{s.node.index}" for s in self.nats.servers]
        self.watched = {f"nats{s.node.index}": psutil.Process(s.pid) for s in self.nats.servers}
        log(f"cluster: 3 NATS nodes healthy (MQTT on {self.mqtt_ports}, NATS {self.nats.urls})")

    def add_instance(self, name: str) -> Service:
        assert self.nats is not None
        return self.add_service(Service(name, self.site(name, nats=self.nats.urls, mqtt_port=self.mqtt_ports[0])))

    def add_service(self, svc: Service) -> Service:
        """Start an instance of the cluster; return once every partition runs once where it should."""
        self.cleanup.append(svc.stop)
        svc.start()
        self.services.append(svc)
        self.watched[f"service:{svc.name}"] = svc.tree
        t0 = time.monotonic()
        held, ok = self.wait_balanced()
        svc.balanced_s = round(time.monotonic() - t0, 1) if ok else None
        log(f"cluster: {'every partition held once' if ok else 'NOT BALANCED'} after {time.monotonic() - t0:.1f} s: "
            + ", ".join(f"{n} {sorted(ps)}" for n, ps in held.items()))
        return svc

    def wait_balanced(self, timeout: float = 90.0) -> tuple[dict[str, set[int]], bool]:
        """Until every partition runs once, each on the instance the live ones agree should hold it; after
        `timeout`, log who the partitions' records name and go on (False)."""
        names = sorted(s.name for s in self.services)
        deadline = time.monotonic() + timeout
        while True:
            held: dict[str, set[int]] = {}
            seen_ok = True
            for s in self.services:
                s.check()
                ps, live = s.held()
                held[s.name] = ps
                seen_ok = seen_ok and live == set(names)
            every = sorted(p for ps in held.values() for p in ps)
            wanted = {n: {p for p in range(self.args.partitions) if wanted_holder(p, names) == n} for n in names}
            if seen_ok and every == list(range(self.args.partitions)) and held == wanted:
                return held, True
            if time.monotonic() > deadline:
                records = self.hold_records()
                self.unbalanced.append({"held": {n: sorted(ps) for n, ps in held.items()},
                                        "wanted": {n: sorted(ps) for n, ps in wanted.items()}, "records": records})
                log(f"partitions not held once after {timeout:.0f} s: running {held}, wanted {wanted}; the "
                    f"partitions' records (holder, epoch): {records}")
                return held, False
            time.sleep(0.25)

    def cluster_counts(self) -> dict[str, int]:
        """Summed over the partitions: deliveries made by their consumers (redeliveries included), messages
        awaiting an acknowledgement, and the checkpoints the instances report (GET /health)."""
        import asyncio

        import nats

        async def read() -> dict[str, int]:
            nc = await nats.connect(servers=self.nats.urls, name="bench-counts")
            out = {"deliveries": 0, "ack_pending": 0, "redelivered_pending": 0, "acked": 0}
            try:
                js = nc.jetstream(timeout=5)
                for p in range(self.args.partitions):
                    ci = await js.consumer_info("$MQTT_msgs", f"cb-p{p}")
                    out["deliveries"] += ci.delivered.consumer_seq or 0
                    out["ack_pending"] += ci.num_ack_pending or 0
                    out["redelivered_pending"] += ci.num_redelivered or 0
                    out["acked"] += ci.ack_floor.consumer_seq or 0
            finally:
                await nc.close()
            return out

        try:
            out = asyncio.run(read())
        except Exception as exc:
            log(f"consumer counts not read: {type(exc).__name__}: {exc}")
            out = {}
        out["checkpoints"] = sum(h.get("checkpoints", 0) for s in self.services
                                 for h in (health(s.base).get("cluster") or {}).get("held", []))
        return out

    def hold_records(self) -> dict[int, Any]:
        """The holds bucket's record of every partition: (holder, epoch), as the instances wrote it."""
        import asyncio
        import json

        import nats

        async def read() -> dict[int, Any]:
            nc = await nats.connect(servers=self.nats.urls, name="bench-holds")
            try:
                kv = await nc.jetstream(timeout=5).key_value("cb-holds")
                out: dict[int, Any] = {}
                for p in range(self.args.partitions):
                    try:
                        d = json.loads((await kv.get(f"p{p}")).value)
                        out[p] = (d.get("holder"), d.get("epoch"))
                    except Exception as exc:
                        out[p] = f"{type(exc).__name__}"
                return out
            finally:
                await nc.close()

        try:
            return asyncio.run(read())
        except Exception as exc:
            return {-1: f"{type(exc).__name__}: {exc}"}

    def stop_cluster(self) -> None:
        for svc in self.services:
            svc.stop()
        if self.nats is not None:
            self.nats.stop()
        self.services, self.watched = [], {}

    # ---- figures --------------------------------------------------------------------------------

    def snapshot(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        cpu: dict[str, float | None] = {k: proc_cpu(p) for k, p in {**self.watched, **(extra or {})}.items()}
        cpu["influxd"] = proc_cpu(self._influx_proc())
        cpu["bench"] = proc_cpu(self._bench_proc())
        cpu.update(machine_times())
        return {"t": time.time(), "cpu": cpu}

    def _influx_proc(self) -> Any:
        import psutil

        if not hasattr(self, "_influx_p"):
            self._influx_p = psutil.Process(self.influx.pid)
        return self._influx_p

    def _bench_proc(self) -> Any:
        import psutil

        if not hasattr(self, "_bench_p"):
            self._bench_p = psutil.Process()
        return self._bench_p

    def stored(self) -> int:
        r = self.influx.query(f"SELECT count({FIELD}) FROM {MEASUREMENT}", db=self.database)
        series = r["results"][0].get("series")
        return int(series[0]["values"][0][1]) if series else 0

    def newest_by_community(self) -> dict[str, float]:
        """The newest stored reading's time (epoch ms) of every community heard from in the last 30 s."""
        r = self.influx.query(f"SELECT last({FIELD}) FROM {MEASUREMENT} WHERE time > now() - 30s GROUP BY community",
                              db=self.database, epoch="ms")
        return {s["tags"]["community"]: float(s["values"][0][0]) for s in r["results"][0].get("series") or []}

    def recover(self, seconds: float) -> bool:
        """After a step that left readings behind: wait (bounded) until InfluxDB holds them all."""
        end = time.time() + seconds
        have = self.stored()
        while have < self.acked_total and time.time() < end:
            for s in self.services:
                s.check()
            time.sleep(0.5)
            have = self.stored()
        log(f"recovery: {have:,} of {self.acked_total:,} stored")
        return have >= self.acked_total

    def idle(self, seconds: float, settle: float = 5.0) -> dict[str, float]:
        """Cores of every process while nothing is published (after `settle` s for the start's work)."""
        time.sleep(settle)
        a = self.snapshot()
        time.sleep(seconds)
        b = self.snapshot()
        return cores_between(a["cpu"], b["cpu"], b["t"] - a["t"])

    def step(self, label: str, rate: float, seconds: float, *, count_stored: bool = True) -> dict[str, Any]:
        """Publish `rate` readings/s for `seconds`; wait (bounded) until InfluxDB holds all acknowledged
        (without count_stored: nothing is stored, only the CPU counts)."""
        import multiprocessing as mp

        import psutil

        args = self.args
        ctx = mp.get_context("spawn")
        ready, stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
        sent = ctx.Value("q", 0, lock=False)
        pregen_s = 1.0 + rate * seconds / 150_000  # packets are encoded before the clock starts
        start_at = time.time() + pregen_s + 2.0
        proc = ctx.Process(target=load_main, name="bench-load", daemon=True,
                           args=(self.mqtt_ports, args.connections, self.topics, rate, seconds, start_at,
                                 self.next_index, args.inflight, sent, ready, stop, results))
        proc.start()
        try:
            if not ready.wait(60):
                raise RuntimeError("publisher not ready after 60 s")
            pub_p = psutil.Process(proc.pid)
            clustered = self.nats is not None and bool(self.services) and count_stored
            counts0 = self.cluster_counts() if clustered else {}  # (before the first reading goes)
            while time.time() < start_at:
                time.sleep(0.01)
            s0 = self.snapshot({"publisher": pub_p})
            lags: list[float] = []
            worst: list[float] = []
            services_up = [s.held()[0] if s.name != "single" else set() for s in self.services]
            report: dict[str, Any] | None = None
            s1 = s0
            while report is None:
                t_q = time.time() * 1000
                if count_stored and time.time() - start_at > LAG_FROM_S:
                    newest = self.newest_by_community()
                    ages = [(t_q - t) / 1000 for t in newest.values()]
                    if ages:
                        lags += ages
                        worst.append(max(ages))
                with contextlib.suppress(psutil.Error):
                    s1 = self.snapshot({"publisher": pub_p})  # (the publisher's CPU while it still runs)
                for s in self.services:
                    s.check()
                try:
                    report = results.get(timeout=LAG_EVERY_S)
                except Exception:
                    if not proc.is_alive() and results.empty():
                        raise RuntimeError(f"publisher died (exit {proc.exitcode})") from None
                    if time.time() - start_at > seconds + 60:
                        raise RuntimeError("publisher did not report within the step + 60 s") from None
            proc.join(10)
            if "error" in report:
                raise RuntimeError(f"publisher: {report['error']}")
            self.next_index = report["next_index"]
            self.acked_total += report["acked"]
            t_end = report["t_sent"]
            if not count_stored:
                self.acked_total = 0
            backlog_end = self.acked_total - self.stored() if count_stored else 0
            # bounded drain: until InfluxDB holds everything acknowledged so far
            have = self.stored() if count_stored else 0
            while have < self.acked_total and time.time() - t_end < args.drain_seconds:
                for s in self.services:
                    s.check()
                time.sleep(0.25)
                have = self.stored()
            t_done = time.time()
            s2 = self.snapshot()
            counts1 = self.cluster_counts() if clustered else {}
            pub_cpu = (s1["cpu"].get("publisher") or 0.0) - (s0["cpu"].get("publisher") or 0.0)
            dt = s2["t"] - s0["t"]
            cores = cores_between(s0["cpu"], s2["cpu"], dt)
            cores["publisher"] = round(pub_cpu / dt, 2)
            ours = sum(v for k, v in cores.items() if k not in ("machine", "steal", "other"))
            cores["other"] = round(max(0.0, cores.get("machine", 0.0) - ours), 2)
            readings = report["sent"]
            cpu_s = {k: (s2["cpu"].get(k) or 0.0) - (s0["cpu"].get(k) or 0.0) for k in self.watched}
            services_s = sum(v for k, v in cpu_s.items() if k.startswith("service:"))
            brokers_s = sum(cpu_s.get(k, 0.0) for k in self.broker_names)
            achieved = report.get("achieved_rate") or 0.0
            missing = self.acked_total - have
            step = {
                "system": label, "rate": rate, "seconds": seconds, "sent": readings, "acked": report["acked"],
                "achieved_rate": achieved, "pace": round(achieved / rate, 4) if rate else None,
                "publisher_max_lag_s": report["max_lag_s"], "publisher_window_waits": report["window_waits"],
                "publisher_cpu_s": report["cpu_s"], "puback_ms": report.get("puback_ms"),
                "stored_total": have, "acked_total": self.acked_total,
                "missing": missing, "backlog_at_end": backlog_end, "drain_s": round(t_done - t_end, 2),
                "lag_samples": len(lags),
                "lag_p50_ms": _ms(pctl(lags, 50)), "lag_p99_ms": _ms(pctl(lags, 99)),
                "lag_max_ms": _ms(max(lags) if lags else None),
                "worst_community_lag_p50_ms": _ms(pctl(worst, 50)),
                "window_s": round(dt, 2), "cores": cores,
                "us_per_reading": {k: round(v * 1e6 / max(1, readings), 1) for k, v in cpu_s.items()},
                "service_us_per_reading": round(services_s * 1e6 / max(1, readings), 1),
                "broker_us_per_reading": round(brokers_s * 1e6 / max(1, readings), 1),
                "service_cores": round(services_s / dt, 2), "broker_cores": round(brokers_s / dt, 2),
                "partitions_held_before": [sorted(p) for p in services_up],
            }
            if clustered:
                deliveries = counts1.get("deliveries", 0) - counts0.get("deliveries", 0)
                step["cluster"] = {
                    "deliveries": deliveries, "redeliveries": deliveries - report["acked"],
                    "ack_pending_after": counts1.get("ack_pending"),
                    "checkpoints": counts1.get("checkpoints", 0) - counts0.get("checkpoints", 0),
                    "checkpoints_per_s": round((counts1.get("checkpoints", 0) - counts0.get("checkpoints", 0)) / dt, 1)}
            step["pub_bound"] = step["pace"] is not None and step["pace"] < PACE_SHORTFALL
            # Held: it kept up. Everything acknowledged is stored, and what was still to store when publishing
            # ended (the lag then) was stored within --max-drain-s.
            step["held"] = missing == 0 and step["drain_s"] <= args.max_drain_s and not step["pub_bound"]
            log(f"{label}: {rate:,.0f}/s asked, {achieved:,.0f}/s sent; stored {have:,} of {self.acked_total:,} "
                f"acked (backlog at the end {backlog_end:,}, drained in {step['drain_s']} s); lag p50/p99 "
                f"{step['lag_p50_ms']}/{step['lag_p99_ms']} ms; PUBACK {report.get('puback_ms')}; "
                f"service {step['service_cores']} cores "
                f"{step['service_us_per_reading']} µs/reading; brokers {step['broker_cores']} cores "
                f"{step['broker_us_per_reading']} µs/reading; {_fmt_cores(cores)}; {step.get('cluster', '')} -> "
                f"{'held' if step['held'] else ('PUB-BOUND' if step['pub_bound'] else 'not held')}")
            return step
        finally:
            stop.set()
            if proc.is_alive():
                proc.join(5)
            if proc.is_alive():
                proc.kill()


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _fmt_cores(cores: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.2f}" for k, v in cores.items())
