"""Ending a task for sure. Python 3.11's asyncio.wait_for, and the NATS client's requests over it, can
swallow a cancellation that comes just as what they wait for completes (gh-86296): a loop that swallowed
one goes round again, and whoever awaits it after cancelling it once waits forever (a partition's release
that never ends, and the partition never moves)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

log = logging.getLogger("cbrain.cluster")

CANCEL_EVERY_S = 0.1  # a task still running is cancelled again this often
CANCEL_TRIES = 100  # (10 s): then it is left running, and the log says so


async def end(task: asyncio.Task[Any] | None) -> None:
    """Cancel the task, again while it runs, until it has ended; what it raised is not raised here."""
    if task is None:
        return
    for _ in range(CANCEL_TRIES):
        if task.done():
            break
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_EVERY_S)
    if not task.done():
        log.warning("task %s did not end when cancelled %d times", task.get_name(), CANCEL_TRIES)
    elif not task.cancelled():
        with contextlib.suppress(Exception):
            task.exception()  # (retrieved: not logged as never retrieved)


async def ended(task: asyncio.Task[Any]) -> None:
    """Wait until the task has ended, without raising what it raised, and without passing a cancellation
    of the waiter on to it: `await task` cancels the task when its waiter is cancelled, so a loop cancelled
    while it waited for a partition's service to stop would cancel that service half-way through its
    stop, and the next one to wait for the service would be handed the CancelledError."""
    await asyncio.wait({task})
    if not task.cancelled():
        with contextlib.suppress(Exception):
            task.exception()  # (retrieved: not logged as never retrieved)
