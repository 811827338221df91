"""The scorecard's names and reasons in zh-CN and English (docs/resilience.md)."""

from __future__ import annotations

# id: (zh-CN, English)
NAMES: dict[str, tuple[str, str]] = {
    "sensing": ("感知覆盖", "Sensing"),
    "response": ("告警响应", "Response"),
    "departments": ("吹哨报到", "Departments (whistles)"),
    "preparedness": ("应急准备", "Preparedness"),
    "recovery": ("事件恢复", "Recovery"),
    "coverage": ("楼栋感知覆盖率", "Buildings with a registered device"),
    "uptime_30d": ("30天设备在线率", "Device uptime, 30 days"),
    "ack_median_s": ("签收时长中位数", "Time to acknowledge, median"),
    "ack_p90_s": ("签收时长90分位", "Time to acknowledge, 90th percentile"),
    "resolve_median_s": ("结单时长中位数", "Time to resolve, median"),
    "ack_within_target": ("按时签收率", "Acknowledged within the level's target"),
    "answered_5min": ("叫应5分钟应答率", "叫应 calls answered within 5 min"),
    "sign_median_s": ("部门签收时长中位数", "Departments' time to sign, median"),
    "arrive_median_s": ("部门到场时长中位数", "Departments' time to arrive, median"),
    "signed_in_time": ("按时签收工单率", "Work orders signed in time"),
    "arrived_in_time": ("按时到场工单率", "Work orders arrived in time"),
    "rating_mean": ("群众评价均分", "Mean rating"),
    "drills_12m": ("12个月演练次数", "Drills held in 12 months"),
    "supplies_ready": ("物资足量且在有效期内", "Supplies in stock and in date"),
    "shelter_capacity": ("避难场所容量/常住人口", "Shelter capacity per resident"),
    "door_knocks_in_time": ("上门确认按时完成率", "Door knocks completed in time"),
    "peoples_area": ("事件功能曲线面积 (PEOPLES)", "Functionality curve area (PEOPLES)"),
}

REASONS: dict[str, tuple[str, str]] = {
    "no_buildings": ("社区未登记楼栋", "no buildings listed for the community"),
    "no_devices": ("社区没有登记设备", "no devices registered in the community"),
    "no_alerts": ("90天内没有告警", "no alerts in 90 days"),
    "no_acks": ("90天内没有已签收的告警", "no acknowledged alerts in 90 days"),
    "no_resolved": ("90天内没有已结单的告警", "no resolved alerts in 90 days"),
    "no_due_alerts": ("90天内没有到签收时限的告警", "no alert in 90 days reached its acknowledge target"),
    "no_calls": ("90天内没有叫应呼叫", "no 叫应 calls in 90 days"),
    "no_orders": ("12个月内没有工单", "no work orders in 12 months"),
    "no_signed": ("12个月内没有已签收的工单", "no signed work orders in 12 months"),
    "no_arrived": ("12个月内没有已到场的工单", "no work orders arrived in 12 months"),
    "no_ratings": ("12个月内没有评价", "no ratings in 12 months"),
    "no_drills": ("12个月内没有演练记录", "no drills recorded in 12 months"),
    "no_supplies": ("社区未登记应急物资", "no supplies listed for the community"),
    "no_residents": ("社区未登记常住人口", "no residents listed for the community"),
    "no_shelters": ("社区未登记避难场所", "no shelters listed for the community"),
    "no_knocks": ("12个月内没有上门确认", "no door knocks in 12 months"),
    "no_events": ("12个月内没有已结束的橙色/红色事件", "no orange or red event ended in 12 months"),
}


def word(key: str, lang: str, table: dict[str, tuple[str, str]] = NAMES) -> str:
    """A name or reason in the language (zh-CN unless English)."""
    zh, en = table[key]
    return en if lang == "en" else zh
