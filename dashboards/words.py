"""Every word the dashboards show, in zh-CN and English."""

from __future__ import annotations

from kernel.alerting import LEVELS, Level

Lang = str  # "zh-CN" or "en"
LANGS: tuple[Lang, ...] = ("zh-CN", "en")

# Grafana's named colours; "text" is the theme's own text colour, for what is normal.
NEUTRAL = "text"
LEVEL_COLOURS: dict[Level, str] = {Level.BLUE: "blue", Level.YELLOW: "yellow", Level.ORANGE: "orange",
                                   Level.RED: "red"}
LEVEL_WORDS: dict[Level, tuple[str, str]] = {
    Level.BLUE: ("蓝色预警（IV级）", "Blue (IV)"),
    Level.YELLOW: ("黄色预警（III级）", "Yellow (III)"),
    Level.ORANGE: ("橙色预警（II级）", "Orange (II)"),
    Level.RED: ("红色预警（I级）", "Red (I)"),
}
NORMAL = ("正常", "Normal")
EVENTS: dict[str, tuple[str, str]] = {
    "fired": ("发生", "fired"), "escalated": ("升级通知", "escalated"), "level_raised": ("等级升高", "level raised"),
    "level_lowered": ("等级降低", "level lowered"), "acknowledged": ("已确认", "acknowledged"),
    "resolved": ("已解除", "resolved"), "reminder": ("提醒", "reminder"),
}

T: dict[str, tuple[str, str]] = {
    "wall": ("街道总览", "Street wall"),
    "community": ("社区详情", "Community detail"),
    "health": ("设备健康", "Device health"),
    "history": ("告警历史", "Alert history"),
    "folder": ("社区大脑", "Community brain"),
    "worst": ("最高预警等级", "Worst level"),
    "unacked": ("未确认告警", "Unacknowledged alerts"),
    "unacked_of": ("{level} 未确认", "{level} unacknowledged"),
    "oldest": ("最久未确认", "Oldest unacknowledged"),
    "online": ("在线设备", "Devices online"),
    "offline": ("离线设备", "Devices offline"),
    "map": ("楼栋地图（按最高预警等级着色）与避难场所", "Buildings by worst level, and shelters"),
    "shelters": ("避难场所（九成满黄色，满员橙色）", "Shelters (yellow from 90 % full, orange when full)"),
    "events": ("最新告警事件", "Latest alert events"),
    "charging": ("电动自行车充电负荷（安）", "E-bike charging load (A)"),
    "work_orders": ("吹哨报到：各部门未办结、超时与平均评分（近30天）",
                    "Whistles: open and overdue work orders and average rating per department (30 days)"),
    "annotation": ("告警", "Alerts"),
    "count_unit": ("起", "alerts"),
    "devices_unit": ("台", "devices"),
    "community_var": ("社区", "Community"),
    "building_var": ("楼栋", "Building"),
    "all": ("全部", "All"),
    "buildings": ("楼栋状态", "Buildings"),
    "alerts": ("本社区告警事件", "Alert events of this community"),
    "devices": ("设备状态", "Devices"),
    # A device type's plot (dashboards.readings): the type's and the field's names from the catalog.
    "plot": ("{kind} · {field}{unit}", "{kind}: {field}{unit}"),
    "plot_wall": ("{kind} · 各社区最高{field}{unit}", "{kind}: {field}{unit}, highest per community"),
    "online_rate": ("在线率", "Online rate"),
    "online_rate_time": ("在线率（按社区）", "Online rate by community"),
    "low_battery": ("最低电量", "Lowest battery"),
    "faults": ("故障与防拆", "Faults and tamper"),
    "device_table": ("设备：离线、静默、低电量、故障", "Devices: offline, silent, low battery, faults"),
    "by_rule": ("告警数（按规则）", "Alerts fired by rule"),
    "by_level": ("告警数（按等级）", "Alerts fired by level"),
    "ack_median": ("确认用时（中位数）", "Time to acknowledge (median)"),
    "ack_p90": ("确认用时（90%）", "Time to acknowledge (90th percentile)"),
    "resolve_median": ("解除用时（中位数）", "Time to resolve (median)"),
    "resolve_p90": ("解除用时（90%）", "Time to resolve (90th percentile)"),
    "rule_level_table": ("告警数（按规则与等级）", "Alerts by rule and level"),
    "col_community": ("社区", "Community"), "col_building": ("楼栋", "Building"), "col_name": ("名称", "Name"),
    "col_level": ("等级", "Level"), "col_event": ("事件", "Event"), "col_summary": ("内容", "Summary"),
    "col_rule": ("规则", "Rule"), "col_device": ("设备", "Device"), "col_type": ("类型", "Type"),
    "col_online": ("在线", "Online"), "col_silent": ("静默（秒）", "Silent (s)"),
    "col_battery": ("电量（%）", "Battery (%)"), "col_rssi": ("信号（dBm）", "Signal (dBm)"),
    "col_fault": ("故障", "Fault"), "col_tamper": ("防拆", "Tamper"), "col_count": ("次数", "Count"),
    "col_open": ("未解除", "Open"), "col_firing": ("未确认", "Unacknowledged"),
    "col_capacity": ("容量（人）", "Capacity (people)"), "col_occupancy": ("现有人数", "People there"),
    "col_share": ("占用率", "Occupancy"),
    "yes_online": ("在线", "online"), "no_offline": ("离线", "offline"),
    "yes": ("是", "yes"), "no": ("否", "no"),
    # 韧性评估 (dashboards.resilience): the ratings and categories of docs/resilience.md.
    "resilience": ("韧性评估", "Resilience"),
    "rs_overall_table": ("各社区综合韧性得分与等级", "Overall resilience score and rating per community"),
    "rs_category_table": ("各社区分项得分与等级", "Each category's score and rating per community"),
    "rs_over_time": ("综合得分趋势（按社区）", "Overall score over time by community"),
    "rs_low": ("低", "low"), "rs_medium": ("中", "medium"), "rs_high": ("高", "high"),
    "rs_sensing": ("感知覆盖", "Sensing"), "rs_response": ("告警响应", "Response"),
    "rs_departments": ("吹哨报到", "Departments (whistles)"), "rs_preparedness": ("应急准备", "Preparedness"),
    "rs_recovery": ("事件恢复", "Recovery"),
    "col_score": ("得分", "Score"), "col_rating": ("等级", "Rating"), "col_category": ("分项", "Category"),
}


def w(key: str, lang: Lang) -> str:
    """The word for key in lang."""
    zh, en = T[key]
    return zh if lang == "zh-CN" else en


def level_word(level: Level, lang: Lang) -> str:
    """A level in words."""
    zh, en = LEVEL_WORDS[level]
    return zh if lang == "zh-CN" else en


def normal_word(lang: Lang) -> str:
    """No alert open."""
    return NORMAL[0] if lang == "zh-CN" else NORMAL[1]


def event_word(event: str, lang: Lang) -> str:
    """An alert event in words."""
    zh, en = EVENTS[event]
    return zh if lang == "zh-CN" else en


__all__ = ["LANGS", "LEVELS", "LEVEL_COLOURS", "NEUTRAL", "Lang", "event_word", "level_word", "normal_word", "w"]
