"""The rule engine's durable state: a row per device (its values, clock and each machine's state),
and loading the rows back (rules.engine.Engine.state_rows and restore)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from rules.engine import DeviceKey, Engine


def state_rows(engine: Engine, keys: Iterable[DeviceKey]) -> list[tuple[str, str, str, bytes]]:
    """Rows (community, device_type, device_id, state) of these devices and groups."""
    out = []
    for key in keys:
        w = engine.watched.get(key)
        if w is None:
            continue
        d = w.dev
        state = {"v": d.values, "ts": d.values_ts, "rx": d.last_received, "hd": d.last_heard,
                 "dt": d.device_type,
                 "m": {rule: [w.fingerprints[rule], m.dump()] for rule, m in w.machines.items()}}
        out.append((key[0], key[1], key[2], orjson.dumps(state)))
    return out


def restore(engine: Engine, rows: list[tuple[str, str, str, bytes]], now: int) -> None:
    """Load states; a rule whose spec changed keeps its episode but starts its timers afresh."""
    for community, device_type, device_id, blob in rows:
        state = orjson.loads(blob)
        if device_type.startswith("group:"):
            rule = next((r for r in engine.ruleset.rules if r.id == device_type[6:]), None)
            if rule is None or rule.per_device():
                continue
            w = engine._group(rule, community, device_id, "")
        else:
            w = engine._watch(community, device_type, device_id, now)
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
                engine.active.setdefault(rule, {}).setdefault(community, {})[w.dev.device_id] = (
                    w.dev.building, m.episode.level)
        key = (community, device_type, device_id)
        engine._scheduled.pop(key, None)
        engine._schedule(key, w)
