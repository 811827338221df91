"""The pages' words in zh-CN and English; a level is always named, never shown by colour alone."""

from __future__ import annotations

LEVEL_ICONS = {"blue": "●", "yellow": "◆", "orange": "▲", "red": "⬢"}

_ZH = {
    "title": "社区大脑", "wall": "值班大屏", "inbox": "我的告警", "login": "登录", "logout": "退出",
    "token": "令牌", "login_hint": "请输入值班令牌", "login_wrong": "令牌无效，请检查后重试",
    "level_red": "红色 I级 特别重大", "level_orange": "橙色 II级 重大", "level_yellow": "黄色 III级 较大",
    "level_blue": "蓝色 IV级 一般",
    "status_firing": "未签收", "status_acknowledged": "已签收", "status_resolved": "已结单",
    "ack": "签收", "resolve": "结单", "handover": "转派", "note": "备注", "category": "类别",
    "cat_real": "真实警情", "cat_false_alarm": "误报", "cat_test": "测试", "cat_device_fault": "设备故障",
    "need_category": "请选择结单类别", "need_to": "请选择转派对象",
    "unacked": "未签收", "oldest": "最久未签收", "updated": "更新于", "disconnected": "连接中断，正在重连…",
    "sound": "声音提醒", "online": "在线", "offline": "离线", "no_alerts": "当前没有告警",
    "since": "开始于", "told": "已通知", "history": "处理记录", "notifications": "通知与送达",
    "device": "设备", "readings": "最近读数（1小时）", "battery": "电量", "signal": "信号", "status": "状态",
    "open_alerts": "告警", "not_found": "没有这个告警或设备", "by": "由", "to": "转派给", "mine": "我的",
    "team": "本组", "communities": "社区与楼栋", "firing_alerts": "告警", "ago": "前",
    "min": "分钟", "sec": "秒", "hour": "小时", "value": "读数", "rule": "规则", "place": "位置",
    "ev_fired": "告警", "ev_escalated": "升级通知", "ev_level_raised": "级别升高", "ev_level_lowered": "级别降低",
    "ev_acknowledged": "签收", "ev_resolved": "结单", "ev_reminder": "提醒", "ev_handed_over": "转派",
    "ev_silenced": "已静默", "ev_inhibited": "已抑制",
    "delivery_pending": "待送达", "delivery_delivered": "已送达", "delivery_failed": "失败",
    "delivery_undeliverable": "无法送达", "delivery_withheld": "未发送", "no_readings": "最近一小时没有读数",
    "unknown": "未上报", "ack_note": "签收备注（如：我马上到）", "resolve_note": "结单说明（如：已处置，原因）",
}
_EN = {
    "title": "Community brain", "wall": "Duty wall", "inbox": "My alerts", "login": "Log in", "logout": "Log out",
    "token": "Token", "login_hint": "Enter your duty token", "login_wrong": "Unknown token: check it and try again",
    "level_red": "Red I extreme", "level_orange": "Orange II severe", "level_yellow": "Yellow III major",
    "level_blue": "Blue IV minor",
    "status_firing": "Not acknowledged", "status_acknowledged": "Acknowledged", "status_resolved": "Resolved",
    "ack": "Acknowledge", "resolve": "Resolve", "handover": "Hand over", "note": "Note", "category": "Category",
    "cat_real": "Real", "cat_false_alarm": "False alarm", "cat_test": "Test", "cat_device_fault": "Device fault",
    "need_category": "Choose what it was", "need_to": "Choose whom to hand over to",
    "unacked": "Not acknowledged", "oldest": "Oldest waiting", "updated": "Updated", "disconnected":
    "Disconnected: reconnecting…", "sound": "Sound", "online": "online", "offline": "offline",
    "no_alerts": "No alerts now", "since": "Since", "told": "Told", "history": "History",
    "notifications": "Notifications and deliveries", "device": "Device", "readings": "Recent readings (1 hour)",
    "battery": "Battery", "signal": "Signal", "status": "Status", "open_alerts": "Alerts",
    "not_found": "No such alert or device", "by": "by", "to": "Hand over to", "mine": "Mine", "team": "Team",
    "communities": "Communities and buildings", "firing_alerts": "Alerts", "ago": "ago", "min": "min",
    "sec": "s", "hour": "h", "value": "Value", "rule": "Rule", "place": "Place",
    "ev_fired": "fired", "ev_escalated": "escalated", "ev_level_raised": "level raised",
    "ev_level_lowered": "level lowered", "ev_acknowledged": "acknowledged", "ev_resolved": "resolved",
    "ev_reminder": "reminder", "ev_handed_over": "handed over", "ev_silenced": "silenced",
    "ev_inhibited": "inhibited",
    "delivery_pending": "pending", "delivery_delivered": "delivered", "delivery_failed": "failed",
    "delivery_undeliverable": "undeliverable", "delivery_withheld": "withheld",
    "no_readings": "No readings in the last hour", "unknown": "not reported",
    "ack_note": "Note (e.g. on my way)", "resolve_note": "What was done, and why",
}


def words(lang: str) -> dict[str, str]:
    """The words of a language (zh-CN unless English is asked for)."""
    return _EN if lang == "en" else _ZH
