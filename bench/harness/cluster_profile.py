"""Where an instance of the cluster spends its time (bench/cluster_throughput.py --profile).

Two parts, one after the other:

1. **The instance in-process.** `python -m bench.harness.cluster_profile --config FILE --out DIR` runs
   app.cluster.serve.run_instance (what `cbrain run` runs with `cluster:`) with timing counters wrapped
   around the cluster's steps (pulls, acknowledgements, checkpoints, digests, InfluxDB writes, pipeline
   batches) and cProfile on the event loop's thread. SIGUSR1 opens a window (counters and per-thread
   CPU zeroed, cProfile on), SIGUSR2 closes it and writes DIR/window-N.pstats and DIR/window-N.json.
   The benchmark opens one window at rest (nothing published) and one while it publishes at the rate.
2. **The NATS servers' cost per reading, without the service** (`nats_costs`): on a fresh 3-node
   cluster, the same publisher at the same rate into `$MQTT_msgs`, with the partitions' consumers as the
   instance makes them and (a) nobody pulling, (b) pulls of up to 1,000 acknowledged one message at a
   time (what the instance's stream source does), (c) the same pulls acknowledged once per pull (ack
   policy `all`), (d) pulls without acknowledgements (ack policy `none`); then, with nothing published,
   (e) the checkpoints alone: 16 a second of the size part 1 measured, as the instance stores them.
   Each reports the NATS servers' CPU in µs per reading (or cores for (e)) and the client's.

The counters only wrap functions (nothing in app/ or ingest/ changes); cProfile slows the event loop,
so its shares are what to read, and the counters' wall times are upper bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import pstats
import signal
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BUCKETS = (1, 10, 100, 1000)
_TS_RE = __import__("re").compile(rb'"ts": ?(\d{13})')


# ---- in the instance's process ---------------------------------------------------------------------


class Counters:
    """calls / wall seconds / items / bytes per wrapped step, and a histogram of items per call."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, float]] = {}
        self.hist: dict[str, dict[str, int]] = {}
        self.reset()

    def reset(self) -> None:
        self.data = defaultdict(lambda: {"calls": 0, "wall_s": 0.0, "items": 0, "bytes": 0})
        self.hist = defaultdict(lambda: defaultdict(int))
        self.ages: dict[str, list[float]] = defaultdict(list)

    def age(self, stage: str, ts_ms: int | None) -> None:
        """How old the newest reading of a call was when the call returned (its ts is its publish time)."""
        if ts_ms is not None and len(self.ages[stage]) < 50_000:
            age = time.time() * 1000 - ts_ms
            if 0 <= age < 3_600_000:
                self.ages[stage].append(age)

    def add(self, key: str, wall: float, items: int | None, nbytes: int | None, hist: bool) -> None:
        d = self.data[key]
        d["calls"] += 1
        d["wall_s"] += wall
        if items is not None:
            d["items"] += items
            if hist:
                self.hist[key][_bucket(items)] += 1
        if nbytes is not None:
            d["bytes"] += nbytes

    def wrap(self, owner: Any, attr: str, key: str, *, items: Any = None, nbytes: Any = None,
             hist: bool = False, age: Any = None) -> None:
        orig = getattr(owner, attr)
        counters = self

        if asyncio.iscoroutinefunction(orig):
            async def wrapper(*a: Any, **kw: Any) -> Any:
                t = time.perf_counter()
                r = await orig(*a, **kw)
                counters.add(key, time.perf_counter() - t, items(r, a) if items else None,
                             nbytes(r, a) if nbytes else None, hist)
                if age is not None:
                    counters.age(key, age(r, a))
                return r
        else:
            def wrapper(*a: Any, **kw: Any) -> Any:  # type: ignore[misc]
                t = time.perf_counter()
                r = orig(*a, **kw)
                counters.add(key, time.perf_counter() - t, items(r, a) if items else None,
                             nbytes(r, a) if nbytes else None, hist)
                if age is not None:
                    counters.age(key, age(r, a))
                return r
        wrapper.__name__ = getattr(orig, "__name__", attr)
        wrapper.__qualname__ = getattr(orig, "__qualname__", attr)
        setattr(owner, attr, wrapper)

    def dump(self) -> dict[str, Any]:
        from bench.harness.figures import pctl

        ages = {k: {"n": len(v), "p50_ms": round(pctl(v, 50) or 0), "p90_ms": round(pctl(v, 90) or 0),
                    "p99_ms": round(pctl(v, 99) or 0), "max_ms": round(max(v))} for k, v in self.ages.items() if v}
        return {"counters": {k: dict(v) for k, v in self.data.items()},
                "histograms": {k: dict(v) for k, v in self.hist.items()}, "ages": ages}


