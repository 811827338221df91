"""The cluster (CONTRACT §12, docs/scaling.md): several instances over one NATS JetStream cluster."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from kernel.ids import Identifier
from kernel.settings.base import _Model


class ClusterSettings(_Model):
    """Where the NATS cluster is, who this instance is, and how the communities are shared out."""

    # The NATS URLs of the cluster's nodes (nats://host:port); an instance connects to any of them.
    nats: list[str] = Field(min_length=1)
    # This instance's name, unique among the live instances (its consumer pins and leases carry it).
    instance: Identifier
    # Partitions of the communities (a community is always in one): the unit an instance holds. The
    # NATS subject mapping written by `cbrain cluster nats-config` must use the same number.
    partitions: int = Field(default=16, ge=1, le=1024)
    # An instance not heard from for this long is taken for dead and its partitions are taken over.
    failover_s: float = Field(default=10.0, ge=2.0, le=300.0)
    # How often a held partition's state is checkpointed into the cluster (the stream is acknowledged
    # up to the checkpoint: what came after it is read again by whoever holds the partition next).
    checkpoint_s: float = Field(default=1.0, gt=0.0, le=60.0)
    # How long a message handed to an instance may stay unacknowledged before the stream hands it out
    # again; longer than a checkpoint takes, shorter than failover_s.
    ack_wait_s: float = Field(default=6.0, ge=1.0, le=300.0)
    # Prefix of the JetStream buckets, the consumers and the instances' own subjects.
    name: str = Field(default="cb", pattern=r"^[A-Za-z0-9_-]{1,32}$")

    @field_validator("nats")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("nats://", "tls://")):
                raise ValueError(f"{url!r} is not a NATS URL (nats://host:port)")
        return urls

    @model_validator(mode="after")
    def _timings(self) -> ClusterSettings:
        if not self.checkpoint_s < self.ack_wait_s < self.failover_s:
            raise ValueError("cluster timings must be checkpoint_s < ack_wait_s < failover_s "
                             f"(now {self.checkpoint_s} / {self.ack_wait_s} / {self.failover_s})")
        return self
