"""The cluster's pure parts: who should hold a partition, what an instance refuses to start with, and
the order a takeover hands readings on in."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from app.cluster.instance import ClusterInstance
from app.cluster.members import wanted_holder
from ingest.nats_source import NatsPartitionSource
from kernel.errors import ConfigError
from kernel.settings import parse_settings

SITE = (Path(__file__).resolve().parents[2] / "examples" / "site.yaml").read_text(encoding="utf-8")
CLUSTER = "\ncluster: {nats: [nats://127.0.0.1:4222], instance: i1}\n"


def test_every_instance_agrees_and_a_join_moves_only_what_goes_to_the_newcomer() -> None:
    two = {p: wanted_holder(p, ["i1", "i2"]) for p in range(64)}
    assert two == {p: wanted_holder(p, ["i2", "i1"]) for p in range(64)}  # (order does not matter)
    assert set(two.values()) == {"i1", "i2"}
    three = {p: wanted_holder(p, ["i1", "i2", "i3"]) for p in range(64)}
    moved = {p for p in range(64) if three[p] != two[p]}
    assert moved and all(three[p] == "i3" for p in moved)
    assert wanted_holder(0, []) is None


def _without_resources(text: str) -> str:
    raw = yaml.safe_load(text)
    for c in raw["communities"]:
        for key in ("shelters", "supplies", "vulnerable"):
            c.pop(key, None)
    return str(yaml.safe_dump(raw, allow_unicode=True))


def test_a_cluster_needs_influxdb_and_refuses_sources_and_resources() -> None:
    bare = _without_resources(SITE)
    with pytest.raises(ConfigError, match=r"influx\.url"):
        ClusterInstance(parse_settings(bare + CLUSTER, env={"CB_INFLUX_URL": ""}))
    sourced = bare + CLUSTER + "sources: [{id: z2m, type: zigbee2mqtt}]\n"
    with pytest.raises(ConfigError, match="sources"):
        ClusterInstance(parse_settings(sourced, env={}))
    # The example site lists shelters, supplies and vulnerable residents: not served by a cluster yet.
    assert "shelters:" in SITE
    with pytest.raises(ConfigError, match="shelters, supplies and vulnerable residents"):
        ClusterInstance(parse_settings(SITE + CLUSTER, env={}))
    only_shelters = yaml.safe_load(bare)
    only_shelters["communities"][1]["shelters"] = [{"id": "sh1", "name": "S", "capacity": 10}]
    with pytest.raises(ConfigError, match="shelters"):
        ClusterInstance(parse_settings(yaml.safe_dump(only_shelters, allow_unicode=True) + CLUSTER, env={}))
    assert ClusterInstance(parse_settings(bare + CLUSTER, env={})).me == "i1"


class _Msg:
    def __init__(self, seq: int, delivered: int) -> None:
        self.subject = f"$MQTT.msgs.cbp.0.c1.water_level.d{seq}.telemetry"
        self.data = b"{}"
        self.metadata = SimpleNamespace(sequence=SimpleNamespace(stream=seq), num_delivered=delivered)
        self.acked = False

    async def ack(self) -> None:
        self.acked = True


class _Pulls:
    """What the stream hands out, pull after pull."""

    def __init__(self, batches: list[list[_Msg]]) -> None:
        self.batches = batches

    async def fetch(self, _n: int, timeout: float) -> list[Any]:  # noqa: ASYNC109 (nats-py's signature)
        if self.batches:
            return list(self.batches.pop(0))
        await asyncio.sleep(timeout)
        raise TimeoutError


async def test_a_takeover_hands_on_what_the_last_holder_left_first_in_stream_order() -> None:
    """Newer messages come before the dead holder's (redelivered only after their ack wait): the source
    holds them until the outstanding ones are back, then hands everything on in stream order."""
    new = [_Msg(10, 1), _Msg(11, 1)]
    old = [_Msg(7, 2), _Msg(4, 2)]
    source = NatsPartitionSource(_Pulls([new, old]), generation=3, topic_of=lambda s: s, may_pull=lambda: True,
                                 outstanding=2, barrier_s=5.0)
    source.start()
    try:
        await asyncio.wait_for(source.wait(), 2)
        got = source.drain(10)
    finally:
        await source.stop()
    assert [d.mid for d in got] == [4, 7, 10, 11]
    # Acknowledged only with a checkpoint, and only what was committed before it was taken.
    source.ack([(3, 4, 1), (3, 7, 1), (99, 10, 1)])
    mark = source.committed_mark()
    source.ack([(3, 10, 1)])
    assert await source.acks_upto(mark) == 2
    assert [m.acked for m in old] == [True, True] and not new[0].acked