def _bucket(n: int) -> str:
    for b in BUCKETS:
        if n <= b:
            return f"<={b}"
    return f">{BUCKETS[-1]}"


def _payload_ts(payload: bytes) -> int | None:
    """A reading's ts (epoch ms) from its JSON payload's head (the benchmark's readings start with it)."""
    m = _TS_RE.search(payload[:64])
    return int(m.group(1)) if m else None


def _line_ts(body: bytes) -> int | None:
    """The last line's timestamp (ns) of an InfluxDB line-protocol body, in ms."""
    try:
        return int(body.rstrip().rsplit(b" ", 1)[1]) // 1_000_000
    except (IndexError, ValueError):
        return None


def _size(x: Any) -> int:
    return len(x) if isinstance(x, bytes | bytearray | memoryview) else 0


def install(counters: Counters) -> None:
    """Wrap the steps of the cluster's path whose number, size and time tell where the work goes."""
    from nats.aio.msg import Msg
    from nats.js.client import JetStreamContext
    from nats.js.object_store import ObjectStore

    from app.cluster import digest
    from app.cluster.cell import Cell
    from app.cluster.digests import Digests
    from app.cluster.holds import Holds
    from app.cluster.view_serve import PartitionServer
    from ingest.influx import InfluxStore
    from ingest.nats_source import NatsPartitionSource
    from ingest.pipeline import Pipeline
    from ingest.state_thread import StateThread

    c = counters
    c.wrap(JetStreamContext.PullSubscription, "fetch", "nats fetch (pull request, messages returned)",
           items=lambda r, a: len(r), hist=True, age=lambda r, a: _payload_ts(r[-1].data) if r else None)
    c.wrap(Msg, "ack", "nats Msg.ack (one message)")
    c.wrap(NatsPartitionSource, "acks_upto", "source acks_upto (after a checkpoint)", items=lambda r, a: r)
    c.wrap(Cell, "_checkpoint", "checkpoint (whole)")
    c.wrap(StateThread, "snapshot", "checkpoint: state database serialized (thread)", nbytes=lambda r, a: len(r))
    c.wrap(Holds, "checkpoint", "checkpoint: object put + record update + old object delete")
    c.wrap(ObjectStore, "put", "object store put", nbytes=lambda r, a: _size(a[2] if len(a) > 2 else b""))
    c.wrap(PartitionServer, "publish_digest", "digest: build + KV put")
    c.wrap(digest, "build", "digest: build (JSON + zlib)", nbytes=lambda r, a: _size(r))
    c.wrap(Digests, "take", "digest: parse a partition's digest (watch)", nbytes=lambda r, a: _size(a[2]))
    c.wrap(InfluxStore, "write_body", "InfluxDB write (inline writer)", nbytes=lambda r, a: _size(a[1]),
           age=lambda r, a: _line_ts(a[1]))
    c.wrap(Pipeline, "process", "pipeline batch (deliveries)", items=lambda r, a: len(a[1]), hist=True,
           age=lambda r, a: _payload_ts(a[1][-1].payload) if a[1] else None)


def thread_cpu() -> dict[str, float]:
    """CPU seconds of this process's threads, summed by name (numbers cut off)."""
    import re

    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = defaultdict(float)
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(tid), "(not a Python thread)")
        if int(tid) == os.getpid():
            name = "event loop (main)"
        out[re.sub(r"[-_]?\d+(_\d+)?$", "", name)] += (int(fields[11]) + int(fields[12])) / tick
    return dict(out)


