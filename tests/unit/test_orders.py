"""The order book of 吹哨报到 on a manual clock: work orders, their steps, deadlines (督办), ratings."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson
import pytest

from kernel.errors import ConfigError, Reason, Refused
from kernel.orders import Grade, OrderEvent, OrderStatus, Step
from kernel.outgoing import Message
from kernel.settings import Department, StepTargets, parse_settings
from notify.notification import Notification
from notify.outbox import Outbox
from notify.store import SCHEMA as OUTBOX_SCHEMA
from orders.book import OrderBook
from orders.model import Whistle, WorkOrder
from orders.stats import order_stats
from orders.store import SCHEMA, SELECT_OPEN_ORDERS, SELECT_OPEN_WHISTLES

NS = 1_000_000_000
T0 = 1_700_000_000 * NS

FIRE = Department(id="fire", name="消防救援站", kind="fire", contacts=["fire-duty"],
                  targets={"urgent": StepTargets(sign_s=60, arrive_s=300, done_s=3600)})
PROPERTY = Department(id="property", name="物业", kind="property", contacts=["property-duty"])


def book() -> OrderBook:
    b = OrderBook([FIRE, PROPERTY], supervisors=["street-office"],
                  recipients=["fire-duty", "property-duty", "street-office", "worker-g1"])
    b.link_for = lambda order_id, r: (f"tok-{order_id}-{r}", f"http://x/wo/tok-{order_id}-{r}")
    b.whistle_link = lambda wid: f"http://x/whistle/{wid}"
    return b


def blow(b: OrderBook, now: int = T0, departments: list[str] | None = None) -> Any:
    return b.blow(grade=Grade.URGENT, what="1号楼501室厨房冒烟", place="临汾一村 › 1号楼", community="linfen-yicun",
                  grid="g1", alert_id="a1", blower="worker-g1", blower_name="张伟",
                  departments=departments or ["fire", "property"], now=now)


def told(messages: list[Message]) -> list[tuple[str, str]]:
    return [(n.recipient, n.event) for n in messages]


def payload(m: Message) -> bytes:
    """The bytes delivery puts in the outbox and sends for a message."""
    return Notification.from_message(m).payload


def test_a_whistle_opens_one_work_order_per_department_and_tells_each_contact_with_its_link() -> None:
    b = book()
    w, changes = blow(b)
    assert set(w.orders) == {"fire", "property"}
    assert told(changes.messages) == [("fire-duty", "order_opened"), ("property-duty", "order_opened")]
    body = orjson.loads(payload(changes.messages[0]))
    assert body["link"] == f"http://x/wo/tok-{w.id}.fire-fire-duty" and body["link_token"].startswith("tok-")
    wo = body["work_order"]
    assert wo["department_name"] == "消防救援站" and wo["status"] == "open" and wo["grade"] == "urgent"
    # The fire station's own targets; property management has the urgent defaults (sign 10 min, arrive 30 min).
    assert w.orders["fire"].due[Step.ARRIVE] == T0 + 300 * NS
    assert w.orders["property"].due[Step.SIGN] == T0 + 600 * NS
    assert w.orders["property"].due[Step.ARRIVE] == T0 + 1800 * NS
    assert b.next_deadline() == T0 + 60 * NS
    assert "吹哨报到（紧急）消防救援站" in wo["summary"]


@pytest.mark.parametrize(("change", "message"), [
    ({"departments": []}, "at least one department"),
    ({"departments": ["fire", "fire"]}, "twice"),
    ({"departments": ["navy"]}, "no department 'navy'"),
    ({"what": "  "}, "what the problem is"),
    ({"place": ""}, "where it is"),
    ({"what": "x" * 501}, "what the problem is"),
])
def test_bad_whistles_are_refused_with_a_reason(change: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"grade": Grade.URGENT, "what": "冒烟", "place": "1号楼", "community": "c", "grid": "g1",
                            "alert_id": None, "blower": "worker-g1", "blower_name": "张伟",
                            "departments": ["fire"], "now": T0} | change
    with pytest.raises(Refused) as exc:
        book().blow(**args)
    assert exc.value.reason is Reason.INVALID and message in str(exc.value)


def test_steps_go_in_order_each_tells_the_whistle_blower_and_wrong_steps_are_refused() -> None:
    b = book()
    w, _ = blow(b)
    fire = w.orders["fire"].id
    with pytest.raises(Refused) as exc:
        b.step(fire, Step.ARRIVE, "fire-duty", None, T0 + NS)
    assert exc.value.reason is Reason.CONFLICT and "sign first" in str(exc.value)
    _, o, ch = b.step(fire, Step.SIGN, "fire-duty", "出警", T0 + 30 * NS)
    assert o.status is OrderStatus.SIGNED and o.signed_ns == T0 + 30 * NS
    assert told(ch.messages) == [("worker-g1", "order_signed")]
    body = orjson.loads(payload(ch.messages[0]))
    assert body["note"] == "出警" and body["link"] == f"http://x/whistle/{w.id}" and "link_token" not in body
    with pytest.raises(Refused) as again:
        b.step(fire, Step.SIGN, "fire-duty", None, T0 + 31 * NS)
    assert again.value.reason is Reason.CONFLICT and "already signed" in str(again.value)
    b.step(fire, Step.ARRIVE, "fire-duty", "到场", T0 + 200 * NS)
    _, o, _ = b.step(fire, Step.DONE, "fire-duty", "明火扑灭", T0 + 900 * NS)
    assert o.status is OrderStatus.DONE
    with pytest.raises(Refused) as unknown:
        b.step("w-nothing.fire", Step.SIGN, "x", None, T0)
    assert unknown.value.reason is Reason.NOT_FOUND


def test_each_overdue_step_tells_the_street_office_once_and_the_department_is_reminded() -> None:
    b = book()
    w, _ = blow(b)
    assert b.on_tick(T0 + 59 * NS).messages == []
    ch = b.on_tick(T0 + 60 * NS)
    assert told(ch.messages) == [("street-office", "order_overdue"), ("fire-duty", "order_overdue")]
    body = orjson.loads(payload(ch.messages[0]))
    assert body["step"] == "sign" and body["work_order"]["overdue"] == ["sign"]
    assert "督办：消防救援站 未按时签收" in body["work_order"]["summary"]
    # The street office is given the whistle's page, not the department's own link.
    assert body["link"] == f"http://x/whistle/{w.id}" and "link_token" not in body
    assert orjson.loads(payload(ch.messages[1]))["link_token"]
    assert b.on_tick(T0 + 61 * NS).messages == []  # once per step
    b.step(w.orders["fire"].id, Step.SIGN, "fire-duty", None, T0 + 100 * NS)
    b.step(w.orders["fire"].id, Step.ARRIVE, "fire-duty", None, T0 + 200 * NS)  # on time for arrival
    assert b.next_deadline() == T0 + 600 * NS  # property management's sign deadline
    late = b.on_tick(T0 + 1800 * NS)  # property: sign and arrive both overdue by now
    steps = [orjson.loads(payload(n))["step"] for n in late.messages if n.recipient == "street-office"]
    assert steps == ["sign", "arrive"]
    assert b.next_deadline() == T0 + 3600 * NS  # the fire station's done deadline


def test_confirm_and_rate_only_by_the_whistle_blower_once_done_then_the_whistle_closes() -> None:
    b = book()
    w, _ = blow(b, departments=["fire"])
    fire = w.orders["fire"].id
    with pytest.raises(Refused) as early:
        b.confirm(fire, "worker-g1", 5, None, T0 + NS)
    assert early.value.reason is Reason.CONFLICT
    for i, s in enumerate((Step.SIGN, Step.ARRIVE, Step.DONE)):
        b.step(fire, s, "fire-duty", None, T0 + (10 + i) * NS)
    with pytest.raises(Refused) as other:
        b.confirm(fire, "worker-g2", 5, None, T0 + 20 * NS)
    assert other.value.reason is Reason.FORBIDDEN
    for bad in (0, 6, True):
        with pytest.raises(Refused) as exc:
            b.confirm(fire, "worker-g1", bad, None, T0 + 20 * NS)
        assert exc.value.reason is Reason.INVALID
    w2, o, ch = b.confirm(fire, "worker-g1", 4, "处置及时", T0 + 30 * NS)
    assert o.rating == 4 and o.status is OrderStatus.CONFIRMED and w2.status == "closed"
    assert told(ch.messages) == [("fire-duty", "order_confirmed")]
    assert "评分 4/5" in orjson.loads(payload(ch.messages[0]))["work_order"]["summary"]
    assert b.order(fire) is None and b.next_deadline() is None  # closed: out of memory, no timers


def test_the_writes_restore_every_order_and_timer_after_a_restart() -> None:
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA + OUTBOX_SCHEMA)
    b = book()
    outbox = Outbox(None, None)  # type: ignore[arg-type]  # only its rows: nothing is delivered here

    def commit(changes: Any) -> None:
        for statement, rows in changes.writes + outbox.post(changes.messages).writes:
            db.executemany(statement, rows)

    w, ch = blow(b)
    commit(ch)
    commit(b.step(w.orders["fire"].id, Step.SIGN, "fire-duty", None, T0 + 10 * NS)[2])
    commit(b.on_tick(T0 + 600 * NS))  # the fire station's arrival and property's signing are overdue
    assert db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 7
    again = book()
    again.restore([Whistle.from_row(r) for r in db.execute(SELECT_OPEN_WHISTLES)],
                  [WorkOrder.from_row(r) for r in db.execute(SELECT_OPEN_ORDERS)])
    restored = again.whistles[w.id]
    assert restored.orders["fire"].status is OrderStatus.SIGNED and restored.orders["fire"].overdue == {Step.ARRIVE}
    assert restored.orders["property"].overdue == {Step.SIGN}
    assert again.on_tick(T0 + 601 * NS).messages == []  # told before the restart: not told again
    assert again.next_deadline() == T0 + 1800 * NS  # property's arrival
    late = again.on_tick(T0 + 1800 * NS)
    assert told(late.messages) == [("street-office", "order_overdue"), ("property-duty", "order_overdue")]
    assert {orjson.loads(payload(n))["step"] for n in late.messages} == {"arrive"}
    assert again.next_deadline() == T0 + 3600 * NS  # the fire station's done


def test_stats_per_department_and_community() -> None:
    b = book()
    w, _ = blow(b)
    fire = w.orders["fire"].id
    b.step(fire, Step.SIGN, "fire-duty", None, T0 + 30 * NS)
    b.step(fire, Step.ARRIVE, "fire-duty", None, T0 + 240 * NS)
    b.step(fire, Step.DONE, "fire-duty", None, T0 + 1200 * NS)
    b.confirm(fire, "worker-g1", 5, None, T0 + 1300 * NS)
    b.on_tick(T0 + 700 * NS)
    s = order_stats([w], T0 + 700 * NS, {"fire": "消防救援站", "property": "物业", "gas": "燃气"},
                    {"linfen-yicun": "临汾一村"})
    by = {d["id"]: d for d in s["departments"]}
    assert by["fire"]["closed"] == 1 and by["fire"]["sign_s_avg"] == 30.0 and by["fire"]["arrive_s_avg"] == 240.0
    assert by["fire"]["rating_avg"] == 5.0 and by["fire"]["ratings"] == 1
    assert by["property"]["open"] == 1 and by["property"]["overdue"] == 1 and by["property"]["late"] == 1
    assert by["gas"]["orders"] == 0 and by["gas"]["rating_avg"] is None
    assert s["communities"][0]["name"] == "临汾一村" and s["communities"][0]["orders"] == 2
    assert s["total"]["overdue"] == 1 and s["whistles"] == 1


def test_departments_in_the_site_file_are_checked() -> None:
    base = """
