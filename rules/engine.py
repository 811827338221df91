"""The rule engine: routes readings, statuses and deadlines to the machines, and transitions between rules.

Synchronous and clock-free: the caller says what time it is (`now`, service clock, ns). The async
runner only schedules it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import orjson

from kernel.alerting import Level, Transition
from kernel.clock import NS
from kernel.ids import UNKNOWN
from kernel.reading import Reading, StatusUpdate
from kernel.site import Site
from rules.deadline_heap import DeadlineHeap
from rules.kinds import kind_of
from rules.machine import Device, Machine
from rules.model import RuleBase
from rules.spec import RuleSet, apply_override

DeviceKey = tuple[str, str, str]  # community, device_type, device_id; groups: (community, "group:<rule>", building)
S = TypeVar("S")
T = TypeVar("T")
# Cascades between rules (alarm → multi → fire lane) are short; this bounds a faulty rules file.
MAX_CASCADE = 8
# How much further than a smaller clock offset needs a device's deadline entry is moved (on_batch).
EARLY_NS = 1_000_000_000


_NOTHING: frozenset[str] = frozenset()


@dataclass(slots=True)
class Watched:
    """A device and the machines watching it (or a building and its correlation machines)."""

    dev: Device
    machines: dict[str, Machine]
    fingerprints: dict[str, str]
    group: bool = False  # a building's or community's correlation machines (key (community, "group:<rule>", ...))


def _fingerprint(spec: Any) -> str:
    return hashlib.sha1(orjson.dumps(spec.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


class Engine:
    """All rules over all devices of a site."""

    def __init__(self, ruleset: RuleSet, site: Site, *, now_ns: int = 0) -> None:
        self.ruleset = ruleset
        self.site = site
        self.watched: dict[DeviceKey, Watched] = {}
        self.dirty: set[DeviceKey] = set()
        self.deadlines: DeadlineHeap[DeviceKey] = DeadlineHeap()
        self._device_interval: float | None = None  # the device whose machines are being made (interval_s)
        self._scheduled = self.deadlines.due  # (the reading's turn reads it directly)
        # (community, building or UNKNOWN) -> correlation groups there with a clear pending.
        self._clearing: dict[tuple[str, str], set[DeviceKey]] = {}
        # rule -> community -> device_id -> (building, level): what is firing where.
        self.active: dict[str, dict[str, dict[str, tuple[str, Level]]]] = {}
        self._correlations: dict[str, list[RuleBase]] = {}
        self._while_dependents: dict[str, list[str]] = {}
        self._relative_dependents: dict[str, list[str]] = {}
        for rule in ruleset.rules:
            source, above = rule.follows(), rule.relative_to()
            if source is not None:
                self._correlations.setdefault(source, []).append(rule)
            for ref in rule.while_rules():
                self._while_dependents.setdefault(ref, []).append(rule.id)
            if above is not None:
                self._relative_dependents.setdefault(above, []).append(rule.id)
        self._plans: dict[tuple[str, tuple[int, ...]], list[Any]] = {}
        self._fingerprints: dict[int, str] = {}
        self._shared: dict[tuple[int, Callable[[Any], Any]], Any] = {}
        self._by_community: dict[str, list[DeviceKey]] = {}
        for entry in site.settings.devices:
            self._watch(entry.community, entry.type.value, entry.id, now_ns)
            # Saved from the start, so the silence of a device that never reports survives restarts.
            self.dirty.add((entry.community, entry.type.value, entry.id))

    # ---- devices and their machines --------------------------------------------------------------

    def _specs_for(self, community: str, device_type: str, device_id: str, building: str) -> list[Any]:
        """Effective rule specs for one device: overrides applied broad to narrow; shared when equal."""
        matching = tuple(
            i for i, o in enumerate(self.ruleset.overrides)
            if (o.match.device_type in (None, device_type) and o.match.community in (None, community)
                and o.match.building in (None, building) and o.match.device in (None, device_id)))
        key = (device_type, matching)
        plan = self._plans.get(key)
        if plan is None:
            specs = {r.id: r for r in self.ruleset.rules
                     if r.per_device() and r.applies_to(device_type)}
            ordered = sorted(matching, key=lambda i: (self.ruleset.overrides[i].match.specificity(), i))
            for i in ordered:
                o = self.ruleset.overrides[i]
                if o.rule in specs:
                    specs[o.rule] = apply_override(specs[o.rule], o.set)
            # A level relative to another rule's is computed after that rule saw the same reading.
            plan = self._plans[key] = sorted(
                specs.values(), key=lambda s: s.relative_to() is not None)
        return plan

    def _machine(self, spec: Any, device_type: str) -> Machine:
        return kind_of(spec).machine(spec, device_type, self)

    def shared(self, spec: S, make: Callable[[S], T]) -> T:
        """What `make` makes of a spec, made once and shared by every machine of the same spec
        (a state rule's compiled levels)."""
        key = (id(spec), make)
        found = self._shared.get(key)
        if found is None:
            found = self._shared[key] = make(spec)
        return cast(T, found)

    def interval_s(self, device_type: str) -> float:
        """How often a device of this type reports when nothing happens (seconds); while a device's
        machines are made, that device's own, if the site file gives it one (a battery device
        reporting through another system: its heartbeat)."""
        own = self._device_interval
        return own if own is not None else self.ruleset.interval_s(device_type)

    def _watch(self, community: str, device_type: str, device_id: str, now: int) -> Watched:
        key = (community, device_type, device_id)
        w = self.watched.get(key)
        if w is None:
            place = self.site.place(community, device_id)
            self._device_interval = self.site.interval_of(community, device_id)
            try:
                stale = int(self.ruleset.stale_after_intervals * self.interval_s(device_type) * NS)
                dev = Device(community, device_type, device_id, place.building, place.grid, {}, 0, now, stale, now)
                specs = self._specs_for(community, device_type, device_id, place.building)
                w = Watched(dev, {s.id: self._machine(s, device_type) for s in specs},
                            {s.id: self._fingerprint(s) for s in specs})
            finally:
                self._device_interval = None
            self.watched[key] = w
            self._by_community.setdefault(community, []).append(key)
            self._schedule(key, w)
        return w

    def _fingerprint(self, spec: Any) -> str:
        """A spec's fingerprint, computed once per spec object (devices share their plan's specs)."""
        found = self._fingerprints.get(id(spec))
        if found is None:
            found = self._fingerprints[id(spec)] = _fingerprint(spec)
        return found

    def _group(self, rule: RuleBase, community: str, building: str, device_type: str) -> Watched:
        key = (community, f"group:{rule.id}", building)
        w = self.watched.get(key)
        if w is None:
            dev = Device(community, device_type, f"building:{building}" if rule.grouped_by() == "building"
                         else f"community:{community}", building,
                         self.site.grid_of(community, building), {}, 0, 0, 0)
            w = Watched(dev, {rule.id: self._machine(rule, device_type)}, {rule.id: self._fingerprint(rule)}, True)
            self.watched[key] = w
        return w

    # ---- context for the machines ----------------------------------------------------------------

    def level_of(self, rule: str, community: str, device_id: str) -> Level | None:
        """The current level of a rule for one device."""
        found = self.active.get(rule, {}).get(community, {}).get(device_id)
        return found[1] if found else None

    def firing(self, rules: list[str], community: str, building: str | None, exclude: str) -> bool:
        """Whether any of rules fires for another device of the community (or building)."""
        for rule in rules:
            for device_id, (b, _level) in self.active.get(rule, {}).get(community, {}).items():
                if device_id != exclude and (building is None or b == building):
                    return True
        return False

    # ---- inputs ----------------------------------------------------------------------------------

    def on_batch(self, readings: list[Reading], statuses: list[StatusUpdate], now: int) -> list[Transition]:
        """Readings (after dedup) and statuses in arrival order; the transitions they cause."""
        out: list[Transition] = []
        watched, scheduled = self.watched, self._scheduled
        for r in readings:
            key = (r.community, r.device_type.value, r.device_id)
            w = watched.get(key) or self._watch(*key, now)
            dev = w.dev
            due = scheduled.get(key)
            if due is not None and due <= now:  # (_overdue, without a call for every reading)
                self._overdue(key, w, now, out)
            if r.received_ns > dev.last_heard:
                dev.last_heard = r.received_ns
            # The earliest deadline of the machines given the reading: the other machines' deadlines
            # stand or moved later in reading time (asleep: machine.Hooks), and the entry scheduled
            # for the device is no later than those. Every machine's is computed again (`again`) for
            # a device without an entry, its first reading, or a late one.
            soonest: int | None = None
            again = key not in scheduled
            shrank = 0
            if r.ts_ns < dev.values_ts:
                again = True
                for m in w.machines.values():
                    self._emit(m.on_late(dev, r.fields, r.ts_ns), out)
            else:
                fields, ts, values = r.fields, r.ts_ns, dev.values
                # The fields whose value this reading changes: a machine asleep wakes only for those
                # (machine.Hooks), or once its reading time comes. Values are typed by the catalog
                # (float, bool or str): equal means the same. (A loop: a function costs more.)
                changed: AbstractSet[str] = _NOTHING
                for k, v in fields.items():
                    if values.get(k, _NOTHING) != v:
                        changed = {k} if changed is _NOTHING else {*changed, k}
                values.update(fields)
                if ts > dev.values_ts:  # a repeat of the newest reading time keeps its clock offset
                    # A smaller offset brings the service time of every reading-time deadline that
                    # much earlier (and of no other): the entry, no later than any, follows by as much.
                    if dev.values_ts:
                        shrank = dev.last_received - dev.values_ts - (r.received_ns - ts)
                    else:
                        again = True
                    dev.last_received = r.received_ns
                dev.values_ts = ts
                for m in w.machines.values():
                    if m.asleep and (changed is _NOTHING or m.wakes.isdisjoint(changed)) and ts < m.wake_at:
                        continue
                    tr = m.on_reading(dev, fields, ts, self)
                    if tr is not None:  # (inlined _emit: this loop runs for every machine of every reading)
                        self._index(tr)
                        out.append(tr)
                    due = m.next_deadline(dev)
                    if due is not None and (soonest is None or due < soonest):
                        soonest = due
                if self._clearing:
                    self._follow_groups(r, dev.building)
            self.dirty.add(key)
            if again:
                self._schedule(key, w)
            else:
                entry = scheduled[key]
                # A smaller offset: the entry goes EARLY_NS further than it needs, and the jitter of
                # the next offsets moves it no more (a pop that early runs nothing; it is made again).
                if shrank > dev.early:
                    soonest = min(soonest or entry, entry - shrank + dev.early - EARLY_NS)
                    dev.early = EARLY_NS
                elif shrank > 0:
                    dev.early -= shrank
                if soonest is not None and soonest < entry:
                    self.deadlines.earlier(key, soonest)
        for s in statuses:
            key = (s.community, s.device_type.value, s.device_id)
            w = self.watched.get(key) or self._watch(*key, now)
            self._overdue(key, w, now, out)
            for m in w.machines.values():
                self._emit(m.on_status(w.dev, s.online, s.received_ns), out)
            self.dirty.add(key)
            self._schedule(key, w)
        return self._cascade(out, now)

    def _emit(self, tr: Transition | None, out: list[Transition]) -> None:
        # Indexed at once: a rule later in the same device's turn sees it (relative levels).
        if tr is not None:
            self._index(tr)
            out.append(tr)

    def _overdue(self, key: DeviceKey, w: Watched, now: int, out: list[Transition]) -> None:
        """Deadlines of this device already due run before its new input (the caller's tick may lag)."""
        due = self._scheduled.get(key)
        if due is not None and due <= now:
            del self._scheduled[key]
            self._deadlines(w, now, out)

    def on_tick(self, now: int) -> list[Transition]:
        """Deadlines due at service time now: durations completing, clears completing, silences."""
        out: list[Transition] = []
        while (key := self.deadlines.pop(now)) is not None:
            w = self.watched.get(key)
            if w is None:
                continue
            self._deadlines(w, now, out)
            self.dirty.add(key)
            # Everything due by now was just run: a deadline still at or before now would be run
            # again in this loop without end, so the earliest it can come back is the next tick.
            self._schedule(key, w, not_before=now + 1)
        return self._cascade(out, now)

    def _deadlines(self, w: Watched, now: int, out: list[Transition]) -> None:
        for m in w.machines.values():
            self._emit(m.on_deadline(w.dev, now, self), out)

    def next_deadline(self) -> int | None:
        """Service time of the earliest deadline."""
        return self.deadlines.first()

    def _schedule(self, key: DeviceKey, w: Watched, not_before: int = 0) -> None:
        soonest: int | None = None  # (a plain loop: this runs for every reading)
        dev = w.dev
        dev.early = 0
        for m in w.machines.values():
            if m.asleep and not m.timed_asleep:
                continue  # (no deadline: machine.Hooks)
            t = m.next_deadline(dev)
            if t is not None and (soonest is None or t < soonest):
                soonest = t
        if w.group:
            place = (key[0], key[2])
            if soonest is not None:
                self._clearing.setdefault(place, set()).add(key)
            elif place in self._clearing:
                self._clearing[place].discard(key)
                if not self._clearing[place]:
                    del self._clearing[place]
        if soonest is None:
            return
        # At most one live entry per device: an earlier deadline replaces, a later one waits for
        # the earlier entry to pop (it is then computed again).
        self.deadlines.earlier(key, max(soonest, not_before))

    def _follow_groups(self, r: Reading, building: str) -> None:
        """A group's pending clear runs in the reading time of the devices around it: their readings
        move its clock on, so the clear completes when their time says (a time-compressed replay
        then resolves at its own pace, not the service clock's)."""
        for place in ((r.community, building), (r.community, UNKNOWN)):
            for gkey in tuple(self._clearing.get(place, ())):
                g = self.watched[gkey]
                if r.ts_ns > g.dev.values_ts:
                    g.dev.values_ts, g.dev.last_received = r.ts_ns, r.received_ns
                    self._schedule(gkey, g)

    # ---- between rules ---------------------------------------------------------------------------

    def _cascade(self, first: list[Transition], now: int) -> list[Transition]:
        out: list[Transition] = []
        wave = first
        for _ in range(MAX_CASCADE):
            if not wave:
                break
            out.extend(wave)
            nxt: list[Transition] = []
            for tr in wave:
                self._index(tr)
            for tr in wave:
                nxt.extend(self._consequences(tr, now))
            wave = nxt
        return out

    def _index(self, tr: Transition) -> None:
        places = self.active.setdefault(tr.rule, {}).setdefault(tr.community, {})
        if tr.level is None:
            places.pop(tr.device_id, None)
        else:
            places[tr.device_id] = (tr.building, tr.level)

    def _consequences(self, tr: Transition, now: int) -> list[Transition]:
        out: list[Transition] = []
        for rule in self._correlations.get(tr.rule, []):
            by_building = rule.grouped_by() == "building"
            if by_building and tr.building == UNKNOWN:
                continue  # devices the site does not place form no building
            w = self._group(rule, tr.community, tr.building if by_building else UNKNOWN, tr.device_type)
            src = self.watched.get((tr.community, tr.device_type, tr.device_id))
            received = src.dev.service_time(tr.at_ns) if src is not None else now
            got = w.machines[rule.id].on_source(w.dev, tr, received)
            key = (tr.community, f"group:{rule.id}", w.dev.building)
            self.dirty.add(key)
            self._schedule(key, w)
            if got is not None:
                out.append(got)
        for rule_id in self._while_dependents.get(tr.rule, []):
            for key in self._by_community.get(tr.community, ()):
                w = self.watched[key]
                m = w.machines.get(rule_id)
                if m is not None and w.dev.values:
                    got = m.reevaluate(w.dev, now, self)
                    self.dirty.add(key)
                    self._schedule(key, w)
                    if got is not None:
                        out.append(got)
        for rule_id in self._relative_dependents.get(tr.rule, []):
            key = (tr.community, tr.device_type, tr.device_id)
            same = self.watched.get(key)
            m = same.machines.get(rule_id) if same else None
            if same is not None and m is not None:
                got = m.reevaluate(same.dev, now, self)
                self.dirty.add(key)
                self._schedule(key, same)  # a lower it starts completes on the clock
                if got is not None:
                    out.append(got)
        return out

    # ---- durable state ---------------------------------------------------------------------------

    def take_dirty(self) -> list[tuple[str, str, str, bytes]]:
        """Rows (community, device_type, device_id, state) changed since the last call."""
        rows = self.state_rows(self.dirty)
        self.dirty.clear()
        return rows

    def state_rows(self, keys: Iterable[DeviceKey]) -> list[tuple[str, str, str, bytes]]:
        """Rows (community, device_type, device_id, state) of these devices and groups."""
        rows = []
        for key in keys:
            w = self.watched.get(key)
            if w is None:
                continue
            d = w.dev
            state = {"v": d.values, "ts": d.values_ts, "rx": d.last_received, "hd": d.last_heard,
                     "dt": d.device_type,
                     "m": {rule: [w.fingerprints[rule], m.dump()] for rule, m in w.machines.items()}}
            rows.append((key[0], key[1], key[2], orjson.dumps(state)))
        return rows

    def restore(self, rows: list[tuple[str, str, str, bytes]], now: int) -> None:
        """Load states; a rule whose spec changed keeps its episode but starts its timers afresh."""
        for community, device_type, device_id, blob in rows:
            state = orjson.loads(blob)
            if device_type.startswith("group:"):
                rule = next((r for r in self.ruleset.rules if r.id == device_type[6:]), None)
                if rule is None or rule.per_device():
                    continue
                w = self._group(rule, community, device_id, "")
            else:
                w = self._watch(community, device_type, device_id, now)
            w.dev.values.update(state["v"])
            w.dev.values_ts, w.dev.last_received = state["ts"], state["rx"]
            w.dev.last_heard = state.get("hd", state["rx"])
            w.dev.device_type = state.get("dt", w.dev.device_type)
            for rule, (fingerprint, dumped) in state["m"].items():
                m = w.machines.get(rule)
                if m is None:
                    continue
                if fingerprint == w.fingerprints.get(rule):
                    m.load(dumped)
                else:
                    m.episode.load(dumped[0])
                if m.episode.level is not None:
                    self.active.setdefault(rule, {}).setdefault(community, {})[w.dev.device_id] = (
                        w.dev.building, m.episode.level)
            key = (community, device_type, device_id)
            self._scheduled.pop(key, None)
            self._schedule(key, w)

    def firing_now(self) -> list[tuple[str, str, str, Level]]:
        """(rule, community, device_id, level) of every firing episode."""
        return [(rule, c, d, lv) for rule, by_c in self.active.items() for c, by_d in by_c.items()
                for d, (_b, lv) in by_d.items()]