def child_main(config: str, out_dir: str, pull_expires_s: float | None = None, cprofile: bool = True) -> None:
    import ingest.nats_source
    from app.cli.common import setup_logging
    from app.cluster.serve import run_instance
    from app.config import load_settings

    if pull_expires_s is not None:  # (a what-if: how long a pull waits for a whole batch)
        ingest.nats_source.PULL_EXPIRES_S = pull_expires_s

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = load_settings(config)
    setup_logging("INFO")
    counters = Counters()
    install(counters)
    state: dict[str, Any] = {"n": 0, "prof": None}

    def open_window() -> None:
        counters.reset()
        state.update(t0=time.monotonic(), cpu0=thread_cpu(), ptime0=time.process_time())
        state["prof"] = cProfile.Profile() if cprofile else False
        if state["prof"]:
            state["prof"].enable()

    def close_window() -> None:
        prof = state["prof"]
        if prof is None:
            return
        state["n"] += 1
        n = state["n"]
        if prof:
            prof.disable()
            prof.dump_stats(str(out / f"window-{n}.pstats"))
        cpu1 = thread_cpu()
        threads = {k: round(v - state["cpu0"].get(k, 0.0), 3) for k, v in cpu1.items()}
        doc = counters.dump() | {"wall_s": round(time.monotonic() - state["t0"], 3),
                                 "process_cpu_s": round(time.process_time() - state["ptime0"], 3),
                                 "threads_cpu_s": dict(sorted(threads.items(), key=lambda kv: -kv[1]))}
        (out / f"window-{n}.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
        state["prof"] = None

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, open_window)
        loop.add_signal_handler(signal.SIGUSR2, close_window)
        await run_instance(settings)

    asyncio.run(main())


# ---- in the benchmark ---------------------------------------------------------------------------


AREAS = (  # (label, substring of the file name), first match wins
    ("nats-py (client: parsing, fetch, acks, KV/object store)", "/nats/"),
    ("asyncio (event loop, tasks, futures)", "/asyncio/"),
    ("httpx/httpcore/h11 (InfluxDB writes, HTTP)", ("/httpx/", "/httpcore/", "/h11/", "/anyio/")),
    ("app/cluster (cells, checkpoints, digests, view)", "/app/cluster/"),
    ("ingest (pipeline, decode, spool, store writer, NATS source)", "/ingest/"),
    ("rules", "/rules/"),
    ("alerts / notify / orders", ("/alerts/", "/notify/", "/orders/")),
    ("app (service, live view, grafana points)", "/app/"),
    ("kernel", "/kernel/"),
    ("pydantic / orjson / json", ("/pydantic", "/json/")),
    ("this benchmark's counters", "/bench/"),
)

KEY_FUNCTIONS = (  # (label, file substring, function name): inclusive time on the event loop's thread
    ("pipeline: Pipeline.process (decode, dedup, lines)", "ingest/pipeline.py", "process"),
    ("pipeline: Pipeline.commit (rules prepare, commit, acks)", "ingest/pipeline.py", "commit"),
    ("rules: prepare", "rules/runner.py", "prepare"),
    ("store writer: StoreWriter.write (inline, to InfluxDB)", "ingest/store_writer.py", "write"),
    ("NATS source: _pull (fetch + take)", "ingest/nats_source.py", "_pull"),
    ("NATS source: acks_upto (per-message acks)", "ingest/nats_source.py", "acks_upto"),
    ("nats-py: Msg.ack", "nats/aio/msg.py", "ack"),
    ("nats-py: fetch (_fetch_n)", "nats/js/client.py", "_fetch_n"),
    ("nats-py: read loop (_read_loop)", "nats/aio/client.py", "_read_loop"),
    ("nats-py: protocol parser (parse)", "nats/protocol/parser.py", "parse"),
    ("nats-py: _process_msg (each message in)", "nats/aio/client.py", "_process_msg"),
    ("cell: Cell._checkpoint", "app/cluster/cell.py", "_checkpoint"),
    ("holds: Holds.checkpoint (object put, record)", "app/cluster/holds.py", "checkpoint"),
    ("nats-py: ObjectStore.put", "nats/js/object_store.py", "put"),
    ("digest: publish_digest (build + KV put)", "app/cluster/view_serve.py", "publish_digest"),
    ("digest: build", "app/cluster/digest.py", "build"),
    ("digest: Digests.take (parse others' digests)", "app/cluster/digests.py", "take"),
    ("members/holds/view: app/cluster/view.py", "app/cluster/view.py", "*"),
)


