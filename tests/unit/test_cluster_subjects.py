"""kernel.cluster: the partition of a community and the subjects of the cluster's MQTT layout.

Against the real server: tests/integration/test_nats_layout.py."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel.cluster import MAX_PARTITIONS, fnv1a_32, partition_of, subject_map
from kernel.ids import ID_PATTERN

communities = st.from_regex(ID_PATTERN, fullmatch=True)


def test_fnv1a_32_matches_the_published_test_vectors() -> None:
    """The FNV-1a 32 vectors of the reference implementation (and Go's hash/fnv tests)."""
    assert fnv1a_32(b"") == 0x811C9DC5
    assert fnv1a_32(b"a") == 0xE40C292C
    assert fnv1a_32(b"foobar") == 0xBF9CF968


def test_partition_is_the_hash_of_the_community_modulo_the_count() -> None:
    """What nats-server's getHashPartition does with the one wildcard token partition(N, 1) names."""
    assert partition_of("c7", 16) == fnv1a_32(b"c7") % 16 == 15
    assert partition_of("c7", 128) == 127
    assert partition_of("anything", 1) == 0


@given(communities, st.integers(min_value=1, max_value=MAX_PARTITIONS))
def test_partition_is_in_range_and_stable(community: str, partitions: int) -> None:
    p = partition_of(community, partitions)
    assert 0 <= p < partitions
    assert p == partition_of(community, partitions)


def test_communities_spread_over_the_partitions() -> None:
    """A thousand communities land in every one of 16 partitions, none with more than twice its share."""
    counts = [0] * 16
    for i in range(1000):
        counts[partition_of(f"community-{i}", 16)] += 1
    assert min(counts) > 0 and max(counts) < 2 * 1000 / 16


@pytest.mark.parametrize("partitions", [0, -1, MAX_PARTITIONS + 1])
def test_partition_count_out_of_bounds_is_refused(partitions: int) -> None:
    with pytest.raises(ValueError, match="partitions must be between 1 and"):
        partition_of("c7", partitions)
    with pytest.raises(ValueError, match="partitions must be between 1 and"):
        subject_map("cb", partitions)


def test_the_mapping_of_the_default_prefix() -> None:
    m = subject_map("cb", 16)
    assert m.source == "cb.*.*.*.*"
    assert m.destination == "cbp.{{partition(16,1)}}.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}.{{wildcard(4)}}"
    assert m.partition_filter(0) == "$MQTT.msgs.cbp.0.>"
    assert m.partition_filter(15) == "$MQTT.msgs.cbp.15.>"
    assert m.all_partitions_filter == "$MQTT.msgs.cbp.>"


def test_a_topic_is_stored_under_its_mapped_subject_and_comes_back() -> None:
    m = subject_map("cb", 16)
    topic = "cb/c7/smoke_detector/d7/telemetry"
    stored = m.mapped_subject(topic)
    assert stored == "$MQTT.msgs.cbp.15.c7.smoke_detector.d7.telemetry"
    assert m.topic_of(stored) == topic
    assert m.topic_of(stored.removeprefix("$MQTT.msgs.")) == topic
    assert m.partition_of_subject(stored) == 15
    assert m.topic_of(m.mapped_subject("cb/c7/smoke_detector/d7/status")) == "cb/c7/smoke_detector/d7/status"


def test_a_prefix_of_several_levels_becomes_dotted_tokens() -> None:
    m = subject_map("city/district-3/cb", 4)
    assert m.prefix_tokens == ("city", "district-3", "cb")
    assert m.source == "city.district-3.cb.*.*.*.*"
    assert m.destination.startswith("city.district-3.cbp.{{partition(4,1)}}.{{wildcard(1)}}.")
    topic = "city/district-3/cb/c7/water_meter/w1/telemetry"
    stored = m.mapped_subject(topic)
    assert stored == f"$MQTT.msgs.city.district-3.cbp.{partition_of('c7', 4)}.c7.water_meter.w1.telemetry"
    assert m.partition_filter(2) == "$MQTT.msgs.city.district-3.cbp.2.>"
    assert m.topic_of(stored) == topic


@given(communities, communities, communities, st.sampled_from(["telemetry", "status"]),
       st.integers(min_value=1, max_value=MAX_PARTITIONS))
def test_topic_of_inverts_mapped_subject(community: str, device_type: str, device: str, kind: str,
                                         partitions: int) -> None:
    m = subject_map("cb", partitions)
    topic = f"cb/{community}/{device_type}/{device}/{kind}"
    stored = m.mapped_subject(topic)
    assert m.topic_of(stored) == topic
    assert m.partition_of_subject(stored) == partition_of(community, partitions)
    # The mapped subject does not match the mapping's source again (its first token differs).
    assert stored.removeprefix("$MQTT.msgs.").split(".")[0] != m.source.split(".")[0]


@pytest.mark.parametrize("prefix", ["", "cb/", "/cb", "cb//x", "c b", "cb.x", "cb/#", "cb/+", "$SYS", "cb*", "cb>"])
def test_a_prefix_nats_cannot_map_is_refused_saying_why(prefix: str) -> None:
    with pytest.raises(ValueError, match="must be levels of letters, digits, _ and - separated by /"):
        subject_map(prefix, 16)


@pytest.mark.parametrize("subject", [
    "$MQTT.msgs.cb.c7.smoke_detector.d7.telemetry",  # not mapped
    "$MQTT.msgs.cbp.16.c7.smoke_detector.d7.telemetry",  # no such partition
    "$MQTT.msgs.cbp.x.c7.smoke_detector.d7.telemetry",
    "$MQTT.msgs.cbp.03.c7.smoke_detector.d7.telemetry",
    "$MQTT.msgs.cbp.3.c7.smoke_detector.d7.extra.telemetry",  # a level too many
    "$MQTT.msgs.cbp.3.c7.smoke_detector.telemetry",
    "$MQTT.msgs.cbp.3.c7.smoke_detector.d//7.telemetry",  # a topic level holding a dot
    "$MQTT.msgs.cbpx.3.c7.smoke_detector.d7.telemetry",
])
def test_topic_of_refuses_subjects_outside_the_layout(subject: str) -> None:
    with pytest.raises(ValueError):
        subject_map("cb", 16).topic_of(subject)


@pytest.mark.parametrize("topic", ["cb/c7/smoke_detector/d7", "x/c7/smoke_detector/d7/telemetry",
                                   "cb/c7/smoke_detector/d7/a/telemetry", "cb/c7//d7/telemetry"])
def test_mapped_subject_refuses_topics_outside_the_layout(topic: str) -> None:
    with pytest.raises(ValueError):
        subject_map("cb", 16).mapped_subject(topic)


def test_partition_agrees_with_an_independent_fnv() -> None:
    """A second implementation (FNV-1a written over Python ints, no masking until the end) agrees."""
    def reference(data: bytes) -> int:
        h = 2166136261
        for b in data:
            h = (h ^ b) * 16777619 % 2**32
        return h

    for i in range(500):
        name = hashlib.sha256(str(i).encode()).hexdigest()[: 1 + i % 64]
        assert fnv1a_32(name.encode()) == reference(name.encode())
