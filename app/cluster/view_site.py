"""The site's live state as the partitions' latest digests hold it, scoped as LiveView scopes it
(app/view_scope.py): the sync queries of the cluster's ServiceView (app/cluster/view.py)."""

from __future__ import annotations

from typing import Any

from app.cluster.digest import DEVICE_KEYS
from app.cluster.digests import STALE_S, Digests
from app.view import SilenceOut
from app.view_scope import community_rows, rejection_in_scope
from kernel.settings import Scope, Settings
from kernel.site import Site

HEALTH_PARTS = ("status", "broker", "store", "spool", "disk", "channels", "findings")


class SiteState:
    """Devices, communities, open alerts, rejections and silences of every partition."""

    def __init__(self, settings: Settings, site: Site, digests: Digests) -> None:
        assert settings.cluster is not None
        self.settings, self.site, self.digests = settings, site, digests
        self.partitions = settings.cluster.partitions
        self._index: dict[str, int] = {}
        self._index_version = -1

    def devices(self, scope: Scope | None) -> list[dict[str, Any]]:
        """Every device's live state in scope, by community, type and id."""
        out = [d for dg in self.digests.all() for d in dg.devices()
               if self.site.in_scope(scope, d["community"], d["grid"])]
        out.sort(key=lambda d: (d["community"], d["device_type"], d["device_id"]))
        return out

    def communities(self, scope: Scope | None) -> list[dict[str, Any]]:
        """Each community's live state in scope."""
        at = [DEVICE_KEYS.index(k) for k in ("community", "grid", "device_type", "online", "last_seen")]
        lines = (tuple(r[i] for i in at) for dg in self.digests.all() for r in dg.device_rows)
        return community_rows(self.site, scope, lines, lambda seen: seen)

    def open_alerts(self, scope: Scope | None) -> list[dict[str, Any]]:
        """Alerts not yet resolved in scope, with who acknowledged them and who was told."""
        return [dict(a) for dg in self.digests.all() for a in dg.open_alerts
                if self.site.in_scope(scope, a["community"], a["grid"])]

    def alert_index(self) -> dict[str, int]:
        """The partition of each open alert."""
        if self._index_version != self.digests.version:
            self._index = {a["id"]: dg.partition for dg in self.digests.all() for a in dg.open_alerts}
            self._index_version = self.digests.version
        return self._index

    def rejections(self, scope: Scope | None, limit: int, reason: str | None) -> list[dict[str, Any]]:
        """Latest rejected messages of every partition in scope, newest first (each digest keeps its latest)."""
        rows = [r for dg in self.digests.all() for r in dg.rejections]
        rows.sort(key=lambda r: r.get("at") or "", reverse=True)
        out = []
        for r in rows:
            if reason is not None and r["reason"] != reason:
                continue
            if scope is not None and not rejection_in_scope(self.settings, self.site, scope, r["topic"],
                                                            r.get("source") or ""):
                continue
            out.append(dict(r))
            if len(out) >= limit:
                break
        return out

    def silences(self) -> list[SilenceOut]:
        """Every silence, newest first (one of no community, kept by every partition, once: its earliest end)."""
        by_id: dict[str, SilenceOut] = {}
        for dg in self.digests.all():
            for x in dg.silences:
                if x.id not in by_id or x.ends_ns < by_id[x.id].ends_ns:
                    by_id[x.id] = x
        return sorted(by_id.values(), key=lambda x: x.created_ns, reverse=True)

    def find_silence(self, silence_id: str) -> SilenceOut | None:
        """One silence."""
        return next((x for x in self.silences() if x.id == silence_id), None)

    def state_unwritable(self) -> str | None:
        """Why no partition's state database can be written now, when none can; otherwise None (an action
        on a partition that cannot write is refused by that partition, with why)."""
        found = self.digests.all()
        why = [f"partition {d.partition}: {d.unwritable}" for d in found if d.unwritable]
        return "; ".join(why) if found and len(why) == len(found) else None

    def partition_health(self) -> tuple[bool, list[dict[str, Any]]]:
        """Each partition's state from its digest; whether every one is served and ok."""
        ok = True
        parts: list[dict[str, Any]] = []
        for p in range(self.partitions):
            d = self.digests.latest.get(p)
            if d is None:
                ok = False
                parts.append({"partition": p, "ok": False, "error": "no instance has served it yet"})
                continue
            served = self.digests.serving(p) is not None
            part_ok = served and d.health_ok
            ok = ok and part_ok
            entry: dict[str, Any] = {"partition": p, "ok": part_ok, "instance": d.instance, "epoch": d.epoch,
                                     "digest_age_s": round(d.age_s(), 3), "digest_bytes": d.size}
            if not served:
                entry["error"] = ("its holder stopped serving it" if d.stopped
                                  else f"its holder has not renewed its state for over {STALE_S:g} s")
            entry |= {k: d.health[k] for k in HEALTH_PARTS if k in d.health}
            if d.truncated:
                entry["truncated"] = d.truncated
            parts.append(entry)
        return ok, parts