def analyse(pstats_path: Path, top: int = 25) -> dict[str, Any]:
    """Self time by area, inclusive time of the key functions, the top functions by self time."""
    st = pstats.Stats(str(pstats_path))
    raw: dict[Any, Any] = st.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    areas: dict[str, float] = defaultdict(float)
    for (fname, _line, _fn), (_cc, _nc, tt, _ct, _callers) in raw.items():
        label = "builtins and C (sqlite3, zlib, orjson, sockets, ...)" if fname == "~" else "other Python"
        for name, sub in AREAS:
            subs = sub if isinstance(sub, tuple) else (sub,)
            if any(s in fname for s in subs):
                label = name
                break
        areas[label] += tt
    keys: dict[str, Any] = {}
    for label, sub, fn in KEY_FUNCTIONS:
        ct = nc = 0.0
        for (fname, _line, name), (_cc, n, tt, c, _callers) in raw.items():
            if sub in fname and (fn == "*" or name == fn):
                ct += tt if fn == "*" else c
                nc += n
        keys[label] = {"s": round(ct, 3), "calls": int(nc)}
    tops = sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]
    return {"total_s": round(total, 3),
            "areas_s": {k: round(v, 3) for k, v in sorted(areas.items(), key=lambda kv: -kv[1])},
            "key_s": keys,
            "top_self": [{"fn": f"{Path(f).name}:{line}({fn})" if f != "~" else fn, "self_s": round(v[2], 3),
                          "cum_s": round(v[3], 3), "calls": v[1]} for (f, line, fn), v in tops]}


def run_profile(args: argparse.Namespace, tmp: Path, cleanup: list[Any]) -> dict[str, Any]:
    """Part 1 and part 2 (see the module's docstring); prints what it found."""
    from bench.harness.cluster_rig import Rig, Service
    from bench.ingest_throughput import log
    from tests import servers

    rate = args.profile_rate or max(float(r) for r in args.rates.split(",") if r.strip())
    rig = Rig(tmp, args, servers, cleanup)
    rig.start_cluster()
    prof_dir = tmp / "profile"
    config = rig.site("i1", nats=rig.nats.urls, mqtt_port=rig.mqtt_ports[0])
    svc = Service("i1", config,  # (its name is the instance's: the live instances are matched by it)
                  argv=[sys.executable, "-m", "bench.harness.cluster_profile", "--config", str(config),
                        "--out", str(prof_dir)])
    rig.add_service(svc)
    out: dict[str, Any] = {"rate": rate, "windows": {}}
    assert svc.proc is not None
    time.sleep(args.idle_seconds)  # (the start's work settles)
    for label, work in (("at rest", None), (f"{rate:,.0f} readings/s", rate)):
        svc.proc.send_signal(signal.SIGUSR1)
        s0 = rig.snapshot()
        step = rig.step("profiled", work, args.step_seconds) if work else None
        if work is None:
            time.sleep(args.step_seconds)
        svc.proc.send_signal(signal.SIGUSR2)
        s1 = rig.snapshot()
        n = len(out["windows"]) + 1
        deadline = time.monotonic() + 30
        while not (prof_dir / f"window-{n}.json").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        doc = json.loads((prof_dir / f"window-{n}.json").read_text())
        doc["profile"] = analyse(prof_dir / f"window-{n}.pstats")
        doc["cores"] = {k: round(((s1["cpu"].get(k) or 0) - (s0["cpu"].get(k) or 0)) / (s1["t"] - s0["t"]), 3)
                        for k in s1["cpu"]}
        doc["step"] = step
        out["windows"][label] = doc
        print_window(label, doc, step)
    rig.stop_cluster()
    sizes = out["windows"][f"{rate:,.0f} readings/s"]["counters"].get(
        "checkpoint: state database serialized (thread)", {})
    checkpoint_bytes = int(sizes.get("bytes", 0) / max(1, sizes.get("calls", 1))) or 256 * 1024
    costs_rates = [float(r) for r in args.costs_rates.split(",") if r.strip()]
    log(f"NATS costs without the service: {args.costs_rates}/s for {args.step_seconds:g} s each; checkpoints of "
        f"{checkpoint_bytes:,} bytes")
    out["nats_costs"] = nats_costs(rig, costs_rates, args.step_seconds, checkpoint_bytes)
    print_nats_costs(out["nats_costs"])
    return out


