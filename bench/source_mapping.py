#!/usr/bin/env python3
"""What reading a device's message costs, per source: µs of CPU per reading in the decoder.

For each source type, a message as that system sends it goes through `Decoder.decode` (the one the
pipeline calls): the source's envelope, the device found by its address, the mapping (the source's
own table, or a profile's JMESPath fields, or a vendor codec when its file is present), then the
same validation as a native reading. The native path (our own JSON on `cb/...`) is measured beside
them. Each figure is the median of --repeats timed loops of --messages decodes each, in CPU time
(time.process_time), on one core; the service's other costs per reading (commit, rules, store) are
the same whatever the source, and are what bench/ingest_throughput.py measures.

Run: .venv/bin/python bench/source_mapping.py [--messages 20000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.chirpstack_events import uplink_json  # noqa: E402
from tests.sources_kit import NOW_NS, ctwing_report, decoder_for, onenet_push  # noqa: E402
from tests.unit.test_sources import SHELLY_SWITCH, TASMOTA_SENSOR  # noqa: E402

APP = "17c82e96-be03-4f38-aef3-f83d48582d97"
CODECS = REPO / "app/defaults/profiles/codecs"
SITE = """
sources:
  - {{id: z2m, type: zigbee2mqtt}}
  - {{id: lora, type: chirpstack, application_id: {app}}}
  - {{id: lora-gs, type: chirpstack, application_id: 0b7f0e8c-64f1-4b3b-8f63-8c3f2f25a0aa, profile: gs524n}}
{js_source}  - {{id: sockets, type: tasmota}}
  - {{id: shellies, type: shelly}}
  - {{id: aep, type: ctwing, token: "a secret token", profile: nb-smoke}}
  - {{id: mobile, type: onenet, token: "onenet push token", profile: nb-smoke-studio}}
