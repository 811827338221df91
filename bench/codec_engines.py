"""The two embedded JavaScript engines a LoRaWAN codec could run in, side by side: `quickjs` (the
QuickJS binding) and `py_mini_racer` (mini-racer, V8). ingest/sources/codec.py uses the one this
measures best; its docstring has the figures.

    .venv/bin/python bench/codec_engines.py [--codec PATH] [--decodes 100000]

mini-racer is no dependency of the service: `.venv/bin/pip install mini-racer==0.14.1` first (an
engine that cannot be imported shows as crashed in the table). A run takes about 90 s.

--codec is the Milesight GS524N ChirpStack codec (default app/defaults/profiles/codecs/
milesight-gs524n.js; SOURCES.md beside it says where the vendor publishes it). Each engine is
measured in a child process of its own (so one's memory does not count against the other's), and
the thread check in another (a crash there is a figure too). Per engine:

- construct: ms to make a context with the limits (100 ms, 32 MB) and load the codec (mean of 20);
- decode: µs per decode of the README sample 221E64001C40 on fPort 1, the way codec.py decodes
  (orjson input → JSON.parse → decodeUplink → JSON.stringify → orjson.loads), best of 3 × 10,000;
- loop: `while(true){}` under the 100 ms limit: what is raised, after how long (wall), and whether
  the same context decodes the next message;
- memory: `var a=[]; while(true) a.push(new Array(1e6))` inside a function, under 32 MB (and the
  100 ms limit, then a 5 s one so that only memory can stop it): what is raised, when, and whether
  the same context decodes next;
- RSS: growth of the process's resident memory over --decodes decodes after 1,000 of warm-up;
- thread: the context made on the main thread, used from another: 1,000 decodes and a recursion
  1,000 deep (a codec's helpers can nest), compared with the same recursion on the main thread.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CODEC = ROOT / "app" / "defaults" / "profiles" / "codecs" / "milesight-gs524n.js"
SAMPLE = bytes.fromhex("221E64001C40")
TIME_LIMIT_S = 0.1
MEMORY_LIMIT = 32 * 1024 * 1024
# QuickJS's own stack limit, as codec.py sets it (the binding's default, 256 KiB, stops a recursion
# short of 1,000 deep).
QUICKJS_STACK = 1024 * 1024
WRAPPER = "function __bench_run(j) { return JSON.stringify(decodeUplink(JSON.parse(j)).data); }"
HOG = "function __bench_hog() { var a = []; while (true) a.push(new Array(1e6)); }"
LOOP = "function __bench_loop() { while (true) {} }"
RECURSE = "function __bench_depth(n) { return n ? __bench_depth(n - 1) + 1 : 0; }"
ENGINES = ("quickjs", "mini-racer")


class QuickJs:
    """A QuickJS context (its own runtime) with the limits set."""

    def __init__(self, source: str, time_limit_s: float = TIME_LIMIT_S) -> None:
        import quickjs

        self.ctx = quickjs.Context()
        self.ctx.set_time_limit(time_limit_s)
        self.ctx.set_memory_limit(MEMORY_LIMIT)
        self.ctx.set_max_stack_size(QUICKJS_STACK)
        for code in (source, WRAPPER, HOG, LOOP, RECURSE):
            self.ctx.eval(code)
        self.fns = {name: self.ctx.get(name) for name in ("__bench_run", "__bench_hog", "__bench_loop",
                                                          "__bench_depth")}

    def call(self, name: str, *args: Any) -> Any:
        return self.fns[name](*args)


class MiniRacer:
    """A mini-racer (V8 isolate) context with the limits set; the time limit goes with each call."""

    def __init__(self, source: str, time_limit_s: float = TIME_LIMIT_S) -> None:
        from py_mini_racer import MiniRacer as Racer

        self.time_limit_s = time_limit_s
        self.ctx = Racer()
        self.ctx.set_hard_memory_limit(MEMORY_LIMIT)
        for code in (source, WRAPPER, HOG, LOOP, RECURSE):
            self.ctx.eval(code, timeout_sec=time_limit_s)
        self.fns = {name: self.ctx.eval(name) for name in ("__bench_run", "__bench_hog", "__bench_loop",
                                                           "__bench_depth")}

    def call(self, name: str, *args: Any) -> Any:
        return self.fns[name](*args, timeout_sec=self.time_limit_s)


def make(engine: str, source: str, time_limit_s: float = TIME_LIMIT_S) -> QuickJs | MiniRacer:
    return QuickJs(source, time_limit_s) if engine == "quickjs" else MiniRacer(source, time_limit_s)


def decode(ctx: QuickJs | MiniRacer) -> Any:
    arg = orjson.dumps({"bytes": list(SAMPLE), "fPort": 1, "variables": {}}).decode()
    return orjson.loads(ctx.call("__bench_run", arg))


def aborts(ctx: QuickJs | MiniRacer, name: str) -> dict[str, Any]:
    """What calling name raises, after how long, and whether the context decodes afterwards."""
    t0 = time.perf_counter()
    try:
        ctx.call(name)
        raised = "nothing"
    except Exception as e:
        raised = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:60]
    ms = (time.perf_counter() - t0) * 1000
    try:
        decode(ctx)
        after = "decodes"
    except Exception as e:
        after = f"broken ({type(e).__name__})"
    return {"raised": raised, "ms": round(ms, 1), "after": after}


def rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def measure(engine: str, source: str, decodes: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    for _ in range(20):
        make(engine, source)
    out["construct_ms"] = round((time.perf_counter() - t0) / 20 * 1000, 2)
    ctx = make(engine, source)
    out["sample"] = decode(ctx)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(10_000):
            decode(ctx)
        best = min(best, (time.perf_counter() - t0) / 10_000 * 1e6)
    out["decode_us"] = round(best, 1)
    out["loop"] = aborts(ctx, "__bench_loop")
    out["memory_100ms"] = aborts(make(engine, source), "__bench_hog")
    out["memory_5s"] = aborts(make(engine, source, time_limit_s=5.0), "__bench_hog")
    ctx = make(engine, source)
    for _ in range(1000):
        decode(ctx)
    before = rss_mb()
    for _ in range(decodes):
        decode(ctx)
    out["rss_growth_mb"] = round(rss_mb() - before, 1)
    out["rss_mb"] = round(rss_mb(), 1)
    return out


def thread_check(engine: str, source: str) -> dict[str, str]:
    ctx = make(engine, source)

    def depth() -> str:
        try:
            return "ok" if ctx.call("__bench_depth", 1000) == 1000 else "wrong"
        except Exception as e:
            return f"{type(e).__name__}: {str(e).splitlines()[0]}"[:60]

    out = {"main_depth": depth()}

    def other() -> None:
        try:
            for _ in range(1000):
                decode(ctx)
            out["other_decode"] = "ok"
        except Exception as e:
            out["other_decode"] = f"{type(e).__name__}: {str(e).splitlines()[0]}"[:60]
        out["other_depth"] = depth()

    t = threading.Thread(target=other)
    t.start()
    t.join()
    return out


def child(engine: str, what: str, codec: Path, decodes: int) -> dict[str, Any]:
    """Runs one engine's measurements (or its thread check) in a fresh interpreter."""
    proc = subprocess.run([sys.executable, __file__, "--child", engine, what, "--codec", str(codec),
                           "--decodes", str(decodes)], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [""])[-1]
        return {"crashed": f"exit {proc.returncode} {tail}"[:80]}
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def table(rows: dict[str, dict[str, Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, dict):
            return f"{value['raised']} after {value['ms']} ms; then {value['after']}"
        return str(value)

    keys = [("construct_ms", "construct + load codec (ms)"), ("decode_us", "µs per decode (GS524N sample)"),
            ("loop", "while(true){} under 100 ms"), ("memory_100ms", "memory hog, 32 MB + 100 ms"),
            ("memory_5s", "memory hog, 32 MB + 5 s"), ("rss_growth_mb", "RSS growth over the decodes (MB)"),
            ("rss_mb", "RSS at the end (MB)"), ("main_depth", "recursion 1000 deep, making thread"),
            ("other_decode", "1000 decodes from another thread"),
            ("other_depth", "recursion 1000 deep, other thread")]
    width = max(len(label) for _, label in keys)
    lines = [f"| {'':{width}} | " + " | ".join(rows) + " |", f"|{'-' * (width + 2)}|" + "|".join(
        "-" * (len(e) + 2) for e in rows) + "|"]
    for key, label in keys:
        lines.append(f"| {label:{width}} | " + " | ".join(cell(rows[e].get(key, rows[e].get("crashed", "")))
                                                         for e in rows) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--codec", type=Path, default=DEFAULT_CODEC)
    ap.add_argument("--decodes", type=int, default=100_000)
    ap.add_argument("--child", nargs=2, metavar=("ENGINE", "WHAT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.codec.exists():
        print(f"no codec at {args.codec}: put the vendor's GS524N ChirpStack codec there (see SOURCES.md "
              "beside it) or name one with --codec", file=sys.stderr)
        return 2
    source = args.codec.read_text(encoding="utf-8")
    if args.child:
        engine, what = args.child
        result = measure(engine, source, args.decodes) if what == "measure" else thread_check(engine, source)
        print(json.dumps(result))
        return 0
    rows: dict[str, dict[str, Any]] = {}
    for engine in ENGINES:
        rows[engine] = child(engine, "measure", args.codec, args.decodes)
        rows[engine].update(child(engine, "threads", args.codec, args.decodes))
        print(f"{engine}: {json.dumps(rows[engine], ensure_ascii=False)}", file=sys.stderr)
    print(f"{args.decodes} decodes; Python {sys.version.split()[0]}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
