"""docs/devices.md stays true: every `mosquitto_pub` example is accepted by the real decoder on the
example site, every device type has one, and the reason codes listed are the decoder's own."""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from ingest.decode import REASONS, Decoder
from kernel.clock import SystemClock
from kernel.reading import Reading, StatusUpdate
from kernel.settings import parse_settings
from kernel.site import Site

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "devices.md"
SITE_FILE = ROOT / "examples" / "site.yaml"
DEVICE_TYPES = ("smoke_detector", "ebike_charger", "water_level", "fire_lane", "battery_shed", "water_leak")
_FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.M | re.S)
_SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")


@dataclass(frozen=True)
class Publish:
    """One `mosquitto_pub` command of the page: its topic, payload and flags."""

    line: str
    topic: str
    payload: bytes
    qos: str | None
    retain: bool


def _expand(word: str) -> str:
    """Run `$(...)` command substitutions left in a shlex word through bash, as the reader's shell does."""
    def run(m: re.Match[str]) -> str:
        out = subprocess.run(["bash", "-c", m.group(1)], capture_output=True, text=True, check=True, timeout=10)
        return out.stdout.rstrip("\n")
    return _SUBSTITUTION.sub(run, word)


def publishes() -> list[Publish]:
    """Every mosquitto_pub command in the page's code blocks."""
    found = []
    for block in _FENCE.findall(DOC.read_text(encoding="utf-8")):
        for line in block.replace("\\\n", " ").splitlines():
            if not line.strip().startswith("mosquitto_pub"):
                continue
            words = shlex.split(line)
            opts: dict[str, str] = {}
            retain = False
            i = 1
            while i < len(words):
                if words[i] in ("-r", "--retain", "--will-retain"):
                    retain = retain or words[i] != "--will-retain"
                    i += 1
                    continue
                opts[words[i]] = words[i + 1]
                i += 2
            found.append(Publish(line, opts["-t"], _expand(opts["-m"]).encode(), opts.get("-q"), retain))
    return found


PUBLISHES = publishes()


@pytest.fixture(scope="module")
def decoder() -> Decoder:
    settings = parse_settings(SITE_FILE.read_text(encoding="utf-8"), source=str(SITE_FILE), env={})
    return Decoder(settings.mqtt.prefix, Site(settings), SystemClock(),
                   max_past_s=settings.ingest.max_past_s, max_future_s=settings.ingest.max_future_s)


def test_the_page_has_a_telemetry_example_for_every_device_type() -> None:
    shown = {p.topic.split("/")[2] for p in PUBLISHES if p.topic.endswith("/telemetry")}
    assert shown >= set(DEVICE_TYPES), f"no mosquitto_pub example for {set(DEVICE_TYPES) - shown}"


@pytest.mark.parametrize("pub", PUBLISHES, ids=[p.topic.split("/")[2] + ":" + p.topic.split("/")[-1]
                                                 + f"#{i}" for i, p in enumerate(PUBLISHES)])
def test_every_example_is_accepted_by_the_decoder(decoder: Decoder, pub: Publish) -> None:
    assert pub.qos == "1", f"the examples publish at QoS 1: {pub.line}"
    got = decoder.decode(pub.topic, pub.payload)
    if pub.topic.endswith("/status"):
        assert isinstance(got, StatusUpdate), f"{pub.line}\n  -> {got}"
        assert pub.retain, f"status is published retained: {pub.line}"
        return
    assert isinstance(got, Reading), f"{pub.line}\n  -> {got}"
    assert got.ignored_fields == 0, f"the example carries fields the decoder ignores: {pub.line}"
    assert got.fields, pub.line
    if got.device_id in {d.id for d in decoder.site.settings.devices}:
        assert got.building != "unknown", f"{got.device_id} is placed by the example site"


def _documented_reasons() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## What is rejected, and why", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", section, re.M)


def test_the_reason_codes_listed_are_exactly_the_decoders() -> None:
    documented = _documented_reasons()
    assert len(documented) == len(set(documented)), "a reason is listed twice"
    assert set(documented) <= set(REASONS), f"not a reason the decoder uses: {set(documented) - set(REASONS)}"
    assert set(REASONS) <= set(documented), f"the page does not explain: {set(REASONS) - set(documented)}"
