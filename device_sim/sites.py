"""Generated sites: a street of N communities with M buildings each and K devices per building, with
Chinese names, grids, recipients and tokens, written out as a site file the service loads."""

from __future__ import annotations

import random
from typing import Any

from device_sim.types import device_mix
from kernel.devices import CATALOG

_ROADS = ["临汾", "共和", "彭浦", "延长", "平型关", "广中", "江场", "灵石", "场中", "保德"]
_KINDS = ["一村", "二村", "三村", "新村", "小区", "花园", "苑", "公寓"]
# Generated coordinates (GCJ-02) start near 临汾路, Shanghai: communities ~400 m apart on a grid,
# buildings ~40 m apart within each, so the dashboards' map shows the street.
_ORIGIN = (31.3170, 121.4510)
_COMMUNITY_STEP = 0.004
_BUILDING_STEP = 0.0004


def generate_site(communities: int, buildings: int, devices_per_building: int, *, seed: int = 1,
                  buildings_per_grid: int = 4, mqtt_url: str = "mqtt://127.0.0.1:1883") -> dict[str, Any]:
    """A site as the YAML file's mapping; the same arguments and seed give the same site."""
    if communities < 1 or buildings < 1 or devices_per_building < 0:
        raise ValueError("communities and buildings must be at least 1, devices per building at least 0")
    rng = random.Random(seed)
    # Of every ten devices of a building, five are smoke detectors, two charging ports, and one each a
    # water gauge, a fire-lane sensor and a leak sensor (each simulator model's share).
    mix = device_mix()
    site: dict[str, Any] = {
        "mqtt": {"url": mqtt_url, "prefix": "cb"},
        "street": {"id": "street", "name": f"{rng.choice(_ROADS)}路街道"},
        "communities": [], "devices": [], "recipients": [], "api_tokens": [],
    }
    used: set[str] = set()
    for c in range(communities):
        cid = f"c{c + 1:03d}"
        name = f"{rng.choice(_ROADS)}{rng.choice(_KINDS)}"
        while name in used:
            name = f"{rng.choice(_ROADS)}{rng.choice(_KINDS)}{rng.randint(2, 99)}"
        used.add(name)
        grids = [{"id": f"g{g + 1}", "name": f"第{g + 1}网格"}
                 for g in range((buildings + buildings_per_grid - 1) // buildings_per_grid)]
        blds = [{"id": f"b{b + 1:02d}", "name": f"{b + 1}号楼", "grid": f"g{b // buildings_per_grid + 1}",
                 "location": _building_location(c, b)} for b in range(buildings)]
        site["communities"].append({"id": cid, "name": name, "grids": grids, "buildings": blds})
        for b in blds:
            for k in range(devices_per_building):
                dtype = mix[k % len(mix)]
                site["devices"].append({"id": f"{CATALOG[dtype].id_prefix}-{cid}-{b['id']}-{k + 1:02d}",
                                        "type": dtype.value, "community": cid, "building": b["id"]})
        for g in grids:
            rid = f"worker-{cid}-{g['id']}"
            site["recipients"].append({"id": rid, "name": f"{name}{g['name']}网格员", "role": "grid_worker",
                                       "scope": {"community": cid, "grid": g["id"]}, "channels": [{"type": "log"}]})
        site["recipients"].append({"id": f"committee-{cid}", "name": f"{name}居委会", "role": "community",
                                   "scope": {"community": cid}, "channels": [{"type": "log"}]})
    site["recipients"] += [
        {"id": "street-office", "name": f"{site['street']['name']}办事处", "role": "street_office",
         "scope": {"street": "street"}, "channels": [{"type": "log"}]},
        {"id": "bureau", "name": "区应急管理局", "role": "bureau", "scope": {}, "channels": [{"type": "log"}]},
    ]
    site["api_tokens"] = [{"token": f"admin-{rng.getrandbits(64):016x}", "role": "admin"}]
    return site


def _building_location(community: int, building: int) -> dict[str, float]:
    """Where a generated building is (GCJ-02): communities on a 10-wide grid, buildings 8 to a row."""
    lat = _ORIGIN[0] - (community // 10) * _COMMUNITY_STEP - (building // 8) * _BUILDING_STEP
    lon = _ORIGIN[1] + (community % 10) * _COMMUNITY_STEP + (building % 8) * _BUILDING_STEP
    return {"lat": round(lat, 6), "lon": round(lon, 6)}
