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
    "ledger": "叫应台账", "ledger_empty": "本告警没有叫应呼叫", "export_csv": "导出 CSV", "export_xlsx": "导出 Excel",
    "call_waiting": "等待应答", "call_answered": "已应答", "call_missed": "超时未应答",
    "call_answered_late": "超时后应答",
    "call_ended": "告警已结束", "via_api": "接口", "via_page": "页面", "via_link": "通知链接", "via_sms": "短信链接",
    "via_voice": "语音按键", "ev_called": "叫应呼叫", "ev_answer_missed": "超时未应答", "ev_answered": "已应答",
    "ev_unanswered": "无人应答", "answer_title": "应答告警", "answer_button": "我已收到，马上处理",
    "answer_done": "已应答，谢谢", "answer_expired": "链接已过期，请登录后处理",
    "col_duty": "职责", "col_person": "人员", "col_attempt": "AB岗", "col_channel": "渠道", "col_called": "呼叫时间",
    "col_due": "应答期限", "col_sent": "发送时间", "col_delivery": "送达", "col_delivered": "送达时间",
    "col_status": "应答状态", "col_answered": "应答时间", "col_via": "应答方式", "col_note": "反馈",
    "col_place": "网格/社区/街道",
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
    "ledger": "Call ledger (叫应)", "ledger_empty": "Nobody was called for this alert", "export_csv": "Export CSV",
    "export_xlsx": "Export Excel", "call_waiting": "waiting for an answer", "call_answered": "answered",
    "call_missed": "not answered in time", "call_answered_late": "answered late", "call_ended": "alert ended",
    "via_api": "API", "via_page": "page", "via_link": "notification link", "via_sms": "SMS link",
    "via_voice": "voice key", "ev_called": "called", "ev_answer_missed": "not answered in time",
    "ev_answered": "answered", "ev_unanswered": "nobody answered", "answer_title": "Answer the alert",
    "answer_button": "I have it, on my way", "answer_done": "Answered, thank you",
    "answer_expired": "The link has expired: log in to act on the alert",
    "col_duty": "Duty", "col_person": "Person", "col_attempt": "A/B", "col_channel": "Channel", "col_called": "Called",
    "col_due": "Answer by", "col_sent": "Sent", "col_delivery": "Delivery", "col_delivered": "Delivered",
    "col_status": "Answer", "col_answered": "Answered", "col_via": "Answered by", "col_note": "Feedback",
    "col_place": "Grid / community / street",
}


def words(lang: str) -> dict[str, str]:
    """The words of a language (zh-CN unless English is asked for)."""
    return _EN if lang == "en" else _ZH


