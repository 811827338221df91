"""Building a decoder that reads other systems' devices, from a site file's text (tests only)."""

from __future__ import annotations

import time
from typing import Any

import orjson

from app.config import settings_from_text
from ingest.decode import Decoder
from ingest.sources.reader import SourceReader
from ingest.sources.types.onenet import signature
from kernel.clock import ManualClock
from kernel.settings import Settings
from kernel.site import Site

# 2025-12-06T02:00:00Z, the service clock of these tests.
NOW_NS = 1_764_986_400 * 1_000_000_000

BASE = """
communities:
  - id: linfen-yicun
    name: 临汾一村
    grids: [{id: g1, name: 一网格}]
    buildings: [{id: b02, name: 2号楼, grid: g1}]
"""


def decoder_for(site_yaml: str, now_ns: int = NOW_NS) -> tuple[Decoder, SourceReader, Settings]:
    """A decoder with a source reader over BASE plus the given sources, profiles and devices."""
    settings = settings_from_text(BASE + site_yaml, source="site.yaml", env={})
    site = Site(settings)
    decoder = Decoder(settings.mqtt.prefix, site, ManualClock(now_ns), max_past_s=settings.ingest.max_past_s,
                      max_future_s=settings.ingest.max_future_s)
    reader = SourceReader(settings, site, decoder.reading)
    decoder.sources = reader
    return decoder, reader, settings


def as_bytes(value: object) -> bytes:
    """A JSON value as the bytes a source sends."""
    return value if isinstance(value, bytes) else orjson.dumps(value)


def ctwing_report(device: str, alarm_status: int, *, sn: int = -1, ts_ms: int | None = None,
                  battery: int = 80) -> bytes:
    """A CTWing (AEP) dataReport push of an NB-IoT smoke detector, as AEP's push documentation shows one."""
    return orjson.dumps({"upPacketSN": sn, "upDataSN": -1, "topic": "v1/up/ad",
                         "timestamp": ts_ms if ts_ms is not None else int(time.time() * 1000),
                         "tenantId": "2000033489", "serviceId": "1", "protocol": "lwm2m", "productId": "15083367",
                         "messageType": "dataReport", "deviceId": device, "IMEI": "868591052034413",
                         "payload": {"serviceData": {"Alarm_Status": alarm_status, "Battery_Level": battery}}})


def onenet_push(msg: dict[str, Any], token: str, nonce: str = "Xu2tP0qz") -> bytes:
    """A OneNET data push: msg as JSON text, signed Base64(MD5(token + nonce + msg))."""
    text = orjson.dumps(msg).decode()
    return orjson.dumps({"msg": text, "nonce": nonce, "signature": signature(token, nonce, text)})
