"""Building a decoder that reads other systems' devices, from a site file's text (tests only)."""

from __future__ import annotations

import orjson

from app.config import settings_from_text
from ingest.decode import Decoder
from ingest.sources.reader import SourceReader
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