# 吹哨报到 (docs/response.md): the whistle form, the whistle's page, the list and the department's page.
_ZH.update({
    "whistles": "吹哨报到", "whistle": "吹哨", "blow": "吹哨", "blow_title": "吹哨：召集部门报到",
    "grade": "紧急程度", "grade_urgent": "紧急", "grade_general": "一般", "what": "什么事",
    "what_hint": "如：3号楼101室冒烟，有人被困", "where": "在哪里", "community_field": "社区",
    "departments": "召集部门", "targets": "时限", "blow_send": "吹哨，通知所选部门",
    "step_sign": "签收", "step_arrive": "到场", "step_done": "办结",
    "os_open": "待签收", "os_signed": "已签收", "os_arrived": "已到场", "os_done": "已办结，待确认",
    "os_confirmed": "已确认", "ws_open": "处置中", "ws_done": "待确认", "ws_closed": "已办结",
    "left": "剩余", "late_by": "超时", "took": "用时", "due": "时限", "overdue_word": "已超时（督办）",
    "on_time": "按时", "confirm": "确认办结并评分", "rating": "评分", "rate_hint": "给该部门评分（1–5）",
    "confirm_note": "评价（可选）", "rated": "评分", "blower": "吹哨人", "blown_at": "吹哨时间",
    "open_whistles": "处置中", "overdue_whistles": "超时（督办）", "closed_whistles": "已办结",
    "by_department": "各部门响应", "by_community": "各社区", "orders": "工单", "open_n": "未办结",
    "overdue_n": "超时", "closed_n": "已确认", "late_n": "曾超时", "sign_avg": "平均签收",
    "arrive_avg": "平均到场", "done_avg": "平均办结", "rating_avg": "平均评分", "no_whistles": "暂无吹哨",
    "order_for": "工单", "note_step": "备注（如：已出警，预计10分钟到）", "from_alert": "来自告警",
    "need_departments": "请至少选择一个部门", "not_blower": "只有吹哨人可以确认和评分",
    "link_expired": "链接无效或已过期", "ev_order_opened": "吹哨", "ev_order_signed": "签收",
    "ev_order_arrived": "到场", "ev_order_done": "办结", "ev_order_confirmed": "确认评分",
    "ev_order_overdue": "超时督办", "day": "天", "cannot_blow": "你的角色不能吹哨",
})
_EN.update({
    "whistles": "Whistles", "whistle": "Whistle", "blow": "Blow the whistle",
    "blow_title": "Blow the whistle: summon departments", "grade": "Grade", "grade_urgent": "Urgent",
    "grade_general": "General", "what": "What", "what_hint": "e.g. smoke in flat 101 of building 3, someone trapped",
    "where": "Where", "community_field": "Community", "departments": "Departments to summon", "targets": "Targets",
    "blow_send": "Blow: tell the chosen departments", "step_sign": "Sign", "step_arrive": "Arrive",
    "step_done": "Done", "os_open": "Waiting to be signed", "os_signed": "Signed", "os_arrived": "On site",
    "os_done": "Done, to be confirmed", "os_confirmed": "Confirmed", "ws_open": "In progress",
    "ws_done": "To be confirmed", "ws_closed": "Closed", "left": "left", "late_by": "overdue by", "took": "took",
    "due": "target", "overdue_word": "Overdue (supervisor told)", "on_time": "on time",
    "confirm": "Confirm and rate", "rating": "Rating", "rate_hint": "Rate the department (1–5)",
    "confirm_note": "Comment (optional)", "rated": "Rated", "blower": "Blown by", "blown_at": "Blown at",
    "open_whistles": "In progress", "overdue_whistles": "Overdue", "closed_whistles": "Closed",
    "by_department": "Departments", "by_community": "Communities", "orders": "Orders", "open_n": "Open",
    "overdue_n": "Overdue", "closed_n": "Confirmed", "late_n": "Were late", "sign_avg": "Avg. sign",
    "arrive_avg": "Avg. arrival", "done_avg": "Avg. done", "rating_avg": "Avg. rating", "no_whistles": "No whistles",
    "order_for": "Work order", "note_step": "Note (e.g. on our way, 10 minutes)", "from_alert": "From alert",
    "need_departments": "Choose at least one department", "not_blower": "Only the one who blew it confirms",
    "link_expired": "The link is not valid or has expired", "ev_order_opened": "whistle",
    "ev_order_signed": "signed", "ev_order_arrived": "arrived", "ev_order_done": "done",
    "ev_order_confirmed": "confirmed", "ev_order_overdue": "overdue (supervisor told)", "day": "d",
    "cannot_blow": "Your role cannot blow a whistle",
})