recipients:
  - {id: fire-duty, name: 值班, role: department}
  - {id: street-office, name: 街道, role: street_office}
departments:
  - id: fire
    name: 消防救援站
    contacts: [fire-duty]
    targets: {urgent: {sign_s: 60, arrive_s: 120, done_s: 600}}
"""
    s = parse_settings(base, env={})
    assert s.departments[0].targets_for("urgent").arrive_s == 120
    assert s.departments[0].targets_for("general").sign_s == 3600  # the default
    with pytest.raises(ConfigError, match="contact 'nobody'"):
        parse_settings(base.replace("contacts: [fire-duty]", "contacts: [nobody]"), env={})
    with pytest.raises(ConfigError, match="sign_s <= arrive_s"):
        parse_settings(base.replace("arrive_s: 120", "arrive_s: 30"), env={})
    with pytest.raises(ConfigError, match="supervisor 'x'"):
        parse_settings(base + "whistles: {supervisors: [x]}\n", env={})
    assert OrderEvent.OVERDUE.value == "order_overdue"


def test_a_work_order_notification_reads_well_in_a_chat_robot_and_becomes_dashboard_points() -> None:
    from app.order_points import order_points
    from notify.channels.robot import digest_of, text_of
    from notify.notification import Notification

    b = book()
    _w, changes = blow(b)
    typed = [Notification.from_outbox(n.event_id, n.subject_id, n.recipient, n.event.value, payload(n), n.created_ns)
             for n in changes.messages]
    assert typed[0].wire() == orjson.loads(payload(changes.messages[0]))  # the typed object says it all
    title, body = text_of(typed[0])
    assert title.startswith("吹哨报到：吹哨报到（紧急）消防救援站")
    assert "工单编号" in body and "[打开](http://x/wo/" in body
    digest_title, digest = digest_of(typed)
    assert "2 条" in digest_title and "临汾一村 › 1号楼" in digest
    s = order_stats([_w], T0, {"fire": "消防救援站", "property": "物业"}, {"linfen-yicun": "临汾一村"})
    points = order_points(s, T0)
    tags = {(p.tags["community"], p.tags["department"]) for p in points}
    assert tags == {("all", "fire"), ("all", "property"), ("linfen-yicun", "all"), ("all", "all")}
    total = next(p for p in points if p.tags == {"community": "all", "department": "all"})
    assert total.fields["open"] == 2.0 and "rating_avg" not in total.fields  # nothing rated: no field
