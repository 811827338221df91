"""A drill's report (docs/drills.md), computed from the service's own records: for each drill alert the time
to its first acknowledgement and who gave it; each 叫应 call, answered by its deadline or not and within
5 minutes or not; each work order of a whistle blown from a drill alert, signed and on site by its due time
or not; each door knock, done by its due time or not; who was late, at what and by how much; and the
score, the share of those steps done on time. As JSON, as an HTML page and as an Excel workbook."""

from __future__ import annotations

import html
import io
from dataclasses import dataclass, field
from typing import Any

from kernel.clock import NS, rfc3339

WITHIN_S = 300.0  # 叫应: answered within 5 minutes of the call
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

WORDS: dict[str, dict[str, str]] = {
    "zh-CN": {"title": "演练报告", "community": "社区", "scenario": "场景", "started": "开始", "ended": "结束",
              "score": "得分（按时步骤占比）", "alerts": "演练告警", "alert": "告警", "level": "级别",
              "fired": "触发时间", "first_ack": "首次确认", "by": "确认人", "ack_s": "首次确认用时（秒）",
              "calls": "叫应", "person": "人员", "duty": "职责", "called": "呼叫时间", "due": "应答时限",
              "answered": "应答时间", "answer_s": "应答用时（秒）", "on_time": "按时", "within_5min": "5分钟内应答",
              "orders": "吹哨报到", "department": "部门", "step": "步骤", "done_at": "完成时间",
              "knocks": "上门确认", "resident": "居民", "status": "状态", "late": "迟到", "who": "谁",
              "what": "什么", "late_s": "迟到（秒）", "figures": "指标", "figure": "指标", "value": "数值",
              "yes": "是", "no": "否", "never": "未完成", "sign": "签收", "arrive": "到场",
              "call_what": "叫应应答", "knock_what": "上门确认", "none_late": "无人迟到",
              "bureau": "是否通知区局"},
    "en": {"title": "Drill report", "community": "Community", "scenario": "Scenario", "started": "Started",
           "ended": "Ended", "score": "Score (share of steps on time)", "alerts": "Drill alerts", "alert": "Alert",
           "level": "Level", "fired": "Fired", "first_ack": "First acknowledgement", "by": "By",
           "ack_s": "Time to first acknowledgement (s)", "calls": "叫应 calls", "person": "Person", "duty": "Duty",
           "called": "Called", "due": "Due", "answered": "Answered", "answer_s": "Time to answer (s)",
           "on_time": "On time", "within_5min": "Answered within 5 min", "orders": "Whistles' work orders",
           "department": "Department", "step": "Step", "done_at": "Done", "knocks": "Door knocks",
           "resident": "Resident", "status": "Status", "late": "Late", "who": "Who", "what": "What",
           "late_s": "Late by (s)", "figures": "Figures", "figure": "Figure", "value": "Value", "yes": "yes",
           "no": "no", "never": "not done", "sign": "sign", "arrive": "on site", "call_what": "answer the call",
           "knock_what": "door knock", "none_late": "nobody was late", "bureau": "Bureau told"},
}


@dataclass(slots=True)
class Records:
    """What the report is computed from, as the state database keeps it."""

    drill: dict[str, Any]  # id, community, scenario, started_ns, ended_ns, bureau
    alerts: list[dict[str, Any]]  # id, rule, level, summary
    events: list[tuple[str, int, str, str | None]]  # (alert id, at_ns, event, actor) in order
    calls: list[dict[str, Any]]  # rows of answer_calls
    orders: list[dict[str, Any]]  # rows of work_orders, with whistle's alert_id
    knocks: list[dict[str, Any]]  # rows of door_knocks
    names: dict[str, str] = field(default_factory=dict)  # person, department, resident id -> name


def _s(ns: int | None) -> float | None:
    return None if ns is None else round(ns / NS, 3)


def _step(done_ns: int | None, due_ns: int, end_ns: int) -> tuple[bool | None, float | None]:
    """(on time, late by s) of a step with a due time: None, None while it is neither done nor due."""
    if done_ns is not None:
        return done_ns <= due_ns, max(0.0, (done_ns - due_ns) / NS) if done_ns > due_ns else 0.0
    if due_ns <= end_ns:
        return False, None  # due, never done
    return None, None


