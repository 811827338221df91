"""The duty wall under load, measured through a real headless Chromium.

10,000 devices (one reading each) and 500 firing alerts, then a stream of new alerts at 10 a second:
  - how long the wall takes to render (navigation to the last alert element in the DOM),
  - how long a new alert takes from its publish to its element on the open wall,
  - the page's JS heap (performance.memory, precise) sampled over the run: flat or growing.

    .venv/bin/python bench/wall_render.py --devices 10000 --alerts 500 --rate 10 --duration 60

Runs Mosquitto and `cbrain run` (SQLite reading store) in a temporary directory.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

_p = str(Path(__file__).resolve().parents[1])
if _p not in sys.path:
    sys.path.insert(0, _p)

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.servers import Mosquitto  # noqa: E402
from tests.service import DevicePublisher, ServiceProcess, site_config, telemetry  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--enable-precise-memory-info", "--js-flags=--expose-gc"]
COMMUNITY = "linfen-yicun"


def main() -> int:
    """Run the benchmark and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--alerts", type=int, default=500)
    ap.add_argument("--rate", type=float, default=10.0, help="new alerts a second during the run")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of new alerts (bounded)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        broker = Mosquitto(tmp / "mosquitto")
        broker.start()
        prefix = "bench"
        config = site_config(tmp, mqtt_url=broker.url, influx_url=None, database="x", prefix=prefix)
        svc = ServiceProcess(config).start()
        try:
            svc.wait_healthy()
            pub = DevicePublisher(broker.url, "bench-devices")
            now_ms = int(time.time() * 1000)
            for i in range(a.devices):
                smoky = i < a.alerts
                pub.publish(telemetry(prefix, COMMUNITY, "smoke_detector", f"sd-bench-{i:05d}"),
                            {"ts": now_ms, "seq": 0, "obscuration_pct_m": 6.0 if smoky else 0.5})
            pub.wait_acked()
            svc.wait_metric('cb_alerts_open{level="yellow"}', a.alerts, timeout=120)
            print(f"devices {a.devices}, firing alerts {a.alerts}")
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                page = browser.new_context(viewport={"width": 1920, "height": 1080}, base_url=svc.base).new_page()
                page.goto("/login")
                page.fill("#token", "example-token-street")
                t0 = time.monotonic()
                page.click("button[type=submit]")
                page.wait_for_url("**/wall")
                page.wait_for_function(f"document.querySelectorAll('li.alert').length >= {a.alerts}")
                render_s = time.monotonic() - t0
                print(f"wall render (login POST to {a.alerts} alert elements): {render_s:.2f} s")
                latencies, heap = [], []
                n = int(a.duration * a.rate)
                start = time.monotonic()
                for k in range(n):
                    due = start + k / a.rate
                    time.sleep(max(0.0, due - time.monotonic()))
                    device = f"sd-new-{k:05d}"
                    sent = time.monotonic()
                    pub.publish(telemetry(prefix, COMMUNITY, "smoke_detector", device),
                                {"ts": int(time.time() * 1000), "seq": 0, "obscuration_pct_m": 6.0})
                    if k % 10 == 0:  # measure one in ten; the others keep the rate up
                        shown = ("[...document.querySelectorAll('li.alert .what')]"
                                 f".some(e => e.textContent.includes('{device}'))")
                        page.wait_for_function(shown, timeout=10_000, polling=20)
                        latencies.append(time.monotonic() - sent)
                    if k % int(a.rate * 5) == 0:
                        page.evaluate("window.gc && window.gc()")
                        heap.append(page.evaluate("performance.memory.usedJSHeapSize") / 1e6)
                browser.close()
            latencies.sort()
            print(f"new alert on the wall while {a.rate:g}/s arrive ({len(latencies)} measured): "
                  f"median {statistics.median(latencies) * 1000:.0f} ms, "
                  f"p95 {latencies[int(len(latencies) * 0.95) - 1] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms")
            print(f"JS heap over {a.duration:g} s (MB, every 5 s): " + " ".join(f"{h:.1f}" for h in heap))
            print(f"JS heap first {heap[0]:.1f} MB, last {heap[-1]:.1f} MB")
        finally:
            svc.stop()
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
