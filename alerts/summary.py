"""What a person reads: a one-line summary naming the place in words they know (zh-CN or English)."""

from __future__ import annotations

import time

from kernel.alerting import SERVICE_WIDE, Alert, Level, Loss
from kernel.devices import CATALOG, field_info
from kernel.ids import UNKNOWN
from kernel.site import Site

# The device rules' titles come from the catalog (each type's module); these are the rules of every type
# and of the service itself.
RULE_TITLES: dict[str, tuple[str, str]] = {
    "device.offline": ("设备离线", "device offline"),
    "device.battery": ("电量低", "battery low"),
    "device.fault": ("设备故障或被拆", "device fault or tampering"),
    "device.gaps": ("读数多次缺失", "readings missing again and again"),
    "service.readings_lost": ("读数在到达服务前丢失", "readings lost before they reached the service"),
    "service.broker_session_lost": ("MQTT 代理丢失了服务的持久会话，其间排队的读数已丢失",
                                    "the MQTT broker lost the service's persistent session and the readings "
                                    "it held for the service"),
    "service.roster_stale": ("值班名册超期未核实", "duty roster not verified for too long"),
    "service.disk_low": ("状态目录（state_dir）磁盘空间不足", "the state directory's disk (state_dir) is running low"),
    "service.disk_full": ("状态目录（state_dir）磁盘已满或无法写入，服务已暂停接收读数，读数由 MQTT 代理保留",
                          "the state directory's disk (state_dir) is full or cannot be written: the service has "
                          "stopped taking readings (the MQTT broker keeps them)"),
    "supplies.expiring": ("应急物资临近过期", "emergency supply near its expiry date"),
    "supplies.expired": ("应急物资已过期", "emergency supply past its expiry date"),
    "supplies.short": ("应急物资库存不足", "emergency supply below its minimum stock"),
    "shelter.full": ("避难场所接近满员", "shelter filling up"),
    "door_knocks.late": ("上门确认未按时完成", "door knocks not done in time"),
}
# The service's findings about its own disk: their value is the free space in MB.
DISK_RULES = frozenset({"service.disk_low", "service.disk_full"})
RULE_TITLES |= {rule: title for kind in CATALOG.values() for rule, title in kind.rule_titles.items()}
# What to check, said with the session-lost alert.
SESSION_LOST_CHECK = ("请检查代理的持久化（persistence、persistence_location 可写、autosave_interval）、"
                      "persistent_client_expiration 与队列上限 max_queued_messages",
                      "check the broker's persistence (persistence, a writable persistence_location, "
                      "autosave_interval), persistent_client_expiration and max_queued_messages")
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


