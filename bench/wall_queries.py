"""The street wall's queries as data grows, and what the dashboard writer costs the service.

1. Writer: a generated site of --devices devices (100 to a community, 10 to a building), every device
   heard once; times GrafanaPointsWriter's passes (all devices, changed devices, the summaries) and prints the
   share of one core they take at the default intervals. The writer adds no code to the ingest path:
   its cost per reading ingested is nil; it reads the device book between batches.
2. Load: a private influxd gets --hours of readings from --devices devices at one every --interval-s,
   plus what the service writes for the dashboards over that time (device_state every 5 min per
   device, community_summary and building_state every 30 s, some alert events), in line protocol
   batches of --batch points; bounded by --max-load-s.
3. Queries: every query of the street wall (zh-CN), substituted as Grafana does for its default
   range (now-6h to now), run --repeats times; median and worst printed.

    .venv/bin/python bench/wall_queries.py                       # 10,000 devices, 24 h (about 20 M points)
    .venv/bin/python bench/wall_queries.py --hours 2 --devices 2000   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from queue import Queue

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dashboards.build import load_all  # noqa: E402
from dashboards.grafana_macros import queries_of, substitute, variables_of  # noqa: E402

PER_COMMUNITY, PER_BUILDING = 100, 10
TYPES = ["smoke_detector"] * 6 + ["ebike_charger"] * 2 + ["water_level", "fire_lane"]


def writer_cost(devices: int) -> dict[str, float]:
    """Seconds per GrafanaPointsWriter pass at this many devices, and the share of a core at the default intervals."""
    from app.grafana_points import GrafanaPointsWriter
    from device_sim.sites import generate_site
    from ingest.device_book import DeviceBook
    from kernel.clock import ManualClock
    from kernel.ids import DeviceType
    from kernel.reading import Reading
    from kernel.settings import DashboardSettings, Settings
    from kernel.site import Site

    raw = generate_site(max(1, devices // PER_COMMUNITY), PER_COMMUNITY // PER_BUILDING, PER_BUILDING)
    settings = Settings.model_validate(raw)
    site = Site(settings)
    book = DeviceBook(site)
    now = time.time_ns()
    for d in settings.devices:
        book.observe(Reading(d.community, DeviceType(d.type), d.id, now, {"battery_pct": 90.0, "rssi_dbm": -70.0},
                             received_ns=now))

    class Nowhere:
        name, url = "none", "none://"

        async def write(self, points: list[object]) -> None:
            return None

    ds = DashboardSettings()
    wall = GrafanaPointsWriter(ds, site, book, {}, Nowhere(), ManualClock(now))  # type: ignore[arg-type]

    def timed(fn: object, n: int = 5) -> float:
        samples = []
        for _ in range(n):
            t = time.perf_counter()
            fn()  # type: ignore[operator]
            samples.append(time.perf_counter() - t)
        return statistics.median(samples)

    every = timed(lambda: wall.device_points(now, every=True))
    keys = list(book.devices)
    rng = random.Random(1)

    def one_percent_changed() -> None:
        for k in rng.sample(keys, max(1, len(keys) // 100)):
            book.devices[k].last_fields = {"battery_pct": rng.uniform(0, 100), "rssi_dbm": -70.0}
        wall.device_points(now, every=False)

    changed = timed(one_percent_changed)
    summary = timed(lambda: wall.summary_points(now))
    asyncio.run(wall.write_once(devices=True, every_device=True, summary=True))
    share = every / ds.device_state_interval_s + changed / ds.device_check_s + summary / ds.summary_interval_s
    return {"devices": float(len(book.devices)), "all_devices_s": every, "check_1pct_changed_s": changed,
            "summaries_s": summary, "core_share": share}


def lines(devices: int, hours: float, interval_s: int, now_s: int) -> object:
    """Every point of the load, in time order, as line-protocol strings."""
    rng = random.Random(7)
    communities = max(1, devices // PER_COMMUNITY)
    start = now_s - int(hours * 3600)
    devs = []
    for i in range(devices):
        c, b = i // PER_COMMUNITY, (i % PER_COMMUNITY) // PER_BUILDING
        t = TYPES[i % len(TYPES)]
        tags = f"community=c{c:03d},device_id=d{i:05d},building=b{b:02d},grid=g{b // 4 + 1}"
        devs.append((t, tags, f"device_type={t}"))
    fields = {"smoke_detector": lambda: f"obscuration_pct_m={rng.random() * 0.5:.3f},battery_pct=88.0",
              "ebike_charger": lambda: f"current_a={rng.uniform(0, 6):.2f},charging=true",
              "water_level": lambda: f"level_cm={rng.uniform(0, 4):.1f}",
              "fire_lane": lambda: "occupied=false"}
    rules = ["smoke.alarm", "ebike.overcurrent", "water.level", "device.offline", "device.battery"]
    levels = ["blue", "yellow", "orange", "red"]
    for t in range(start, now_s, interval_s):
        ns = t * 1_000_000_000
        for i, (typ, tags, _) in enumerate(devs):
            yield f"{typ},{tags} {fields[typ]()} {ns + i}"
        if (t - start) % 300 < interval_s:  # device_state every 5 min
            for i, (_, tags, dtype) in enumerate(devs):
                yield (f"device_state,{tags},{dtype} online=1.0,battery_pct=88.0,rssi_dbm=-70.0,"
                       f"silent_s={rng.uniform(0, 60):.0f},fault=0.0,tamper=0.0 {ns + i}")
        for half in (0, 30):
            if half >= interval_s:
                break
            sns = (t + half) * 1_000_000_000
            for c in range(communities):
                yield (f"community_summary,community=c{c:03d},name=社区{c} firing_blue=0.0,firing_yellow=0.0,"
                       f"firing_orange=0.0,firing_red={float(rng.random() < 0.01)},unacknowledged=0.0,"
                       f"acknowledged=0.0,oldest_unacked_age_s=0.0,worst_level=0.0,devices_online=100.0,"
                       f"devices_offline=0.0,charging_a={rng.uniform(0, 60):.1f} {sns}")
                for b in range(PER_COMMUNITY // PER_BUILDING):
                    yield (f"building_state,community=c{c:03d},building=b{b:02d},grid=g{b // 4 + 1} worst_level=0.0,"
                           f'open_alerts=0.0,firing=0.0,name="{b}号楼",lat={31.3 + c * 0.004:.5f},'
                           f"lon={121.45 + b * 0.0004:.5f} {sns + b}")
        for _ in range(rng.randint(0, 3)):  # a few alert events a minute across the street
            rule, level = rng.choice(rules), rng.choice(levels)
            ev = rng.choice(["fired", "acknowledged", "resolved"])
            yield (f"alert,community=c{rng.randrange(communities):03d},event={ev},level={level},rule={rule} "
                   f'alert_id="a{rng.getrandbits(40):x}",value=1.0,age_s={rng.uniform(10, 900):.0f},'
                   f'summary="【{level}】bench" {ns + 999_999}')


def load(url: str, db: str, devices: int, hours: float, interval_s: int, batch: int, max_s: float) -> tuple[int, float]:
    """Write the load with two posting threads; return the points written and seconds taken."""
    q: Queue[bytes | None] = Queue(maxsize=4)
    errors: list[str] = []

    def post() -> None:
        while (body := q.get()) is not None:
            req = urllib.request.Request(f"{url}/write?db={db}&precision=ns", data=body, method="POST")
            try:
                urllib.request.urlopen(req, timeout=300).read()
            except Exception as exc:
                errors.append(str(exc))

    threads = [threading.Thread(target=post, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    started = time.monotonic()
    now_s = int(time.time())
    n, buf = 0, []
    for line in lines(devices, hours, interval_s, now_s):  # type: ignore[attr-defined]
        buf.append(line)
        if len(buf) >= batch:
            q.put("\n".join(buf).encode())
            n += len(buf)
            buf = []
            if n % (batch * 40) == 0:
                print(f"  loaded {n / 1e6:.1f} M points in {time.monotonic() - started:.0f} s", flush=True)
            if time.monotonic() - started > max_s:
                print(f"  stopped loading at --max-load-s {max_s:.0f}", flush=True)
                break
    if buf:
        q.put("\n".join(buf).encode())
        n += len(buf)
    for _ in threads:
        q.put(None)
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"writes failed: {errors[0]}")
    return n, time.monotonic() - started


def main() -> int:
    """Run the three parts and print their figures."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", type=int, default=10_000)
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--interval-s", type=int, default=60)
    p.add_argument("--batch", type=int, default=50_000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--max-load-s", type=float, default=1800.0)
    p.add_argument("--all-dashboards", action="store_true", help="time every dashboard's queries, not only the wall's")
    args = p.parse_args()

    cost = writer_cost(args.devices)
    print(f"writer at {cost['devices']:.0f} devices: all devices {cost['all_devices_s'] * 1e3:.1f} ms, "
          f"changed check (1 % changed) {cost['check_1pct_changed_s'] * 1e3:.1f} ms, "
          f"summaries {cost['summaries_s'] * 1e3:.1f} ms per pass; "
          f"{cost['core_share'] * 100:.2f} % of one core at the default intervals; 0 µs per reading on ingest")

    from tests.servers import InfluxD

    with tempfile.TemporaryDirectory(prefix="cb-wall-bench-") as tmp:
        influx = InfluxD(Path(tmp) / "influxd")
        influx.start()
        try:
            influx.create_database("bench")
            n, took = load(influx.url, "bench", args.devices, args.hours, args.interval_s, args.batch,
                           args.max_load_s)
            print(f"loaded {n:,} points ({args.devices} devices, {args.hours:g} h at one per {args.interval_s} s, "
                  f"plus the dashboard measurements) in {took:.0f} s ({n / took:,.0f} points/s)")
            time.sleep(2.0)
            boards = [d for d in load_all().values() if args.all_dashboards or d["uid"] == "cb-wall"]
            now_ms = int(time.time() * 1000)
            print(f"{'query':64} {'median ms':>10} {'worst ms':>9} {'series':>7}")
            for d in boards:
                for q in queries_of(d):
                    from_ms, to_ms = q.range_ms(now_ms - 6 * 3600 * 1000, now_ms)
                    text = substitute(q.query, from_ms=from_ms, to_ms=to_ms,
                                      variables=variables_of(d, {"community": "c000"}), min_interval=q.min_interval)
                    samples, series = [], 0
                    for _ in range(args.repeats):
                        t = time.perf_counter()
                        res = influx.query(text, db="bench", epoch="ms")
                        samples.append(time.perf_counter() - t)
                        series = len(res["results"][0].get("series", []))
                    name = f"{d['uid']} {q.where}"[:64]
                    print(f"{name:64} {statistics.median(samples) * 1e3:10.1f} {max(samples) * 1e3:9.1f} {series:7d}",
                          flush=True)
            print(json.dumps({"writer": cost, "points": n, "load_s": took}))
        finally:
            influx.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
