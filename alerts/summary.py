"""What a person reads: a one-line summary naming the place in words they know (zh-CN or English)."""

from __future__ import annotations

from kernel.alerting import Alert, Level
from kernel.devices import CATALOG, field_info
from kernel.ids import UNKNOWN
from kernel.site import Site

RULE_TITLES: dict[str, tuple[str, str]] = {
    "smoke.obscuration": ("烟雾浓度升高", "smoke building up"),
    "smoke.alarm": ("烟感报警", "smoke alarm"),
    "smoke.multi": ("多个烟感同时报警", "several smoke alarms in one building"),
    "ebike.overcurrent": ("充电过流", "charging over-current"),
    "ebike.overheat": ("充电过热", "charging over-temperature"),
    "ebike.heating": ("充电温升过快", "battery heating fast while charging"),
    "ebike.overcharge": ("充电超时", "charging too long"),
    "water.level": ("积水", "standing water"),
    "water.rising": ("水位快速上涨", "water rising fast"),
    "fire_lane.blocked": ("消防通道占用", "fire lane blocked"),
    "shed.offgas": ("车棚电池释放可燃气体（热失控预警）", "battery off-gassing in the bike shed (runaway warning)"),
    "shed.offgas_rising": ("车棚氢气快速上升（热失控预警）", "hydrogen rising fast in the bike shed (runaway warning)"),
    "shed.fire": ("车棚起火", "fire in the bike shed"),
    "device.offline": ("设备离线", "device offline"),
    "device.battery": ("电量低", "battery low"),
    "device.fault": ("设备故障或被拆", "device fault or tampering"),
    "service.roster_stale": ("值班名册超期未核实", "duty roster not verified for too long"),
}
# Device types' names come from the catalog.
DEVICE_TYPES: dict[str, tuple[str, str]] = {t.value: (k.zh, k.en) for t, k in CATALOG.items()}
LEVELS: dict[Level, tuple[str, str]] = {
    Level.BLUE: ("蓝色预警（IV级）", "blue (IV)"),
    Level.YELLOW: ("黄色预警（III级）", "yellow (III)"),
    Level.ORANGE: ("橙色预警（II级）", "orange (II)"),
    Level.RED: ("红色预警（I级）", "red (I)"),
}


def place_words(site: Site, community: str, building: str, grid: str, *, zh: bool) -> str:
    """Community, building and grid by their names."""
    c = site.communities.get(community)
    parts = [c.name if c else community]
    if building != UNKNOWN and c is not None:
        b = next((b for b in c.buildings if b.id == building), None)
        parts.append(b.name if b else building)
    if grid != UNKNOWN and c is not None:
        g = next((g for g in c.grids if g.id == grid), None)
        parts.append(f"（{g.name if g else grid}）" if zh else f"({g.name if g else grid})")
    return " ".join(parts)


def value_words(alert: Alert, *, zh: bool) -> str:
    """What the value is, with its unit from the catalog: （积水深度 16.7 cm）, （10 分钟上涨 47.2 cm）."""
    if alert.value is None:
        return ""
    m = alert.measure
    info = field_info(alert.device_type, m.field) if m is not None else None
    number = f"{round(alert.value, 2):g}"  # a rise 47.19999 reads 47.2
    if m is None or info is None:
        return f"（当前值 {number}）" if zh else f" (value {number})"
    unit = f" {info.unit}" if info.unit else ""
    if m.rise_within_s is None:
        return f"（{info.zh} {number}{unit}）" if zh else f" ({info.en} {number}{unit})"
    window = _window_words(m.rise_within_s, zh=zh)
    if zh:
        return f"（{info.zh}{window}上涨 {number}{unit}）"
    return f" ({info.en} up {number}{unit} in {window})"


def _window_words(seconds: float, *, zh: bool) -> str:
    if seconds % 60 == 0:
        n = f"{seconds / 60:g}"
        return f" {n} 分钟" if zh else f"{n} min"
    return f" {seconds:g} 秒" if zh else f"{seconds:g} s"


def summarise(site: Site, alert: Alert, locale: str) -> str:
    """One line: level, place, device, what happened, and the value."""
    zh = locale != "en"
    i = 0 if zh else 1
    title = RULE_TITLES.get(alert.rule, (alert.rule, alert.rule))[i]
    level = LEVELS[alert.level][i]
    where = place_words(site, alert.community, alert.building, alert.grid, zh=zh)
    if alert.device_id.startswith(("building:", "roster:")):
        device = ""
    else:
        kind = DEVICE_TYPES.get(alert.device_type, (alert.device_type, alert.device_type))[i]
        device = f" {kind} {alert.device_id}"
    value = value_words(alert, zh=zh)
    if zh:
        return f"【{level}】{where}{device}：{title}{value}"
    return f"[{level}] {where}{device}: {title}{value}"
