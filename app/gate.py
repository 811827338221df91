"""Side effects held back while a gate is shut: a partition of the cluster writes to the store and sends
on channels only while its instance is sure it still holds the partition (app/cluster/cell.py). A
write or a send refused here is retried like any other failure, and the checkpoint that would
acknowledge its readings fails for an instance that lost the partition, so the next holder does it."""

from __future__ import annotations

from collections.abc import Callable

from ingest.store_writer import Store
from kernel.errors import StoreError
from kernel.reading import Point
from notify.channels import Channel, Outcome
from notify.notification import Notification

SHUT = "this instance is not sure it still holds the partition (the cluster has not heard from it)"


class GatedStore:
    """A store that refuses writes, as retryable, while the gate is shut."""

    def __init__(self, store: Store, gate: Callable[[], bool]) -> None:
        self.store = store
        self.gate = gate
        self.name = store.name
        self.url = store.url

    async def write(self, points: list[Point]) -> None:
        if not self.gate():
            raise StoreError(SHUT, retryable=True, retry_after_s=0.5)
        await self.store.write(points)

    async def close(self) -> None:
        await self.store.close()


class GatedChannel:
    """A channel that fails its sends, as retryable, while the gate is shut."""

    def __init__(self, channel: Channel, gate: Callable[[], bool]) -> None:
        self.channel = channel
        self.gate = gate
        self.type = channel.type

    async def send(self, n: Notification) -> Outcome:
        if not self.gate():
            return Outcome(False, retryable=True, retry_after_s=0.5, error=SHUT)
        return await self.channel.send(n)