def _when(ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ns // 1_000_000_000))


def _span(loss: Loss, *, zh: bool) -> str:
    first, last = _when(loss.first_ns), _when(loss.last_ns)
    if first == last:
        return first
    if first[:10] == last[:10]:
        first, last = first.removesuffix(" UTC"), last[11:]  # 2026-07-14 03:33:20 至 03:33:23 UTC
    return f"{first} 至 {last}" if zh else f"{first} to {last}"


def loss_words(alert: Alert, *, zh: bool) -> str:
    """What a finding about lost readings counted: how many readings, from how many devices, and when."""
    loss = alert.loss
    if loss is None:
        return ""
    if alert.rule == "service.broker_session_lost":
        check = SESSION_LOST_CHECK[0 if zh else 1]
        if zh:
            return f"（{_when(loss.first_ns)} 起 {loss.events} 次）；{check}"
        times = "once" if loss.events == 1 else f"{loss.events} times"
        return f" ({times} since {_when(loss.first_ns)}); {check}"
    readings = loss.readings or 0
    span = _span(loss, zh=zh)
    if alert.rule == "device.gaps":
        if zh:
            return f"（{loss.events} 次缺失，共 {readings} 条，{span}）"
        return f" ({loss.events} gaps, {readings} readings, {span})"
    if zh:
        return f"（{loss.devices} 台设备共 {readings} 条，{span} 发现）"
    return f" ({readings} readings from {loss.devices} devices, noticed {span})"


def summarise(site: Site, alert: Alert, locale: str) -> str:
    """One line: level, place, device, what happened, and the value."""
    zh = locale != "en"
    i = 0 if zh else 1
    title = RULE_TITLES.get(alert.rule, (alert.rule, alert.rule))[i]
    level = LEVELS[alert.level][i]
    if alert.rule in DISK_RULES:
        return _service_summary(alert, title, level, zh=zh)
    if alert.device_id.startswith(("supply:", "shelter:", "knocks:")):
        where = place_words(site, alert.community, alert.building, alert.grid, zh=zh)
        what = resource_words(site, alert, zh=zh)
        return f"【{level}】{where}：{title}{what}" if zh else f"[{level}] {where}: {title}{what}"
    if alert.rule.startswith("service.") or alert.rule == "device.gaps":
        if alert.loss is None and alert.summary:
            return alert.summary  # restored after a restart: the stored summary has the numbers
        if alert.loss is not None:
            return _loss_summary(site, alert, title, level, zh=zh)
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


def _service_summary(alert: Alert, title: str, level: str, *, zh: bool) -> str:
    """An alert about the service's own disk: its value is the free space left, in MB."""
    where = f"社区大脑服务（{alert.device_id}）" if zh else f"community brain service ({alert.device_id})"
    free = f"{alert.value or 0:g}"
    if zh:
        return f"【{level}】{where}：{title}（剩余 {free} MB）"
    return f"[{level}] {where}: {title} ({free} MB free)"


def _loss_summary(site: Site, alert: Alert, title: str, level: str, *, zh: bool) -> str:
    if alert.community == SERVICE_WIDE:
        where = f"社区大脑服务（{alert.device_id}）" if zh else f"community brain service ({alert.device_id})"
        device = ""
    else:
        where = place_words(site, alert.community, alert.building, alert.grid, zh=zh)
        device = ""
        if alert.device_type in DEVICE_TYPES:
            device = f" {DEVICE_TYPES[alert.device_type][0 if zh else 1]} {alert.device_id}"
    body = f"{title}{loss_words(alert, zh=zh)}"
    return f"【{level}】{where}{device}：{body}" if zh else f"[{level}] {where}{device}: {body}"


def resource_words(site: Site, alert: Alert, *, zh: bool) -> str:
    """What a resource alert is about (CONTRACT §13): the supply or shelter by name, with its figures; for
    late door knocks, how many are still to do (never who: their details are personal)."""
    kind, _, item_id = alert.device_id.partition(":")
    n = int(alert.value or 0)
    c = site.communities.get(alert.community)
    if kind == "knocks":
        return f"（尚有 {n} 户未确认安全）" if zh else f" ({n} not yet reached)"
    if kind == "shelter":
        sh = next((x for x in c.shelters if x.id == item_id), None) if c else None
        name, cap = (sh.name, sh.capacity) if sh else (item_id, 0)
        return f" {name}（已有 {n} 人，容量 {cap}）" if zh else f" {name} ({n} people, capacity {cap})"
    s = next((x for x in c.supplies if x.id == item_id), None) if c else None
    if s is None:
        return f" {item_id}"
    if alert.rule == "supplies.short":
        return (f" {s.name}（{s.place}，库存 {n}{s.unit}，最低 {s.min_quantity}）" if zh
                else f" {s.name} ({s.place}: {n} {s.unit} in stock, minimum {s.min_quantity})")
    due = s.expires.isoformat() if s.expires else "?"
    if alert.rule == "supplies.expired":
        return f" {s.name}（{s.place}，{due} 到期，已过期）" if zh else f" {s.name} ({s.place}: expired on {due})"
    return (f" {s.name}（{s.place}，{n} 天后到期：{due}）" if zh
            else f" {s.name} ({s.place}: expires in {n} days, on {due})")
