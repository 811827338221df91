"""One instance of the cluster (CONTRACT §12, docs/scaling.md).

    devices ─MQTT QoS 1─► any NATS node ─► $MQTT_msgs (replicated, stored before the PUBACK)
                                              │ one durable pull consumer per partition of the communities
                                              ▼
    members (KV, beats) ─► wanted holder of each partition (rendezvous) ─► claim / release (holds.py)
                                              │
                                              ▼
    Cell per held partition: Service(listen=False) on the partition's stream and state ─► checkpoints
    HTTP: the whole site, from every instance (app/cluster/view.py)

Every BEAT_S the instance stores its beat (its lease), reads the live instances, and claims the
partitions it should hold that nobody live holds, or releases those another live instance should
hold. A partition whose holder stopped beating for failover_s is claimed by the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from app.cluster.cell import Cell
from app.cluster.holds import Fenced, Hold, Holds
from app.cluster.members import BEAT_S, Members, wanted_holder
from app.cluster.view import ClusterView
from app.example_secrets import check_example_secrets
from kernel.clock import Clock, SystemClock, rfc3339
from kernel.cluster import MQTT_MSGS_STREAM, partition_of, subject_map
from kernel.errors import ConfigError
from kernel.metrics import Registry
from kernel.settings import Settings
from kernel.site import Site

log = logging.getLogger("cbrain.cluster")

MQTT_STREAM = MQTT_MSGS_STREAM
MAX_ACK_PENDING = 20000
CONNECT_S = 60.0
# A live instance named by a partition's record that says, this long, that it does not hold it has let it go.
ABANDONED_S = 3.0
# The longest a step of a release (its view unserved, its service stopped and checkpointed) may take.
STEP_S = 20.0


class ClusterInstance:
    """Holds some partitions of the site, as the live instances agree; serves the whole site."""

    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        if settings.cluster is None:
            raise ConfigError("cluster: is not set")
        if not settings.influx.url:
            raise ConfigError("cluster: needs influx.url (the readings must outlive any one instance)")
        if settings.sources:
            # Their topics are outside the partition mapping and their pushes would have to enter the
            # stream: refused rather than lost (docs/scaling.md).
            raise ConfigError("cluster: sources (devices that report through other systems) are not served by "
                              "a cluster yet; run them on a single instance (docs/scaling.md)")
        if any(c.shelters or c.supplies or c.vulnerable for c in settings.communities):
            # Their stock, occupancy and door knocks would have to move with the partitions and their
            # pages be served by whichever instance is asked: refused rather than half there.
            raise ConfigError("cluster: shelters, supplies and vulnerable residents are not served by a cluster "
                              "yet; run the communities that list them on a single instance (docs/scaling.md)")
        # Before anything is opened: example secrets beyond loopback stop the start (ConfigError).
        self.warnings = check_example_secrets(settings)
        self.settings = settings
        self.c = settings.cluster
        self.me = self.c.instance
        self.clock = clock or SystemClock()
        self.replicas = min(3, len(self.c.nats))
        self.state_root = Path(settings.state_dir) / "partitions"
        self.cells: dict[int, Cell] = {}
        self.handovers: deque[dict[str, Any]] = deque(maxlen=20)
        self.started_ns = self.clock.now_ns()
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self.nc: Any = None
        self.js: Any = None
        self.members: Members | None = None
        self.holds: Holds | None = None
        self.view: ClusterView | None = None  # the whole site, for this instance's HTTP listener
        self._subs: dict[int, Any] = {}
        self._busy: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._starting = asyncio.Lock()
        self._claiming: set[int] = set()  # partitions being claimed (said in the beats, as held ones)
        # partition -> ((holder, epoch) of its record, since when that live holder says it does not hold it)
        self._unheld: dict[int, tuple[tuple[str, int], float]] = {}
        self.lag: dict[int, int] = {}  # held partition -> its consumer's messages not yet acknowledged
        self.takeovers = 0
        self.http_url: str | None = None  # where this instance's pages are (in its members' record)

    def stop(self) -> None:
        """Ask the instance to give its partitions up and stop."""
        self._stop.set()

    @property
    def stopping(self) -> asyncio.Event:
        return self._stop

    def partition_of(self, community: str) -> int:
        """The partition a community is in."""
        return partition_of(community, self.c.partitions)

    async def connect(self) -> None:
        """Connect to the cluster; make the partitions' consumers, the members' and holds' buckets. A cluster
        still electing its leaders (it answers JetStream requests late) is tried again for CONNECT_S."""
        deadline = time.monotonic() + CONNECT_S
        while True:
            try:
                await self._connect_once()
                return
            except ConfigError:
                raise
            except Exception as exc:
                await self._disconnect()
                if time.monotonic() > deadline:
                    raise ConfigError(f"the NATS cluster ({', '.join(self.c.nats)}) did not answer within "
                                      f"{CONNECT_S:.0f} s: {type(exc).__name__}: {exc}") from None
                log.warning("the NATS cluster is not ready yet (%s: %s); trying again", type(exc).__name__, exc)
                await asyncio.sleep(1.0)

    async def _connect_once(self) -> None:
        self.nc = await nats.connect(servers=self.c.nats, name=self.me, max_reconnect_attempts=-1,
                                     reconnect_time_wait=0.5, connect_timeout=2)
        self.js = self.nc.jetstream(timeout=5)
        await self._check_mapping()
        await self._consumers()
        self.holds = Holds(self.js, self.c.name, self.replicas)
        await self.holds.open()
        self.view = ClusterView(settings=self.settings, site=Site(self.settings), clock=self.clock, nc=self.nc,
                                js=self.js, partition_of=self.partition_of, health=self.health,
                                stopping=self._stop, replicas=self.replicas)
        await self.view.start()
        self._gauges(self.view.registry)
        self.members = Members(self.c.nats, f"{self.c.name}-members", self.me, self.c.failover_s, self.replicas)
        self.members.record = self._record()
        await self.members.start()  # (last: once beating, the instance is live to the others)

    async def _disconnect(self) -> None:
        for part in (self.members, self.view):
            if part is not None:
                with contextlib.suppress(Exception):
                    await part.stop()
        self.members = self.view = None
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()
        self.nc = None

    async def _check_mapping(self) -> None:
        """The nodes' subject mapping must put each community in the partition this instance computes (the
        same `partitions` on both sides): probe it with a core publish, which the mapping also rewrites."""
        subjects = subject_map(self.settings.mqtt.prefix, self.c.partitions)
        prefix = ".".join(subjects.prefix_tokens)
        probes = [f"cbprobe-{k}" for k in range(8)]
        sub = await self.nc.subscribe(f"{subjects.partitioned_prefix}.*.*.check.probe.telemetry")
        try:
            for probe in probes:
                await self.nc.publish(f"{prefix}.{probe}.check.probe.telemetry", b"")
            await self.nc.flush()
            for _ in probes:
                try:
                    msg = await sub.next_msg(timeout=5)
                except Exception:
                    raise ConfigError(f"the NATS cluster does not map {prefix}.<community>.… to partitions "
                                      "(write the nodes' configuration with `cbrain cluster nats-config`)") from None
                tokens = msg.subject.split(".")
                community, got = tokens[-4], int(tokens[-5])
                if got != self.partition_of(community):
                    raise ConfigError(f"the NATS cluster's mapping puts community {community} in partition {got}, "
                                      f"this instance in {self.partition_of(community)}: cluster.partitions "
                                      f"({self.c.partitions}) must be what `cbrain cluster nats-config --partitions` "
                                      "wrote into the nodes' configuration")
        finally:
            await sub.unsubscribe()

    async def _consumers(self) -> None:
        """One durable pull consumer per partition on the server's MQTT stream (made before any device
        publishes: the stream keeps a message only while some consumer is interested in it)."""
        deadline = time.monotonic() + 30
        while True:
            try:
                await self.js.stream_info(MQTT_STREAM)
                break
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise ConfigError(f"the cluster has no {MQTT_STREAM} stream (is MQTT on in the nodes' "
                                      f"configuration? `cbrain cluster nats-config` writes it): {exc}") from None
                await _touch_mqtt(self.settings.mqtt.url)
                await asyncio.sleep(0.5)
        subjects = subject_map(self.settings.mqtt.prefix, self.c.partitions)
        for p in range(self.c.partitions):
            await self.js.add_consumer(MQTT_STREAM, ConsumerConfig(
                durable_name=self.consumer(p), filter_subject=subjects.partition_filter(p),
                ack_policy=AckPolicy.EXPLICIT, ack_wait=self.c.ack_wait_s, max_deliver=-1,
                max_ack_pending=MAX_ACK_PENDING, deliver_policy=DeliverPolicy.ALL, num_replicas=self.replicas))

    def consumer(self, p: int) -> str:
        """The durable consumer of partition p."""
        return f"{self.c.name}-p{p}"

    async def run(self) -> None:
        """Beat, rebalance, and hold partitions until stop()."""
        for warning in self.warnings:
            log.warning("%s", warning)
        if self.nc is None:
            await self.connect()
        assert self.members is not None
        try:
            while not self._stop.is_set():
                self.members.record = self._record()
                if self.members.lapsed:
                    # The lease ran out (a stall, a lost network): another instance may hold these by now.
                    # They stop before a beat can renew the lease; then the claims start afresh.
                    if self.cells:
                        log.warning("lease ran out: stopping partitions %s without writing", sorted(self.cells))
                    for p in list(self.cells):
                        await self._unserve(p)
                        await self.cells.pop(p).halt()
                    self.members.resume()
                elif self.members.fresh():
                    await self._rebalance(sorted(self.members.live))
                    await self._measure_lag()
                self.ready.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), BEAT_S)
        finally:
            await self._shutdown()

    def _gauges(self, m: Registry) -> None:
        m.gauge("cb_cluster_instances_live", "Instances of the cluster this one hears beat",
                source=lambda: float(len(self.members.live) if self.members else 0))
        m.gauge("cb_cluster_lease_held", "1 while this instance's lease holds (it may act for its partitions)",
                source=lambda: float(bool(self.members and self.members.fresh())))
        m.gauge("cb_cluster_consumer_lag", "Messages of a held partition not yet acknowledged to its stream "
                "(waiting, or handed out and not yet in a checkpoint)", ["partition"],
                source=lambda: {(str(p),): float(n) for p, n in self.lag.items() if p in self.cells})
        m.gauge("cb_cluster_last_handover_seconds", "How long this instance's last takeover of a partition "
                "took (from the claim to its service running)",
                source=lambda: float(self.handovers[0]["took_s"]) if self.handovers else 0.0)
        m.gauge("cb_cluster_takeovers", "Partitions this instance took over since it started",
                source=lambda: float(self.takeovers))

    async def _measure_lag(self) -> None:
        """Each held partition's consumer: messages waiting plus those handed out and not acknowledged."""
        for p in list(self.cells):
            try:
                info = await self.js.consumer_info(MQTT_STREAM, self.consumer(p))
            except Exception:  # (a node down: the last figure stands)
                continue
            self.lag[p] = int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    def _record(self) -> dict[str, Any]:
        return {"partitions": sorted(set(self.cells) | self._claiming), "http": self.http_url,
                "started_ms": self.started_ns // 1_000_000,
                "handover": self.handovers[0] if self.handovers else None}

    async def _rebalance(self, live: list[str]) -> None:
        assert self.holds is not None
        for p in range(self.c.partitions):
            if p in self._busy:
                continue
            want = wanted_holder(p, live)
            cell = self.cells.get(p)
            if cell is not None and (cell.fenced or not cell.running()):
                await self._unserve(p)
                await cell.halt()
                del self.cells[p]
                cell = None
            if cell is None and want == self.me:
                self._busy.add(p)
                self._spawn(self._claim(p, live), f"claim-{p}")
            elif cell is not None and want != self.me:
                self._busy.add(p)
                self._spawn(self._release(p), f"release-{p}")

    def _spawn(self, work: Any, name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _claim(self, p: int, live: list[str]) -> None:
        assert self.holds is not None
        try:
            hold = await self.holds.read(p)
            if hold is not None and hold.holder is not None and hold.holder != self.me and hold.holder in live:
                if not self._abandoned(hold):
                    return  # (still held by a live instance: it releases it when it sees it should)
                log.info("partition %d: %s is live but has not held it for %.0f s; taking it", p, hold.holder,
                         ABANDONED_S)
            self._claiming.add(p)
            async with self._starting:  # (one at a time: a start holds the event loop for a while)
                assert self.members is not None
                if not self.members.fresh() or self._stop.is_set():
                    return
                taken = await self.holds.claim(p, self.me, hold)
                await self._start_cell(taken, hold)
        except Fenced as exc:
            log.info("claim of partition %d lost to another instance: %s", p, exc)
        except Exception:
            log.exception("claim of partition %d failed", p)
        finally:
            self._busy.discard(p)
            self._claiming.discard(p)

    def _abandoned(self, hold: Hold) -> bool:
        """Whether the live holder of a partition's record has said, beat after beat for ABANDONED_S, that it
        neither holds nor is claiming it (it stopped it when its lease ran out; it is wanted elsewhere now)."""
        assert self.members is not None and hold.holder is not None
        p, record = hold.partition, self.members.live.get(hold.holder) or {}
        if p in record.get("partitions", []):
            self._unheld.pop(p, None)
            return False
        seen = self._unheld.get(p)
        if seen is None or seen[0] != (hold.holder, hold.epoch):  # (the timer is of this claim of it only)
            self._unheld[p] = seen = ((hold.holder, hold.epoch), time.monotonic())
        return time.monotonic() - seen[1] >= ABANDONED_S

    async def _start_cell(self, taken: Hold, before: Hold | None) -> None:
        assert self.holds is not None
        p = taken.partition
        began = time.monotonic()
        info = await self.js.consumer_info(MQTT_STREAM, self.consumer(p))
        # A holder that did not release it may have left messages it never acknowledged: they come first.
        outstanding = info.num_ack_pending if before is not None and before.holder is not None else 0
        sub = self._subs.get(p) or await self.js.pull_subscribe_bind(durable=self.consumer(p), stream=MQTT_STREAM)
        self._subs[p] = sub
        assert self.members is not None
        cell = Cell(taken, settings=self.settings, holds=self.holds, subscription=sub,
                    state_dir=self.state_root / f"p{p}", clock=self.clock, lease=self.members.fresh,
                    outstanding=outstanding)
        await cell.start(await self.holds.load(taken))
        if not self.members.fresh() or self._stop.is_set():  # (the lease ran out, or stop came, meanwhile)
            await cell.halt()
            return
        assert self.view is not None and cell.service is not None
        await self.view.serve(p, cell.service.view, epoch=taken.epoch, after_action=cell.checkpoint, gate=cell.gate)
        self.cells[p] = cell
        previous = before.holder if before is not None else None
        silent_s = None
        if before is not None and previous not in (None, self.me):
            silent_s = max(0.0, time.time() - before.at_ms / 1000)
        self.takeovers += 1
        # "from": whoever held it last, whether it gave it up (`released`) or stopped beating.
        came_from = previous if previous is not None or before is None else before.released_by
        self.handovers.appendleft({"partition": p, "from": came_from, "to": self.me,
                                   "released": previous is None and came_from is not None, "epoch": taken.epoch,
                                   "at": rfc3339(self.clock.now_ns()), "outstanding": outstanding,
                                   "took_s": round(time.monotonic() - began, 3),
                                   "since_last_checkpoint_s": None if silent_s is None else round(silent_s, 3)})
        self.members.record = self._record()
        log.info("holding partition %d (epoch %d, from %s, %d messages outstanding)", p, taken.epoch,
                 came_from or "nobody", outstanding)

    async def _release(self, p: int) -> None:
        cell = self.cells.get(p)
        try:
            if cell is not None:
                log.info("releasing partition %d (wanted on another instance, or stopping)", p)
                await asyncio.wait_for(self._unserve(p), STEP_S)
                await asyncio.wait_for(cell.release(), STEP_S)
                log.info("released partition %d", p)
        except Exception as exc:  # (its next holder takes it after failover_s: the record still names us)
            log.error("release of partition %d failed, stopping it without a last checkpoint: %s: %s", p,
                      type(exc).__name__, exc)
            if cell is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(cell.halt(), STEP_S)
        finally:
            self.cells.pop(p, None)
            self._busy.discard(p)

    async def _unserve(self, p: int) -> None:
        if self.view is not None:
            try:
                await self.view.unserve(p)
            except Exception as exc:  # (the partition's next holder announces itself anyway)
                log.warning("partition %d: could not stop serving its view: %s", p, exc)

    async def _shutdown(self) -> None:
        for task in list(self._tasks):  # claims and releases under way end first
            with contextlib.suppress(BaseException):
                await task
        for p in list(self.cells):
            await self._release(p)
        if self.view is not None:
            with contextlib.suppress(Exception):
                await self.view.stop()
        if self.members is not None:
            await self.members.stop()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()

    def health(self) -> dict[str, Any]:
        """The cluster as this instance sees it (GET /health's `cluster`)."""
        live = self.members.live if self.members is not None else {}
        lease = self.members.fresh() if self.members is not None else False
        return {
            "instance": self.me, "lease": "held" if lease else "lost",
            "partitions": self.c.partitions,
            "instances": [{"name": n, "partitions": r.get("partitions", []), "http": r.get("http"),
                           "communities": self._communities(r.get("partitions", [])),
                           "last_handover": r.get("handover")}
                          for n, r in sorted(live.items())],
            "held": [{"partition": p, "epoch": cell.hold.epoch, "running": cell.running(),
                      "lag": self.lag.get(p), "unacknowledged": cell.source.unacknowledged(),
                      "checkpoints": cell.checkpoints,
                      "last_checkpoint": rfc3339(cell.last_checkpoint_ns), "barrier_held": cell.source.barrier_held}
                     for p, cell in sorted(self.cells.items())],
            "handovers": list(self.handovers),
            "beat_error": self.members.beat_error if self.members is not None else None,
        }

    def _communities(self, partitions: list[int]) -> list[str]:
        held = set(partitions)
        return [c.id for c in self.settings.communities if self.partition_of(c.id) in held]


async def _touch_mqtt(url: str) -> None:
    """Connect to a node's MQTT listener once: the server makes its MQTT streams for the first client."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from ingest.mqtt_source import broker_address

    host, port, _tls = broker_address(url)

    def touch() -> None:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="cbrain-cluster-touch",
                             protocol=paho.MQTTv311)
        with contextlib.suppress(Exception):
            client.connect(host, port, 10)
            client.loop(1.0)
            client.disconnect()

    await asyncio.to_thread(touch)