def span_words(seconds: float, t: dict[str, str]) -> str:
    """A duration as people say it: 45秒, 12分钟, 1小时20分钟, 2天3小时."""
    s = int(abs(seconds))
    if s < 60:
        return f"{s}{t['sec']}"
    if s < 3600:
        return f"{s // 60}{t['min']}"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h}{t['hour']}" + (f"{m}{t['min']}" if m else "")
    d, h = divmod(s // 3600, 24)
    return f"{d}{t['day']}" + (f"{h}{t['hour']}" if h else "")


# The alert page on a phone: every event, channel and ledger field in words; one tap to navigate.
_ZH.update({
    "ev_call": "叫应呼叫", "ch_sms": "短信", "ch_voice": "语音电话", "ch_wecom": "企业微信", "ch_dingtalk": "钉钉",
    "ch_webhook": "Webhook", "ch_log": "日志", "ch_mqtt": "MQTT", "navigate": "导航到这里（高德地图）",
    "attempt_a": "A岗", "attempt_b": "B岗", "attempts": "发送次数", "col_event": "事件", "col_to": "对象",
})
_EN.update({
    "ev_call": "call (叫应)", "ch_sms": "SMS", "ch_voice": "voice call", "ch_wecom": "WeCom", "ch_dingtalk": "DingTalk",
    "ch_webhook": "webhook", "ch_log": "log", "ch_mqtt": "MQTT", "navigate": "Navigate here (Amap)",
    "attempt_a": "A", "attempt_b": "B", "attempts": "Attempts", "col_event": "Event", "col_to": "To",
})

# 待登记设备: the devices heard from through a source that nobody registered, and their `devices:` lines.
_ZH.update({
    "unregistered": "待登记设备", "unreg_n": "{n} 台待登记设备", "unreg_one": "1 台待登记设备",
    "unreg_intro": "这些设备通过网关或平台发来了数据，但站点文件里还没有登记：复制它的 devices: 行，加到站点文件的"
                   " devices: 下，把 ? 换成实际值。",
    "unreg_none": "所有发来数据的设备都已登记，没有待登记的设备。",
    "unreg_grid": "待登记设备还不属于任何网格，由社区、街道或区里的值班人员登记。",
    "port": "端口", "first_seen": "首次上报", "last_seen": "最近上报", "messages": "消息数", "sample": "示例数据",
    "devices_line": "devices: 登记行", "copy_button": "复制", "copied": "已复制 ✓",
    "copy_selected": "已选中，请按 Ctrl+C 或长按复制",
    "fill_in": "需要你填写 ?：", "list_sep": "、", "fill_id": "设备编号 id", "fill_type": "设备类型 type",
    "fill_community": "社区 community", "fill_building": "楼栋 building", "no_community": "未指定（来源没有写社区）",
    "unreg_type": "类型", "ago_fmt": "{span}前",
    "src_zigbee2mqtt": "Zigbee2MQTT 网关", "src_chirpstack": "ChirpStack LoRaWAN 网络服务器",
    "src_tasmota": "Tasmota 设备",
    "src_shelly": "Shelly 设备", "src_ctwing": "CTWing 天翼物联平台", "src_onenet": "OneNET 中国移动物联网平台",
})
_EN.update({
    "unregistered": "Unregistered devices", "unreg_n": "{n} unregistered devices", "unreg_one": "1 unregistered device",
    "unreg_intro": "These devices sent data through a hub or platform but are not in the site file: copy a device's"
                   " devices: line under devices: in the site file and replace each ? with the real value.",
    "unreg_none": "Every device heard from is registered: nothing to add.",
    "unreg_grid": "Unregistered devices are in no grid yet: the community, street office or bureau on duty "
                  "registers them.",
    "port": "port", "first_seen": "First heard", "last_seen": "Last heard", "messages": "Messages", "sample": "Sample",
    "devices_line": "devices: line", "copy_button": "Copy", "copied": "Copied ✓",
    "copy_selected": "Selected: press Ctrl+C (or long-press) to copy",
    "fill_in": "Fill in the ?: ", "list_sep": ", ", "fill_id": "device id", "fill_type": "device type",
    "fill_community": "community", "fill_building": "building", "no_community": "not set (the source names none)",
    "unreg_type": "Type", "ago_fmt": "{span} ago",
    "src_zigbee2mqtt": "Zigbee2MQTT hub", "src_chirpstack": "ChirpStack LoRaWAN server",
    "src_tasmota": "Tasmota device",
    "src_shelly": "Shelly device", "src_ctwing": "CTWing (China Telecom) platform",
    "src_onenet": "OneNET (China Mobile) platform",
})

# The wall's cluster strip (集群): which instance serves the page, the live ones, the last handover.
_ZH.update({
    "cl_title": "集群", "cl_ok": "集群正常", "cl_warn": "集群异常", "cl_served_by": "本页来自",
    "cl_live": "在线实例", "cl_here": "本页", "cl_partitions": "个分区", "cl_communities": "个社区",
    "cl_handover": "最近交接", "cl_partition": "分区", "cl_nobody": "无人", "cl_took": "用时",
    "cl_released": "主动交出", "cl_taken": "故障接管", "cl_how": "（{how}）", "cl_none_yet": "尚无交接",
    "cl_lease_lost": "本实例租约已失效，暂停处理", "cl_unserved": "分区 {parts} 无人服务",
    "cl_unserved_n": "分区 {parts} 无人服务",
})
_EN.update({
    "cl_title": "Cluster", "cl_ok": "Cluster OK", "cl_warn": "Cluster warning", "cl_served_by": "Served by",
    "cl_live": "Live instances", "cl_here": "this page", "cl_partitions": "partitions",
    "cl_communities": "communities", "cl_handover": "Last handover", "cl_partition": "partition",
    "cl_nobody": "nobody", "cl_took": "took", "cl_released": "given up", "cl_taken": "taken over", "cl_how": " ({how})",
    "cl_none_yet": "no handover yet",
    "cl_lease_lost": "this instance lost its lease: processing paused", "cl_unserved": "partition {parts} not served",
    "cl_unserved_n": "partitions {parts} not served",
})

# 物资 and 避难场所 (CONTRACT §13): the supplies page with its movement form, the shelters page, and an
# orange or red alert's 现场可用 (on hand) and 上门确认 (door knocks).
_ZH.update({
    "supplies": "物资", "supplies_title": "应急物资", "shelters": "避难场所", "all_kinds": "全部",
    "kind_fire": "消防", "kind_flood": "防汛", "kind_medical": "医疗", "kind_power": "电力", "kind_rescue": "救援",
    "kind_living": "生活",
    "tier_community": "社区", "tier_school": "学校", "tier_supermarket": "超市", "tier_household": "家庭",
    "col_supply": "物资", "col_stock": "库存", "col_where": "存放地点", "col_keeper": "保管人", "col_tier": "层级",
    "col_expires": "有效期", "col_kinds": "用途", "stock_of": "现有 {q} {unit}",
    "sup_option": "{name}（现有 {q} {unit}）· {place}", "min_of": "最少 {m} {unit}",
    "sup_ok": "正常", "sup_short": "短缺", "sup_expiring": "即将过期", "sup_expired": "已过期",
    "days_left": "剩 {n} 天", "days_over": "过期 {n} 天", "no_expiry": "长期", "n_short": "短缺 {n} 项",
    "n_expiring": "即将过期 {n} 项", "n_expired": "已过期 {n} 项", "all_ok": "全部正常",
    "no_supplies": "没有登记的应急物资", "move_title": "登记出入库", "move_this": "登记",
    "move_supply": "物资", "move_reason": "原因", "move_qty": "数量", "move_count_qty": "清点实有数量",
    "move_qty_hint": "盘点时填清点到的实有数量", "move_note": "备注（可选，如：3号楼火情领用）",
    "move_send": "登记", "reason_used": "领用", "reason_restocked": "入库", "reason_count": "盘点",
    "reason_expired": "过期报废", "minus": "减少", "plus": "增加",
    "need_supply": "请选择物资", "need_reason": "请选择原因", "need_qty": "请填写数量（整数）",
    "need_positive": "数量须大于 0", "too_many": "库存只有 {q} {unit}，不能{why} {n} {unit}",
    "moved": "已登记：{name} {why} {n} {unit}，现有 {q} {unit}",
    "counted": "已盘点：{name} 实有 {q} {unit}（{delta}）", "count_same": "已盘点：{name} 实有 {q} {unit}，与库存相符",
    "cannot_move": "只有保管人、所在社区、街道和管理员可以登记出入库。",
    "export_ledger": "下载物资台账", "form_wrong": "请修改后再提交",
    "shelters_title": "避难场所", "col_capacity": "容量", "col_occupancy": "现有人数", "people": "人",
    "occ_of": "{occ} / {cap} 人（{pct}%）", "occ_free": "有空位", "occ_nearly": "接近满员", "occ_full": "已满员",
    "occ_at": "更新于 {at}（{ago}）", "occ_never": "尚未上报人数", "manager": "负责人",
    "occ_update": "更新人数", "occ_count": "现有人数", "occ_updated": "已更新：{name} 现有 {n} 人",
    "need_count": "请填写人数（0 或正整数）", "cannot_occupy": "只有负责人、所在社区、街道和管理员可以上报人数。",
    "norm_line": "避难容量 {cap} 人 / 居民 {res} 人 = {pct}%（标准 ≥ {norm}%）", "norm_ok": "达标",
    "norm_bad": "未达标", "norm_unknown": "居民人数未登记，无法核算", "no_shelters": "没有登记的避难场所",
    "on_hand": "现场可用", "on_hand_shelters": "最近的避难场所", "on_hand_supplies": "可用物资",
    "metres": "约 {m} 米", "here_in": "就在楼内", "no_on_hand": "附近没有登记的避难场所或物资",
    "cap_occ": "容量 {cap} 人 · 已有 {occ} 人", "kept_by": "保管人", "navigate_short": "导航",
    "knocks": "上门确认", "knocks_reached": "{total} 户中 {n} 户已确认", "knocks_recorded": "{total} 户中 {n} 户已记录",
    "knocks_left": "待上门 {n} 户", "knocks_not": "未联系上 {n} 户", "knocks_due": "须在 {at} 前完成（剩余 {left}）",
    "knocks_overdue": "已超过时限 {at}", "knocks_escalated": "已超时，已通知社区", "knocks_all_done": "已全部记录",
    "knocks_follow": "已全部记录，{n} 户未联系上，请继续设法联系", "knocks_of": "所属告警",
    "subject_supply": "物资", "subject_shelter": "避难场所",
    "knock_chip": "上门确认 {n}/{total}", "knock_chip_not": "{n} 户未联系上",
    "ks_pending": "待上门", "ks_reached": "已确认", "ks_not_reached": "未联系上",
    "knock_reached": "已确认", "knock_not_reached": "未联系上", "knock_note": "备注（可选，如：已转移到楼下）",
    "knock_by": "{by} {at}", "room_of": "{unit}单元{room}室", "room_only": "{room}室", "needs": "需要：",
    "call": "拨打", "knock_counts_only": "住户信息只给网格员、社区和管理员看。",
    "vc_elderly_alone": "独居老人", "vc_bedridden": "卧床", "vc_disabled": "残障人士",
    "vc_chronically_ill": "慢性病患者", "vc_other": "其他",
})
_EN.update({
    "supplies": "Supplies", "supplies_title": "Emergency supplies", "shelters": "Shelters", "all_kinds": "All",
    "kind_fire": "Fire", "kind_flood": "Flood", "kind_medical": "Medical", "kind_power": "Power",
    "kind_rescue": "Rescue", "kind_living": "Living",
    "tier_community": "community", "tier_school": "school", "tier_supermarket": "supermarket",
    "tier_household": "household",
    "col_supply": "Supply", "col_stock": "Stock", "col_where": "Kept at", "col_keeper": "Keeper", "col_tier": "Tier",
    "col_expires": "Use by", "col_kinds": "For", "stock_of": "{q} {unit} in stock",
    "sup_option": "{name} ({q} {unit} in stock) · {place}", "min_of": "at least {m}",
    "sup_ok": "OK", "sup_short": "Short", "sup_expiring": "Expiring soon", "sup_expired": "Expired",
    "days_left": "{n} days left", "days_over": "{n} days past", "no_expiry": "no expiry", "n_short": "{n} short",
    "n_expiring": "{n} expiring soon", "n_expired": "{n} expired", "all_ok": "all OK",
    "no_supplies": "No emergency supplies are listed", "move_title": "Record a movement", "move_this": "Record",
    "move_supply": "Supply", "move_reason": "Why", "move_qty": "How many", "move_count_qty": "How many counted",
    "move_qty_hint": "For a stock count, the number actually there", "move_note": "Note (optional)",
    "move_send": "Record", "reason_used": "Used", "reason_restocked": "Restocked", "reason_count": "Stock count",
    "reason_expired": "Expired", "minus": "less", "plus": "more",
    "need_supply": "Choose a supply", "need_reason": "Choose why", "need_qty": "Enter how many (a whole number)",
    "need_positive": "How many must be more than 0",
    "too_many": "Only {q} {unit} in stock: cannot take {n} ({why})",
    "moved": "Recorded: {name}, {why} {n} {unit}; {q} {unit} in stock now",
    "counted": "Counted: {name}, {q} {unit} there ({delta})", "count_same": "Counted: {name}, {q} {unit}, as in stock",
    "cannot_move": "Only the keeper, their community, the street office and admins record movements.",
    "export_ledger": "Download the supplies ledger", "form_wrong": "Correct it and send again",
    "shelters_title": "Shelters", "col_capacity": "Capacity", "col_occupancy": "People there", "people": "people",
    "occ_of": "{occ} of {cap} ({pct}%)", "occ_free": "Room left", "occ_nearly": "Nearly full", "occ_full": "Full",
    "occ_at": "Updated {at} ({ago})", "occ_never": "Not reported yet", "manager": "Manager",
    "occ_update": "Update", "occ_count": "People there now", "occ_updated": "Updated: {name}, {n} people there",
    "need_count": "Enter how many people (0 or more)",
    "cannot_occupy": "Only the manager, the community, the street office and admins report occupancy.",
    "norm_line": "Shelter room {cap} / residents {res} = {pct}% (norm ≥ {norm}%)", "norm_ok": "Meets the norm",
    "norm_bad": "Below the norm", "norm_unknown": "Residents not listed: cannot check",
    "no_shelters": "No shelters are listed",
    "on_hand": "On hand", "on_hand_shelters": "Nearest shelters", "on_hand_supplies": "Supplies that fit",
    "metres": "about {m} m", "here_in": "in the building", "no_on_hand": "No shelters or supplies listed nearby",
    "cap_occ": "capacity {cap} · {occ} there", "kept_by": "Keeper", "navigate_short": "Navigate",
    "knocks": "Door knocks", "knocks_reached": "{n} of {total} reached", "knocks_recorded": "{n} of {total} recorded",
    "knocks_left": "{n} to knock", "knocks_not": "{n} not reached", "knocks_due": "Due by {at} ({left} left)",
    "knocks_overdue": "Past the deadline {at}", "knocks_escalated": "Late: the community was told",
    "knocks_all_done": "All recorded", "knocks_follow": "All recorded; {n} not reached: keep trying",
    "knocks_of": "the alert they belong to", "subject_supply": "Supply", "subject_shelter": "Shelter",
    "knock_chip": "Door knocks {n}/{total}", "knock_chip_not": "{n} not reached",
    "ks_pending": "To knock", "ks_reached": "Reached", "ks_not_reached": "Not reached",
    "knock_reached": "Reached", "knock_not_reached": "Not reached", "knock_note": "Note (optional)",
    "knock_by": "{by} {at}", "room_of": "unit {unit}, room {room}", "room_only": "room {room}", "needs": "Needs: ",
    "call": "Call", "knock_counts_only": "Residents' details are for the grid worker, the community and admins.",
    "vc_elderly_alone": "elderly, alone", "vc_bedridden": "bedridden", "vc_disabled": "disabled",
    "vc_chronically_ill": "chronically ill", "vc_other": "other",
})

# 韧性评估 (docs/resilience.md): a community's scorecard, the street comparing its communities, the trend.
_ZH.update({
    "resilience": "韧性评估", "rs_title": "社区韧性评估", "rs_street": "各社区韧性对比", "rs_overall": "综合",
    "rs_low": "低", "rs_medium": "中", "rs_high": "高", "rs_score": "得分", "rs_rating": "等级",
    "rs_community": "社区", "rs_indicator": "指标", "rs_value": "当前值", "rs_target": "目标",
    "rs_no_record": "无记录", "rs_as_of": "计算于 {at}", "rs_open_card": "查看",
    "rs_scale": "得分 0–100：低 <50，中 50–79，高 ≥80",
    "rs_curve": "最近一次事件的功能曲线（PEOPLES）", "rs_curve_area": "归一化面积 {area}",
    "rs_curve_span": "{start} 至 {end}，历时 {span}", "rs_curve_none": "12个月内没有已结束的橙色/红色事件",
    "rs_func": "功能", "rs_time": "时间",
    "rs_trend": "趋势（90天）", "rs_trend_none": "暂无历史记录", "rs_trend_one": "只有一次记录（{at}），还看不出趋势",
    "rs_trend_points": "{n} 次记录（{first} 至 {last}）及现在", "rs_trend_unavailable": "历史记录暂时无法读取",
    "rs_unavailable": "韧性评估暂时无法计算", "rs_times": "{n} 次", "rs_of_5": "{v} / 5",
})
_EN.update({
    "resilience": "Resilience", "rs_title": "Community resilience", "rs_street": "Communities compared",
    "rs_overall": "Overall", "rs_low": "Low", "rs_medium": "Medium", "rs_high": "High", "rs_score": "Score",
    "rs_rating": "Rating", "rs_community": "Community", "rs_indicator": "Indicator", "rs_value": "Now",
    "rs_target": "Target", "rs_no_record": "no records", "rs_as_of": "as of {at}", "rs_open_card": "Open",
    "rs_scale": "Scores 0–100: low <50, medium 50–79, high ≥80",
    "rs_curve": "Functionality curve of the latest event (PEOPLES)", "rs_curve_area": "Normalised area {area}",
    "rs_curve_span": "{start} to {end}, {span}", "rs_curve_none": "No orange or red event ended in 12 months",
    "rs_func": "functionality", "rs_time": "time",
    "rs_trend": "Trend (90 days)", "rs_trend_none": "No history yet",
    "rs_trend_one": "Only one record so far ({at}): no trend yet",
    "rs_trend_points": "{n} records ({first} to {last}) and now",
    "rs_trend_unavailable": "The history cannot be read now",
    "rs_unavailable": "The scorecard cannot be worked out now", "rs_times": "{n}", "rs_of_5": "{v} / 5",
})
