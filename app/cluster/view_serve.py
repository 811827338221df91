"""A held partition's live view, served to every instance of the cluster (the cell's side of
app/cluster/view.py):

    requests on `{name}.view.p{N}` (queue group: one holder answers) ─► LiveView ─► answer (wire.py)
    LiveView's memory ─► digest (digest.py) ─► bucket `{name}-views`, key p{N}: on a change, and every second
    committed alert changes ─► `{name}.changes`      committed notifications ─► `{name}.notifications`

An action is answered only once it is committed in the partition's state database (the live view awaits
its commit) and, when the cell gives `after_action`, once that has run too (the cell checkpoints the
partition into the cluster there, so that the action outlives this instance).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from app.cluster import digest, wire
from app.cluster.tasks import end
from app.cluster.wire import ACTIONS, ALERT_ACTIONS, NotHere
from app.live_view import LiveView
from app.view import AlertChange, NotificationOut
from kernel.errors import Reason, Refused

log = logging.getLogger("cbrain.cluster")

DIGEST_EVERY_S = 1.0  # at least this often
DIGEST_COALESCE_S = 0.05  # changes coming together make one digest
DEVICES_EVERY_S = 1.0  # a digest made for an alert's change takes the devices' rows of the last second
FORWARD_KEPT = 20_000  # changes and notifications waiting to be forwarded (the oldest go beyond it)
FORWARD_CHUNK = 200
IN_FLIGHT = 64  # requests answered at once; more are refused as busy
STOP_WAIT_S = 5.0


class PartitionServer:
    """Serves one partition's live view to the cluster until stop()."""

    def __init__(self, nc: Any, js: Any, name: str, partition: int, view: LiveView, *, instance: str | None = None,
                 epoch: int | None = None, after_action: Callable[[], Awaitable[None]] | None = None,
                 gate: Callable[[], bool] | None = None, replicas: int = 1) -> None:
        self.nc, self.js, self.name, self.partition, self.view = nc, js, name, partition, view
        self.instance, self.epoch = instance, epoch
        self.after_action, self.gate, self.replicas = after_action, gate, replicas
        self.key = f"p{partition}"
        self.kv: Any = None
        self.serving = False
        self.revision: int | None = None  # of this server's last digest in the bucket
        self.digests = 0
        self.digest_bytes = 0
        self.digest_error: str | None = None
        self.forward_dropped = 0
        self._durable_lock = asyncio.Lock()
        self._durable_from = 0.0  # the last successful after_action began then: what was committed before is durable
        self._rows: list[list[Any]] | None = None
        self._rows_at = 0.0
        self._sub: Any = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._changes: deque[AlertChange] = deque(maxlen=FORWARD_KEPT)
        self._notes: deque[NotificationOut] = deque(maxlen=FORWARD_KEPT)
        self._forward = asyncio.Event()
        self._digest_now = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._answering: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Answer requests and forward changes, then publish the first digest (which tells every instance
        the partition is served: its subscription is on the server by then)."""
        self.kv = await digest.views_bucket(self.js, self.name, self.replicas)
        self._unsubscribe = [self.view.subscribe_changes(self._on_changes),
                             self.view.subscribe_notifications(self._on_notifications)]
        self._sub = await self.nc.subscribe(wire.subject(self.name, self.partition),
                                            queue=f"{self.name}-view-p{self.partition}", cb=self._on_request)
        await self.nc.flush(timeout=5)
        self.serving = True
        self._tasks = [asyncio.create_task(self._forward_loop(), name=f"view-forward-p{self.partition}")]
        await self.publish_digest()
        self._tasks.append(asyncio.create_task(self._digest_loop(), name=f"view-digest-p{self.partition}"))

    async def stop(self) -> None:
        """Stop answering, forward what is left, and mark the partition's digest as no longer held here."""
        self.serving = False
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        if self._answering:
            await asyncio.wait(set(self._answering), timeout=STOP_WAIT_S)
        for task in self._tasks:
            await end(task)
        self._tasks = []
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._flush(), STOP_WAIT_S)
        await self._mark_stopped()

    # ---- requests ------------------------------------------------------------------------------

    async def invoke(self, method: str, kwargs: dict[str, Any]) -> Any:
        """Run one allowed method of the live view (an instance holding the partition calls it directly)."""
        if method not in wire.METHODS:
            raise ValueError(f"{method!r} is not served")
        view = self.view
        if method in ACTIONS:
            return await self._act(method, kwargs)
        if method == "whistles.select":
            return await view.whistles.select(wire.WHISTLE_SELECTS[kwargs["q"]], tuple(kwargs["p"]))
        result = getattr(view, method)(**kwargs)
        return await result if asyncio.iscoroutine(result) else result

    async def _act(self, method: str, kwargs: dict[str, Any]) -> Any:
        if self.gate is not None and not self.gate():
            raise Refused(Reason.UNAVAILABLE, f"partition {self.partition} is moving to another instance: try again")
        why = self.view.state_unwritable()
        if why is not None:
            raise Refused(Reason.UNAVAILABLE, f"not now: {why}")
        target = self.view.whistles if method.startswith("whistles.") else self.view
        try:
            result = await getattr(target, method.removeprefix("whistles."))(**kwargs)
            committed = time.monotonic()
        except Refused as exc:
            if await self._absent(method, kwargs):
                raise NotHere(exc.reason, str(exc)) from None
            raise
        finally:
            self._digest_now.set()
        if self.after_action is not None:
            try:
                await self._durable(committed)
            except Exception as exc:
                raise Refused(Reason.UNAVAILABLE, f"done, but partition {self.partition} could not be made durable "
                              f"in the cluster ({exc}): look before trying again") from None
        return result

    async def _durable(self, committed: float) -> None:
        """Run after_action for an action committed at `committed` (monotonic), one at a time: actions
        committed together are made durable by one run begun after all of them."""
        assert self.after_action is not None
        async with self._durable_lock:
            if self._durable_from > committed:
                return  # (a run begun after this commit has succeeded meanwhile)
            began = time.monotonic()
            await self.after_action()
            self._durable_from = began

    async def _absent(self, method: str, kwargs: dict[str, Any]) -> bool:
        """Whether what a refused action names is not in this partition at all."""
        view = self.view
        if method in ALERT_ACTIONS:
            return await view.alert(None, kwargs["alert_id"]) is None
        if method == "expire_silence":
            return view.find_silence(kwargs["silence_id"]) is None
        if method == "whistles.step":
            return await view.whistles.whistle(None, str(kwargs["order_id"]).rpartition(".")[0]) is None
        if method == "whistles.confirm":
            return await view.whistles.whistle(None, kwargs["whistle_id"]) is None
        return False

    async def _on_request(self, msg: Any) -> None:
        if len(self._answering) >= IN_FLIGHT:
            await _respond(msg, wire.encode_error(f"partition {self.partition} is busy"))
            return
        task = asyncio.create_task(self._answer(msg), name=f"view-answer-p{self.partition}")
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _answer(self, msg: Any) -> None:
        try:
            method, kwargs = wire.decode_request(msg.data)
            body = wire.encode_result(await self.invoke(method, kwargs))
            if len(body) > wire.MAX_ANSWER_BYTES:
                body = wire.encode_error(f"the answer is too large ({len(body)} bytes): ask for fewer")
        except Refused as exc:
            body = wire.encode_refusal(exc)
        except Exception as exc:
            log.exception("partition %d: view request failed", self.partition)
            body = wire.encode_error(f"{type(exc).__name__}: {exc}")
        await _respond(msg, body)

    # ---- digest --------------------------------------------------------------------------------

    async def publish_digest(self) -> None:
        """Put the partition's digest into the bucket now."""
        now = time.monotonic()
        if self._rows is None or now - self._rows_at >= DEVICES_EVERY_S:
            self._rows, self._rows_at = digest.device_rows(self.view), now
        body = digest.build(self.view, partition=self.partition, instance=self.instance, epoch=self.epoch,
                            devices=self._rows)
        self.revision = await self.kv.put(self.key, body)
        self.digests += 1
        self.digest_bytes = len(body)

    async def _digest_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._digest_now.wait(), DIGEST_EVERY_S)
            if self._digest_now.is_set():
                await asyncio.sleep(DIGEST_COALESCE_S)
                self._digest_now.clear()
            try:
                await self.publish_digest()
                self.digest_error = None
            except Exception as exc:  # (a node down: the next one tries again)
                self.digest_error = f"{type(exc).__name__}: {exc}"
                log.warning("partition %d: digest not published: %s", self.partition, self.digest_error)

    async def _mark_stopped(self) -> None:
        """The last digest, marked stopped, unless another holder has written since (compare-and-set)."""
        if self.kv is None or self.revision is None:
            return
        body = digest.build(self.view, partition=self.partition, instance=self.instance, epoch=self.epoch,
                            stopped=True)
        try:
            self.revision = await self.kv.update(self.key, body, last=self.revision)
        except Exception as exc:  # (somebody else holds it now, or the cluster does not answer)
            log.info("partition %d: digest not marked stopped: %s", self.partition, exc)

    # ---- changes and notifications ---------------------------------------------------------------

    def _on_changes(self, batch: list[AlertChange]) -> None:
        self._keep(self._changes, batch)
        self._digest_now.set()

    def _on_notifications(self, batch: list[NotificationOut]) -> None:
        self._keep(self._notes, batch)

    def _keep(self, queue: deque[Any], batch: list[Any]) -> None:
        over = len(queue) + len(batch) - FORWARD_KEPT
        if over > 0:
            self.forward_dropped += over
        queue.extend(batch)
        self._forward.set()

    async def _forward_loop(self) -> None:
        while True:
            await self._forward.wait()
            self._forward.clear()
            try:
                await self._flush()
            except Exception as exc:  # (a node down: nats-py reconnects; what waits goes with the next)
                log.warning("partition %d: changes not forwarded yet: %s", self.partition, exc)
                await asyncio.sleep(0.2)
                self._forward.set()

    async def _flush(self) -> None:
        while self._changes:
            await self._publish(self._changes, "changes", lambda cs: {
                "p": self.partition, "c": [[c.community, c.grid, c.data.decode()] for c in cs]})
        while self._notes:
            await self._publish(self._notes, "notifications", lambda ns: {
                "p": self.partition, "n": [[n.event_id, n.recipient, n.community, n.grid,
                                            n.payload.decode("utf-8", "replace")] for n in ns]})

    async def _publish(self, queue: deque[Any], what: str, body: Callable[[list[Any]], dict[str, Any]]) -> None:
        """The oldest chunk of a queue, published (put back if it could not be)."""
        chunk = [queue.popleft() for _ in range(min(FORWARD_CHUNK, len(queue)))]
        try:
            await self.nc.publish(f"{self.name}.{what}", orjson.dumps(body(chunk)))
        except Exception:
            queue.extendleft(reversed(chunk))
            raise


async def _respond(msg: Any, body: bytes) -> None:
    if msg.reply:
        with contextlib.suppress(Exception):  # (the asker gave up, or the connection went: it times out)
            await msg.respond(body)


async def serve_partition(nc: Any, name: str, partition: int, view: LiveView, *, instance: str | None = None,
                          epoch: int | None = None, after_action: Callable[[], Awaitable[None]] | None = None,
                          gate: Callable[[], bool] | None = None, replicas: int = 1,
                          js: Any = None) -> PartitionServer:
    """Serve a held partition's live view to the cluster (stop it with `await server.stop()` before the
    partition's service stops)."""
    server = PartitionServer(nc, js if js is not None else nc.jetstream(timeout=5), name, partition, view,
                             instance=instance, epoch=epoch, after_action=after_action, gate=gate, replicas=replicas)
    await server.start()
    return server
