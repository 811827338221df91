"""Every dashboard as Grafana JSON, and the files under dashboards/ that hold them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards.boards import alert_history, community_detail, community_variable, device_health, street_wall
from dashboards.resilience import resilience_board
from dashboards.words import LANGS, Lang
from kernel.settings import DashboardSettings, Settings

HERE = Path(__file__).resolve().parent
# zh-CN at the top of dashboards/, English in dashboards/en/; Grafana's provider loads both.
FILES = ("street-wall", "community-detail", "device-health", "alert-history", "resilience")


def _centre(settings: Settings | None) -> tuple[float, float] | None:
    """The mean of the site's building coordinates, when it has some."""
    if settings is None:
        return None
    points = [(b.location.lat, b.location.lon) for c in settings.communities for b in c.buildings
              if b.location is not None and b.location.lat is not None and b.location.lon is not None]
    if not points:
        return None
    return (round(sum(p[0] for p in points if p[0] is not None) / len(points), 5),
            round(sum(p[1] for p in points if p[1] is not None) / len(points), 5))


def builders(lang: Lang, settings: Settings | None = None) -> dict[str, db.Dashboard]:
    """Each dashboard's builder by file name."""
    ds = settings.dashboards if settings is not None else DashboardSettings()
    makers: dict[str, Callable[[], db.Dashboard]] = {
        "street-wall": lambda: street_wall(lang, ds, _centre(settings)),
        "community-detail": lambda: community_detail(lang),
        "device-health": lambda: device_health(lang),
        "alert-history": lambda: alert_history(lang),
        "resilience": lambda: resilience_board(lang, community_variable(lang, include_all=True)),
    }
    return {name: makers[name]() for name in FILES}


def to_json(dashboard: Any) -> dict[str, Any]:
    """A dashboard model (or builder) as plain JSON data."""
    model = dashboard.build() if isinstance(dashboard, db.Dashboard) else dashboard
    data: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
    return data


def render(data: dict[str, Any]) -> str:
    """The file text: stable key order, Chinese as is."""
    return json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def path_for(name: str, lang: Lang, root: Path = HERE) -> Path:
    """Where a dashboard's file lives."""
    return root / f"{name}.json" if lang == "zh-CN" else root / lang / f"{name}.json"


def generate(settings: Settings | None = None) -> dict[Path, str]:
    """Every dashboard file's path and text."""
    out: dict[Path, str] = {}
    for lang in LANGS:
        for name, dashboard in builders(lang, settings).items():
            out[path_for(name, lang)] = render(to_json(dashboard))
    return out


def write(settings: Settings | None = None, root: Path = HERE) -> list[Path]:
    """Write every dashboard file under root; return the paths written."""
    written = []
    for path, text in generate(settings).items():
        target = root / path.relative_to(HERE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


def load_all(root: Path = HERE) -> dict[Path, dict[str, Any]]:
    """Every checked-in dashboard file, parsed."""
    return {p: json.loads(p.read_text(encoding="utf-8")) for p in sorted(root.rglob("*.json"))}