def print_window(label: str, doc: dict[str, Any], step: dict[str, Any] | None) -> None:
    wall = doc["wall_s"]
    readings = step["sent"] if step else 0
    print(f"\n== instance in-process, {label}: {wall:.1f} s, process CPU {doc['process_cpu_s']:.2f} s "
          f"({doc['process_cpu_s'] / wall:.2f} cores)"
          + (f", {doc['process_cpu_s'] * 1e6 / max(1, readings):,.0f} µs per reading (cProfile on)" if step else ""))
    print("   cores: " + ", ".join(f"{k} {v:.2f}" for k, v in doc["cores"].items()))
    print("   threads (CPU s): " + ", ".join(f"{k} {v:.2f}" for k, v in doc["threads_cpu_s"].items() if v >= 0.01))
    print("   counters (calls completed in the window, a second; mean wall time a call, items, size):")
    for k, v in sorted(doc["counters"].items()):
        per = f"; {v['items'] / v['calls']:.1f} items a call ({int(v['items']):,} in all)" if v["items"] else ""
        size = f"; {v['bytes'] / v['calls'] / 1024:,.1f} KiB a call" if v["bytes"] else ""
        mean_ms = 1000 * v["wall_s"] / v["calls"]
        print(f"     {k}: {int(v['calls']):,} ({v['calls'] / wall:,.1f}/s); {mean_ms:,.1f} ms a call{per}{size}")
    for k, h in doc["histograms"].items():
        print(f"     {k} items per call: " + ", ".join(f"{b} {n:,}" for b, n in sorted(h.items(), key=_order)))
    print_ages(doc.get("ages") or {})
    p = doc["profile"]
    print(f"   event loop thread under cProfile: {p['total_s']:.2f} s of self time; by area:")
    for k, v in p["areas_s"].items():
        print(f"     {v:7.2f} s {100 * v / max(p['total_s'], 1e-9):5.1f} %  {k}")
    print("   inclusive (cumulative) time of key functions on that thread:")
    for k, v in p["key_s"].items():
        if v["calls"]:
            print(f"     {v['s']:7.2f} s {100 * v['s'] / max(p['total_s'], 1e-9):5.1f} %  {k} ({v['calls']:,} calls)")
    print("   top functions by self time:")
    for t in p["top_self"][:15]:
        print(f"     {t['self_s']:7.2f} s  (cum {t['cum_s']:.2f} s, {t['calls']:,} calls)  {t['fn']}")


def print_ages(ages: dict[str, Any]) -> None:
    """Publish -> each stage: the age of the newest reading a call handled, when it returned."""
    order = ("nats fetch", "pipeline batch", "InfluxDB write")
    for key in sorted(ages, key=lambda k: next((i for i, o in enumerate(order) if k.startswith(o)), 9)):
        a = ages[key]
        print(f"     age of the newest reading at the end of '{key}': p50 {a['p50_ms']:,} ms, p90 {a['p90_ms']:,} ms, "
              f"p99 {a['p99_ms']:,} ms, max {a['max_ms']:,} ms (n={a['n']:,})")


def _order(kv: tuple[str, int]) -> int:
    return int(kv[0].lstrip("<=>")) + (1 if kv[0].startswith(">") else 0)


# ---- part 2: the NATS servers without the service ------------------------------------------------


def nats_costs(rig: Any, rates: list[float], seconds: float, checkpoint_bytes: int) -> dict[str, Any]:
    """(a)-(e) of the module's docstring on a fresh 3-node cluster; the servers' CPU per reading."""
    out: dict[str, Any] = {}
    rig.start_cluster("nats-costs")
    try:
        for rate in rates:
            for mode in ("no pull", "pull, ack each", "pull, ack once per pull", "pull, no acks"):
                out[f"{mode} @ {rate:.0f}"] = _one_mode(rig, mode, rate, seconds) | {"mode": mode, "rate": rate}
        out["checkpoints alone"] = _checkpoints_alone(rig, seconds, checkpoint_bytes)
    finally:
        rig.stop_cluster()
    return out