def compute(r: Records, now_ns: int) -> dict[str, Any]:
    """The report of a drill (ended, or so far at now_ns)."""
    end = r.drill.get("ended_ns") or now_ns
    names = r.names
    late: list[dict[str, Any]] = []
    alerts = _alerts(r)
    calls = []
    for c in r.calls:
        on_time, late_s = _step(c["answered_ns"], c["due_ns"], end)
        answer_s = _s(c["answered_ns"] - c["called_ns"]) if c["answered_ns"] is not None else None
        row = {"alert_id": c["alert_id"], "person": c["person"], "name": names.get(c["person"], c["person"]),
               "duty": c["duty"], "attempt": c["attempt"].upper(), "called_at": rfc3339(c["called_ns"]),
               "due_at": rfc3339(c["due_ns"]), "answered_at": rfc3339(c["answered_ns"]),
               "answered_by": c["answered_by"], "answer_s": answer_s, "status": c["status"], "on_time": on_time,
               "within_5min": answer_s is not None and answer_s <= WITHIN_S}
        calls.append(row)
        if on_time is False:
            late.append({"who": c["person"], "name": row["name"], "what": "call",
                         "detail": f"{c['duty']} {row['attempt']}", "late_s": late_s})
    orders = []
    for o in r.orders:
        for step in ("sign", "arrive"):
            done = o["signed_ns"] if step == "sign" else o["arrived_ns"]
            due = o[f"due_{step}_ns"]
            on_time, late_s = _step(done, due, end)
            row = {"whistle_id": o["whistle_id"], "alert_id": o["alert_id"], "department": o["department"],
                   "name": names.get(o["department"], o["department"]), "step": step, "due_at": rfc3339(due),
                   "done_at": rfc3339(done), "on_time": on_time, "late_s": late_s}
            orders.append(row)
            if on_time is False:
                late.append({"who": o["department"], "name": row["name"], "what": step, "detail": o["whistle_id"],
                             "late_s": late_s})
    knocks = []
    for k in r.knocks:
        done = k["at_ns"] if k["status"] == "reached" else None
        on_time, late_s = _step(done, k["due_ns"], end)
        row = {"alert_id": k["alert_id"], "vulnerable_id": k["vulnerable_id"],
               "name": names.get(k["vulnerable_id"], k["vulnerable_id"]), "status": k["status"],
               "due_at": rfc3339(k["due_ns"]), "done_at": rfc3339(done), "by": k["actor"], "on_time": on_time,
               "late_s": late_s}
        knocks.append(row)
        if on_time is False:
            who = k["actor"] or k["grid"]
            late.append({"who": who, "name": names.get(who, who), "what": "knock", "detail": row["name"],
                         "late_s": late_s})
    steps = [x["on_time"] for x in (*calls, *orders, *knocks) if x["on_time"] is not None]
    acks = [a["time_to_first_ack_s"] for a in alerts if a["time_to_first_ack_s"] is not None]
    figures = {"alerts": len(alerts), "alerts_acknowledged": len(acks),
               "time_to_first_ack_s": min(acks) if acks else None,
               "calls": len(calls), "calls_on_time": sum(1 for c in calls if c["on_time"]),
               "calls_answered_within_5min": sum(1 for c in calls if c["within_5min"]),
               "order_steps": sum(1 for o in orders if o["on_time"] is not None),
               "order_steps_on_time": sum(1 for o in orders if o["on_time"]),
               "door_knocks": len(knocks), "door_knocks_done": sum(1 for k in knocks if k["done_at"]),
               "door_knocks_on_time": sum(1 for k in knocks if k["on_time"]),
               "steps": len(steps), "steps_on_time": sum(steps),
               "score": round(sum(steps) / len(steps), 4) if steps else None}
    d = r.drill
    drill = {"id": d["id"], "community": d["community"], "scenario": d["scenario"], "bureau": bool(d["bureau"]),
             "started_at": rfc3339(d["started_ns"]), "ended_at": rfc3339(d.get("ended_ns")),
             "score": figures["score"]}
    return {"drill": drill, "figures": figures, "alerts": alerts, "calls": calls, "orders": orders,
            "door_knocks": knocks, "late": late}


def _alerts(r: Records) -> list[dict[str, Any]]:
    """Each drill alert: when it fired, its first acknowledgement, and who gave it."""
    out = []
    for a in r.alerts:
        mine = [e for e in r.events if e[0] == a["id"]]
        fired = next((at for _id, at, ev, _who in mine if ev in ("fired", "level_raised")), None)
        ack = next(((at, who) for _id, at, ev, who in mine if ev == "acknowledged"), None)
        out.append({"id": a["id"], "rule": a["rule"], "level": a["level"], "summary": a["summary"],
                    "fired_at": rfc3339(fired), "first_ack_at": rfc3339(ack[0]) if ack else None,
                    "first_ack_by": ack[1] if ack else None,
                    "first_ack_name": r.names.get(ack[1] or "", ack[1]) if ack else None,
                    "time_to_first_ack_s": _s(ack[0] - fired) if ack and fired is not None else None})
    return out


