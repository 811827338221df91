"""The cluster's subjects (CONTRACT §12): where the NATS server puts a device's MQTT publish.

A device publishes to `{prefix}/{community}/{device_type}/{device_id}/{kind}` on any node's MQTT
listener. The server turns the topic into the subject `{prefix}.{community}.{device_type}.{device_id}.
{kind}` (each `/` a `.`), the account's subject mapping puts the community's partition in front —
`cb.*.*.*.*` → `cbp.{{partition(N,1)}}.{{wildcard(1)}}.…` — and a QoS 1 publish is stored, before its
PUBACK, in the server's own stream `$MQTT_msgs` under `$MQTT.msgs.` + the mapped subject. The service
reads that stream with one consumer per partition (`$MQTT.msgs.cbp.<p>.>`).

`SubjectMap` is that layout, written once for both sides: `cbrain cluster nats-config` writes its
mapping into the servers' configuration, the service derives its consumers' filters and the devices'
topics from it. `partition_of` computes what the server's `partition(N, 1)` computes for a community.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The stream in which nats-server stores every QoS 1 and 2 message its MQTT clients publish (the
# name and subject prefix are the server's: server/mqtt.go, mqttStreamName and mqttStreamSubjectPrefix).
MQTT_MSGS_STREAM = "$MQTT_msgs"
MQTT_MSGS_SUBJECT_PREFIX = "$MQTT.msgs."

# The topic prefix of the site file (kernel/settings/service.py): one or more levels.
PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")
# Levels of a device topic after the prefix: community, device type, device id, kind.
DEVICE_LEVELS = 4
# The bounds of ClusterSettings.partitions.
MAX_PARTITIONS = 1024

_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193


def fnv1a_32(data: bytes) -> int:
    """The 32-bit FNV-1a hash of data (Go's hash/fnv New32a, which nats-server's partition() uses)."""
    h = _FNV32_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV32_PRIME) & 0xFFFFFFFF
    return h


def partition_of(community: str, partitions: int) -> int:
    """The partition of a community: what nats-server's `{{partition(partitions, 1)}}` makes of it.

    The server (server/subject_transform.go, getHashPartition) hashes the bytes of the named
    wildcard tokens — here the one token, the community — concatenated without a separator, with
    FNV-1a 32, modulo the number of partitions.
    """
    _check_partitions(partitions)
    return fnv1a_32(community.encode()) % partitions


def _check_partitions(partitions: int) -> None:
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise ValueError(f"partitions must be between 1 and {MAX_PARTITIONS}, not {partitions}")


@dataclass(frozen=True, slots=True)
class SubjectMap:
    """The subjects of one topic prefix split into `partitions` partitions; make it with subject_map()."""

    prefix: str
    partitions: int

    @property
    def prefix_tokens(self) -> tuple[str, ...]:
        """The prefix's levels as subject tokens: `cb` → (cb,), `site/cb` → (site, cb)."""
        return tuple(self.prefix.split("/"))

    @property
    def partitioned_prefix(self) -> str:
        """The tokens the mapped subjects start with: the prefix with `p` after its last level
        (`cb` → `cbp`, `site/cb` → `site.cbp`), so that no mapped subject matches the source again."""
        return ".".join((*self.prefix_tokens[:-1], self.prefix_tokens[-1] + "p"))

    @property
    def source(self) -> str:
        """The mapping's source: every device subject under the prefix (`cb.*.*.*.*`)."""
        return ".".join((*self.prefix_tokens, *("*" * DEVICE_LEVELS)))

    @property
    def destination(self) -> str:
        """The mapping's destination: the community's partition, then the device subject's levels."""
        wildcards = (f"{{{{wildcard({i})}}}}" for i in range(1, DEVICE_LEVELS + 1))
        return ".".join((self.partitioned_prefix, f"{{{{partition({self.partitions},1)}}}}", *wildcards))

    def partition_filter(self, partition: int) -> str:
        """The `$MQTT_msgs` subject filter of one partition (`$MQTT.msgs.cbp.3.>`)."""
        if not 0 <= partition < self.partitions:
            raise ValueError(f"partition {partition} is not in 0..{self.partitions - 1}")
        return f"{MQTT_MSGS_SUBJECT_PREFIX}{self.partitioned_prefix}.{partition}.>"

    @property
    def all_partitions_filter(self) -> str:
        """The `$MQTT_msgs` subject filter of every partition (`$MQTT.msgs.cbp.>`)."""
        return f"{MQTT_MSGS_SUBJECT_PREFIX}{self.partitioned_prefix}.>"

    def mapped_subject(self, topic: str) -> str:
        """The subject under which the server stores a QoS 1 publish to a device topic
        (`cb/c7/smoke_detector/d7/telemetry` → `$MQTT.msgs.cbp.<p>.c7.smoke_detector.d7.telemetry`)."""
        if not topic.startswith(self.prefix + "/"):
            raise ValueError(f"{topic!r} is not under the prefix {self.prefix!r}")
        levels = self._device_levels(topic[len(self.prefix) + 1:].split("/"), topic)
        partition = partition_of(levels[0], self.partitions)
        return f"{MQTT_MSGS_SUBJECT_PREFIX}{self.partitioned_prefix}.{partition}.{'.'.join(levels)}"

    def partition_of_subject(self, subject: str) -> int:
        """The partition a stored (or mapped) subject is in."""
        return self._split(subject)[0]

    def topic_of(self, subject: str) -> str:
        """The device's MQTT topic of a stored subject (`$MQTT.msgs.cbp.3.c7.t.d7.telemetry` or the
        mapped subject without `$MQTT.msgs.`) → `cb/c7/t/d7/telemetry`."""
        return "/".join((self.prefix, *self._split(subject)[1]))

    def _split(self, subject: str) -> tuple[int, list[str]]:
        """(partition, device levels) of a stored or mapped subject; ValueError if it is neither."""
        rest = subject.removeprefix(MQTT_MSGS_SUBJECT_PREFIX)
        head = self.partitioned_prefix + "."
        if not rest.startswith(head):
            raise ValueError(f"{subject!r} is not under {self.partitioned_prefix!r}")
        tokens = rest[len(head):].split(".")
        if not tokens[0].isdigit() or int(tokens[0]) >= self.partitions or str(int(tokens[0])) != tokens[0]:
            raise ValueError(f"{subject!r} has no partition of 0..{self.partitions - 1} after the prefix")
        return int(tokens[0]), self._device_levels(tokens[1:], subject)

    @staticmethod
    def _device_levels(levels: list[str], what: str) -> list[str]:
        """The levels of a device subject or topic, refusing other shapes (an MQTT topic holding `.` or
        `/` in a level is stored with `//` escapes no device topic of the contract has)."""
        if len(levels) != DEVICE_LEVELS or not all(levels) or any("/" in level or "." in level for level in levels):
            raise ValueError(f"{what!r} is not community/device_type/device_id/kind under the prefix")
        return levels


def subject_map(prefix: str, partitions: int) -> SubjectMap:
    """The subject layout of a topic prefix (`cb`, or several levels like `site/cb`) over partitions;
    ValueError, saying why, for a prefix NATS cannot map or a partition count out of bounds."""
    if not PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"prefix {prefix!r} must be levels of letters, digits, _ and - separated by / "
                         "(e.g. cb or site/cb)")
    _check_partitions(partitions)
    return SubjectMap(prefix, partitions)