def _one_mode(rig: Any, mode: str, rate: float, seconds: float) -> dict[str, Any]:
    from bench.ingest_throughput import log

    partitions = rig.args.partitions
    stop = threading.Event()
    box: dict[str, Any] = {}
    ready = threading.Event()
    thread = threading.Thread(target=lambda: asyncio.run(_consume(rig, mode, partitions, stop, ready, box)),
                              name="nats-costs", daemon=True)
    thread.start()
    if not ready.wait(60):
        raise RuntimeError(f"nats costs, {mode}: consumers not ready: {box.get('error')}")
    rest = rig.idle(5.0, settle=1.0)  # (the consumers made, their pulls lingering; nothing published)
    rest_nats = sum(v for k, v in rest.items() if k.startswith("nats"))
    cpu0 = box.get("cpu_s", 0.0)
    step = rig.step(f"nats: {mode}", rate, seconds, count_stored=False)
    stop.set()
    thread.join(30)
    if "error" in box:
        raise RuntimeError(f"nats costs, {mode}: {box['error']}")
    readings = step["sent"]
    brokers = {k: v for k, v in step["us_per_reading"].items() if k.startswith("nats")}
    above = (step["broker_cores"] - rest_nats) * step["window_s"] * 1e6 / max(1, readings)
    res = {"readings": readings, "nats_us_per_reading": round(sum(brokers.values()), 1), "each": brokers,
           "nats_cores_at_rest": round(rest_nats, 3), "nats_us_per_reading_above_rest": round(above, 1),
           "nats_cores": step["broker_cores"], "client_cpu_s": round(box.get("cpu_s", 0.0) - cpu0, 3),
           "client_us_per_reading": round((box.get("cpu_s", 0.0) - cpu0) * 1e6 / max(1, readings), 1),
           "received": box.get("received", 0), "acks": box.get("acks", 0), "pulls": box.get("pulls", 0),
           "window_s": step["window_s"], "other": step["cores"].get("other"), "machine": step["cores"].get("machine")}
    log(f"nats costs, {mode}: NATS {res['nats_us_per_reading']} µs/reading ({res['nats_cores']} cores; at rest "
        f"{res['nats_cores_at_rest']} cores: {res['nats_us_per_reading_above_rest']} µs/reading above it), client "
        f"{res['client_us_per_reading']} µs/reading; received {res['received']:,} in {res['pulls']:,} pulls, "
        f"{res['acks']:,} acks")
    return res


async def _consume(rig: Any, mode: str, partitions: int, stop: threading.Event, ready: threading.Event,
                   box: dict[str, Any]) -> None:
    """The partitions' consumers as ClusterInstance._consumers makes them, pulled as NatsPartitionSource does."""
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    from app.cluster.instance import MAX_ACK_PENDING, MQTT_STREAM, _touch_mqtt
    from ingest.nats_source import PULL_BATCH, PULL_EXPIRES_S
    from kernel.cluster import subject_map

    try:
        nc = await nats.connect(servers=rig.nats.urls, name="bench-nats-costs")
        js = nc.jetstream(timeout=5)
        for _ in range(100):
            try:
                await js.stream_info(MQTT_STREAM)
                break
            except Exception:
                await _touch_mqtt(f"mqtt://127.0.0.1:{rig.mqtt_ports[0]}")
                await asyncio.sleep(0.3)
        subjects = subject_map("cb", partitions)
        policy = {"pull, ack once per pull": AckPolicy.ALL, "pull, no acks": AckPolicy.NONE}.get(mode,
                                                                                              AckPolicy.EXPLICIT)
        tag = mode.replace(" ", "").replace(",", "-")
        names = [f"costs-{tag}-p{p}" for p in range(partitions)]
        for p, name in enumerate(names):
            await js.add_consumer(MQTT_STREAM, ConsumerConfig(
                durable_name=name, filter_subject=subjects.partition_filter(p), ack_policy=policy, ack_wait=6,
                max_deliver=-1, max_ack_pending=MAX_ACK_PENDING if policy != AckPolicy.NONE else -1,
                deliver_policy=DeliverPolicy.ALL, num_replicas=3))
        box.update(received=0, acks=0, pulls=0)
        t_cpu0 = time.thread_time()
        box["cpu_s"] = 0.0

        async def pull(name: str) -> None:
            sub = await js.pull_subscribe_bind(durable=name, stream=MQTT_STREAM)
            while not stop.is_set():
                try:
                    msgs = await sub.fetch(PULL_BATCH, timeout=PULL_EXPIRES_S)
                except TimeoutError:
                    continue
                box["pulls"] += 1
                box["received"] += len(msgs)
                if policy == AckPolicy.EXPLICIT:
                    for m in msgs:
                        await m.ack()
                    box["acks"] += len(msgs)
                elif policy == AckPolicy.ALL and msgs:
                    await msgs[-1].ack()
                    box["acks"] += 1
                box["cpu_s"] = time.thread_time() - t_cpu0

        tasks = [asyncio.create_task(pull(n)) for n in names] if mode != "no pull" else []
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.1)
            box["cpu_s"] = time.thread_time() - t_cpu0
        for t in tasks:
            t.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*tasks, return_exceptions=True)
        for name in names:  # (their interest would keep every later message in the stream)
            with contextlib.suppress(Exception):
                await js.delete_consumer(MQTT_STREAM, name)
        await nc.close()
    except BaseException as exc:
        box["error"] = f"{type(exc).__name__}: {exc}"
        ready.set()


