"""What a viewer's scope lets them see, for every implementation of ServiceView: the live view of one
process (app/live_view.py) and the cluster's view of the whole site (app/cluster/view.py) answer alike."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from kernel.ids import UNKNOWN
from kernel.settings import Scope, Settings
from kernel.site import Site
from kernel.topics import TopicError, parse_device_topic

# (community, grid, device type, online, last seen) of one device, for the communities' rows.
DeviceLine = tuple[str, str, str, bool | None, Any]


def rejection_in_scope(settings: Settings, site: Site, scope: Scope, topic: str, source_id: str) -> bool:
    """Whether a rejected message is the scope's: another system's message belongs to its source's
    community (if the source names one, and to no grid); a device's, to the device's place."""
    if source_id:
        source = settings.source(source_id)
        return (source is not None and source.community is not None and scope.grid is None
                and site.in_scope(scope, source.community, UNKNOWN))
    try:
        where = parse_device_topic(settings.mqtt.prefix, topic)
        community, device_id = where.community, where.device_id
    except TopicError:
        parts = topic.split("/")
        if len(parts) < 4:
            return False
        community, device_id = parts[1], parts[3]
    place = site.place(community, device_id)
    return site.in_scope(scope, place.community, place.grid)


def community_rows(site: Site, scope: Scope | None, devices: Iterable[DeviceLine],
                   seen_text: Callable[[Any], str | None]) -> list[dict[str, Any]]:
    """Each community's live state in scope: its devices counted by state and type, when one was last
    heard from (`seen_text` writes the largest last-seen value). A community scope sees its community's
    row even when no device of it is in scope."""
    rows: dict[str, dict[str, Any]] = {c.id: _community_row(c.id, c.name) for c in site.communities.values()}
    for community, grid, device_type, online, seen in devices:
        if not site.in_scope(scope, community, grid):
            continue
        row = rows.setdefault(community, _community_row(community, community))
        row["devices"] += 1
        row["online" if online else "offline" if online is False else "unknown"] += 1
        row["by_type"][device_type] = row["by_type"].get(device_type, 0) + 1
        if seen and (row["_seen"] is None or seen > row["_seen"]):
            row["_seen"] = seen
    visible = [r for r in rows.values() if site.in_scope(scope, r["id"], UNKNOWN)
               or (scope is not None and scope.community == r["id"])]
    for r in visible:
        r["last_seen"] = seen_text(r.pop("_seen"))
    return sorted(visible, key=lambda r: r["id"])


def _community_row(cid: str, name: str) -> dict[str, Any]:
    return {"id": cid, "name": name, "devices": 0, "online": 0, "offline": 0, "unknown": 0,
            "by_type": {}, "_seen": None}