devices:
  - {{id: sd-z, type: smoke_detector, community: linfen-yicun, building: b02, source: z2m, address: b02/301/smoke}}
  - {{id: wl-l, type: water_level, community: linfen-yicun, building: b02, source: lora, address: a84041000181c2e1}}
  - {{id: sd-g, type: smoke_detector, community: linfen-yicun, building: b02, source: lora-gs,
     address: 24e124535b316056}}
  - {{id: ev-t1, type: ebike_charger, community: linfen-yicun, building: b02, source: sockets, address: s1, port: 1}}
  - {{id: ev-t2, type: ebike_charger, community: linfen-yicun, building: b02, source: sockets, address: s1, port: 2}}
  - {{id: ev-s, type: ebike_charger, community: linfen-yicun, building: b02, source: shellies, address: sp1, port: 2}}
  - {{id: sd-c, type: smoke_detector, community: linfen-yicun, building: b02, source: aep, address: nb1}}
  - {{id: sd-o, type: smoke_detector, community: linfen-yicun, building: b02, source: mobile, address: nb-smoke-0301}}
{js_device}"""
JS_SOURCE = ("  - {id: lora-js, type: chirpstack, application_id: 5c1d7a2e-0f5e-4b7e-9c1e-3a9b2d4e6f70, "
             "profile: gs524n-js}\n")
JS_DEVICE = ("  - {id: sd-j, type: smoke_detector, community: linfen-yicun, building: b02, source: lora-js, "
             "address: 24e124535b316057}\n")


def cases(with_codec: bool) -> dict[str, tuple[str, list[bytes], int]]:
    """name → (topic, distinct messages to cycle through, readings each gives)."""
    z2m = json.loads((REPO / "tests/fixtures/zigbee2mqtt/expected.json").read_text())["cases"]
    smoke = next(c["message"] for c in z2m if c["name"] == "heiman_smoke_alarm").encode()
    gs = {"version": 2, "protocol": 2, "type": "smoke sensor", "battery": 97, "concentration": 0,
          "temperature": 28, "event": "normal"}
    ms = NOW_NS // 1_000_000
    out = {
        "native (cb/… JSON)": ("cb/linfen-yicun/smoke_detector/sd-n/telemetry",
                               [orjson.dumps({"seq": i, "alarm": False, "battery_pct": 90}) for i in range(1000)], 1),
        "zigbee2mqtt": ("zigbee2mqtt/b02/301/smoke", [smoke], 1),
        "chirpstack, object": (f"application/{APP}/device/a84041000181c2e1/event/up",
                               [uplink_json("a84041000181c2e1", APP, f_cnt=i + 1, f_port=2, data=b"\x01",
                                            obj={"level_cm": 12.5}, rssi=[-101, -96]) for i in range(1000)], 1),
        "chirpstack, profile gs524n": (
            "application/0b7f0e8c-64f1-4b3b-8f63-8c3f2f25a0aa/device/24e124535b316056/event/up",
            [uplink_json("24e124535b316056", "0b7f0e8c-64f1-4b3b-8f63-8c3f2f25a0aa", f_cnt=i + 1, f_port=85,
                         data=bytes.fromhex("22176100001C"), obj=gs, rssi=[-101]) for i in range(1000)], 1),
        "tasmota, 2-port strip": ("tele/s1/SENSOR", [TASMOTA_SENSOR.replace(b"2025-12-06T09:59:30",
                                                                            b"2025-12-06T10:00:00")], 2),
        "shelly gen2": ("sp1/status/switch:1", [orjson.dumps(SHELLY_SWITCH)], 1),
        "ctwing push, profile nb-smoke": ("/ingest/ctwing/aep",
                                          [ctwing_report("nb1", 7, sn=i, ts_ms=ms - i) for i in range(1000)], 1),
        "onenet push, profile nb-smoke-studio": ("/ingest/onenet/mobile", [onenet_push(
            {"messageType": "notify", "notifyType": "property", "deviceName": "nb-smoke-0301",
             "data": {"id": str(i), "params": {"SmokeSensorState": {"value": 0, "time": ms - i},
                                               "BatteryPercentage": {"value": 90, "time": ms - i}}}},
            "onenet push token") for i in range(1000)], 1),
    }
    if with_codec:
        app = "5c1d7a2e-0f5e-4b7e-9c1e-3a9b2d4e6f70"
        out["chirpstack, codec gs524n-js (QuickJS)"] = (
            f"application/{app}/device/24e124535b316057/event/up",
            [orjson.dumps({"deviceInfo": {"devEui": "24e124535b316057"}, "fCnt": i + 1, "fPort": 85,
                           "data": base64.b64encode(bytes.fromhex("221E64001C40")).decode()}) for i in range(1000)],
            1)
    return out


def measure(decode: object, topic: str, messages: list[bytes], n: int, repeats: int) -> float:
    """Median CPU µs per decode over `repeats` loops of n decodes."""
    results = []
    for _ in range(repeats):
        start = time.process_time()
        for i in range(n):
            decode(topic, messages[i % len(messages)])  # type: ignore[operator]
        results.append((time.process_time() - start) / n * 1e6)
    return statistics.median(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with_codec = (CODECS / "milesight-gs524n.js").is_file()
    site = SITE.format(app=APP, js_source=JS_SOURCE if with_codec else "", js_device=JS_DEVICE if with_codec else "")
    rows = []
    for name, (topic, messages, readings) in cases(with_codec).items():
        decoder, reader, _ = decoder_for(site)
        reader.on_duplicate = None
        sample = decoder.decode(topic, messages[0])
        got = sample if isinstance(sample, list) else [sample]
        kinds = {type(g).__name__ for g in got}
        if kinds != {"Reading"} or len(got) != readings:
            print(f"FAIL {name}: {got}", file=sys.stderr)
            return 1
        if "push" in name or "chirpstack" in name:
            # (the loop repeats its messages: they are not duplicates here)
            reader._seen = {k: _Never() for k in reader._seen}  # type: ignore[misc]
        us = measure(decoder.decode, topic, messages, args.messages, args.repeats)
        rows.append((name, us, us / readings))
    print(f"{'source':40} {'µs/message':>11} {'µs/reading':>11}")
    for name, us, per in rows:
        print(f"{name:40} {us:11.1f} {per:11.1f}")
    if not with_codec:
        print("(the vendor codec rows need app/defaults/profiles/codecs/milesight-gs524n.js: codecs/SOURCES.md)")
    return 0


class _Never(dict):  # type: ignore[type-arg]
    """A dedup window that remembers nothing (the loop repeats its messages)."""

    def __contains__(self, key: object) -> bool:
        return False

    def __setitem__(self, key: object, value: object) -> None:
        return None

    def __len__(self) -> int:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