def _checkpoints_alone(rig: Any, seconds: float, size: int) -> dict[str, Any]:
    """16 checkpoints a second of `size` bytes, as Holds.checkpoint stores them: the servers' cores."""
    from bench.ingest_throughput import log

    box: dict[str, Any] = {}

    async def run() -> None:
        import nats

        from app.cluster.holds import Holds

        nc = await nats.connect(servers=rig.nats.urls, name="bench-checkpoints")
        js = nc.jetstream(timeout=5)
        holds = Holds(js, "costs", 3)
        await holds.open()
        partitions = rig.args.partitions
        hs = [await holds.claim(p, "bench", None) for p in range(partitions)]
        state = os.urandom(size // 2) + bytes(size - size // 2)  # (half incompressible, as a database is not)
        s0 = rig.snapshot()
        t_cpu0 = time.thread_time()
        n = 0
        end = time.monotonic() + seconds
        next_t = time.monotonic()
        while time.monotonic() < end:
            for p in range(partitions):
                n += 1
                hs[p] = await holds.checkpoint(hs[p], state, n)
            next_t += 1.0
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))
        s1 = rig.snapshot()
        box.update(s0=s0, s1=s1, checkpoints=n, cpu_s=time.thread_time() - t_cpu0)
        await nc.close()

    asyncio.run(run())
    s0, s1 = box["s0"], box["s1"]
    dt = s1["t"] - s0["t"]
    cores = {k: round(((s1["cpu"].get(k) or 0) - (s0["cpu"].get(k) or 0)) / dt, 3) for k in s1["cpu"]}
    nats_cores = round(sum(v for k, v in cores.items() if k.startswith("nats")), 3)
    res = {"checkpoints": box["checkpoints"], "per_second": round(box["checkpoints"] / dt, 1), "bytes": size,
           "nats_cores": nats_cores, "client_cores": round(box["cpu_s"] / dt, 3), "cores": cores}
    log(f"nats costs, checkpoints alone: {res['per_second']}/s of {size:,} bytes: NATS {nats_cores} cores, client "
        f"{res['client_cores']} cores")
    return res


def print_nats_costs(costs: dict[str, Any]) -> None:
    print("\n== the NATS servers without the service (same publisher, same rate, the partitions' consumers):")
    print("| consumers | readings/s | NATS µs per reading (3 servers) | NATS cores (at rest) | NATS µs per reading "
          "above rest | client µs per reading | received | acks | pulls | machine / other |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key, r in costs.items():
        if key == "checkpoints alone":
            continue
        print(f"| {r['mode']} | {r['rate']:,.0f} | {r['nats_us_per_reading']:,.0f} | {r['nats_cores']:.2f} "
              f"({r['nats_cores_at_rest']:.2f}) | {r['nats_us_per_reading_above_rest']:,.0f} | "
              f"{r['client_us_per_reading']:,.0f} | {r['received']:,} | "
              f"{r['acks']:,} | {r['pulls']:,} | {r['machine']:.2f} / {r['other']:.2f} |")
    c = costs.get("checkpoints alone")
    if c:
        print(f"checkpoints alone (nothing published): {c['per_second']}/s of {c['bytes']:,} bytes -> NATS "
              f"{c['nats_cores']:.2f} cores, the client {c['client_cores']:.2f} cores")


def main() -> None:
    ap = argparse.ArgumentParser(description="an instance of the cluster in-process with timing counters")
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--pull-expires", type=float, default=None,
                    help="what-if: ingest.nats_source.PULL_EXPIRES_S (default: as it is)")
    ap.add_argument("--no-cprofile", dest="cprofile", action="store_false",
                    help="a window only zeroes and writes the counters")
    args = ap.parse_args()
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    child_main(args.config, args.out, args.pull_expires, args.cprofile)


if __name__ == "__main__":
    main()