# ---- as a page and as a workbook ------------------------------------------------------------------

def tables(report: dict[str, Any], lang: str) -> list[tuple[str, list[list[Any]]]]:
    """The report as titled tables (a header row, then rows), in words: the page's and the workbook's."""
    t = WORDS["en" if lang == "en" else "zh-CN"]

    def yn(v: bool | None) -> str:
        return "" if v is None else t["yes"] if v else t["no"]

    d, f = report["drill"], report["figures"]
    head = [[t["figure"], t["value"]], [t["community"], d["community"]], [t["scenario"], d["scenario"]],
            [t["started"], d["started_at"]], [t["ended"], d["ended_at"] or ""], [t["bureau"], yn(d["bureau"])],
            [t["score"], f["score"]]] + [[k, v] for k, v in f.items() if k != "score"]
    alerts = [[t["alert"], t["level"], t["fired"], t["first_ack"], t["by"], t["ack_s"]]] + [
        [a["summary"], a["level"], a["fired_at"], a["first_ack_at"] or "", a["first_ack_name"] or "",
         a["time_to_first_ack_s"]] for a in report["alerts"]]
    calls = [[t["person"], t["duty"], t["called"], t["due"], t["answered"], t["answer_s"], t["on_time"],
              t["within_5min"]]] + [
        [f"{c['name']} ({c['person']})", f"{c['duty']} {c['attempt']}", c["called_at"], c["due_at"],
         c["answered_at"] or "", c["answer_s"], yn(c["on_time"]), yn(c["within_5min"])] for c in report["calls"]]
    orders = [[t["department"], t["step"], t["due"], t["done_at"], t["on_time"], t["late_s"]]] + [
        [o["name"], t[o["step"]], o["due_at"], o["done_at"] or "", yn(o["on_time"]), o["late_s"]]
        for o in report["orders"]]
    knocks = [[t["resident"], t["status"], t["due"], t["done_at"], t["on_time"]]] + [
        [k["name"], k["status"], k["due_at"], k["done_at"] or "", yn(k["on_time"])] for k in report["door_knocks"]]
    what = {"call": t["call_what"], "sign": t["sign"], "arrive": t["arrive"], "knock": t["knock_what"]}
    late = [[t["who"], t["what"], t["late_s"]]] + [
        [f"{x['name']} ({x['who']})", f"{what[x['what']]}: {x['detail']}",
         t["never"] if x["late_s"] is None else x["late_s"]] for x in report["late"]]
    return [(t["figures"], head), (t["late"], late), (t["alerts"], alerts), (t["calls"], calls),
            (t["orders"], orders), (t["knocks"], knocks)]


def as_html(report: dict[str, Any], lang: str) -> str:
    """A page of the report, each table with its title; the late first, after the figures."""
    t = WORDS["en" if lang == "en" else "zh-CN"]
    parts = [f'<!doctype html><html lang="{"en" if lang == "en" else "zh-CN"}"><head><meta charset="utf-8">'
             f"<title>{t['title']} {html.escape(report['drill']['id'])}</title></head><body>",
             f"<h1>{t['title']}</h1>"]
    for title, rows in tables(report, lang):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if title == t["late"] and len(rows) == 1:
            parts.append(f'<p class="none-late">{t["none_late"]}</p>')
            continue
        parts.append("<table><thead><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in rows[0])
                     + "</tr></thead><tbody>")
        for row in rows[1:]:
            parts.append("<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row)
                         + "</tr>")
        parts.append("</tbody></table>")
    parts.append("</body></html>")
    return "".join(parts)


def as_xlsx(report: dict[str, Any], lang: str) -> bytes:
    """A workbook with one sheet per table."""
    from openpyxl import Workbook  # only the export needs it

    book = Workbook()
    first = True
    for title, rows in tables(report, lang):
        sheet = book.active if first else book.create_sheet()
        assert sheet is not None
        first = False
        sheet.title = title[:31]
        for row in rows:
            sheet.append(["" if v is None else v for v in row])
        sheet.freeze_panes = "A2"
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()
