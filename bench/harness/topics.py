"""The site the alert benchmark talks to: its community, probe device, payloads and topics."""

from __future__ import annotations

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
