"""Partitions of the communities in the cluster: the same answer as the NATS subject mapping `partition()`."""
from __future__ import annotations


def partition_of(community: str, partitions: int) -> int:
    h = 0x811C9DC5
    for b in community.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h % partitions
def partition_filter(prefix: str, p: int) -> str:
    return f"$MQTT.msgs.{prefix}p.{p}.>"
def topic_of(subject: str) -> str | None:
    parts = subject.split(".")
    if len(parts) < 5 or parts[0] != "$MQTT" or parts[1] != "msgs":
        return None
    prefix = parts[2][:-1]
    return "/".join([prefix, *parts[4:]])
