"""What the chat robots and SMS say: the summary, and for the people on site of an orange or red building
alert what is on hand (`on_hand`, CONTRACT §13), as a line of the robots' message and, briefly, in the
SMS's ${summary}; the object on the wire keeps `on_hand` as a key of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from app.config import settings_from_text
from app.resource_view import ResourceView
from kernel.alerting import Event
from kernel.clock import ManualClock
from kernel.settings import Settings
from kernel.site import Site
from notify.channels.robot import ON_HAND_WORDS, digest_of, text_of
from notify.channels.sms import VARIABLE_MAX, cut, on_hand_brief, summary_param, template_param
from notify.notification import Notification
from resources.book import ResourceBook
from resources.catalog import Catalog

SETTINGS = settings_from_text((Path(__file__).resolve().parents[2] / "examples" / "site.yaml").read_text(
    encoding="utf-8"), env={}, source="site.yaml")
SUMMARY = "【橙色预警（II级）】临汾一村 1号楼 （第一网格） 烟感 sd-b01-0501：烟感报警"
ALERT: dict[str, Any] = {"id": "a1", "rule": "smoke.alarm", "level": "orange", "status": "firing",
                         "community": "linfen-yicun", "building": "b01", "grid": "g1", "device_id": "sd-b01-0501",
                         "device_type": "smoke_detector", "value": 1.0, "started_at": "2026-11-21T03:00:00.000Z",
                         "updated_at": "2026-11-21T03:00:00.000Z", "summary": SUMMARY}


def no_select(*_args: Any) -> Any:
    raise AssertionError("the words need no database")


def view(settings: Settings = SETTINGS) -> ResourceView:
    return ResourceView(settings, Site(settings), ManualClock(0), ResourceBook(Catalog(settings)), None, no_select)


def told(recipient: str, alert: dict[str, Any] | None = None, event_id: str = "e1") -> Notification:
    """The notification the outbox keeps for a recipient, with what the resources add (alerts/stages.py)."""
    body = alert or ALERT
    wire = {"event_id": event_id, "event": "fired", "alert": body, "recipient": recipient,
            **view().extra_for(body, recipient)}
    return Notification.from_outbox(event_id, body["id"], recipient, "fired", orjson.dumps(wire), 0)


def test_the_people_on_site_are_told_what_is_on_hand_and_the_object_keeps_it_as_a_key() -> None:
    worker, street = told("worker-g1"), told("street-office")
    on_hand = worker.extra["on_hand"]
    assert on_hand.startswith("避难场所 临汾路小学操场 291 m（容量 600，已有 0）；灭火器 24具（1号楼一层楼梯口）")
    assert orjson.loads(worker.payload)["on_hand"] == on_hand and worker.wire()["on_hand"] == on_hand
    assert "on_hand" not in street.extra and "on_hand" not in orjson.loads(street.payload)
    assert told("committee-yicun").extra["on_hand"] == on_hand
    # Not for a yellow alert, nor for an alert whose incident no supply fits.
    assert "on_hand" not in told("worker-g1", ALERT | {"level": "yellow"}).extra
    assert "on_hand" not in told("worker-g1", ALERT | {"rule": "device.offline"}).extra


def test_a_robot_says_what_is_on_hand_in_a_line_after_the_summary() -> None:
    title, body = text_of(told("worker-g1"))
    assert title == f"新告警：{SUMMARY}"
    assert f"{SUMMARY}\n\n{ON_HAND_WORDS}避难场所 临汾路小学操场 291 m（容量 600，已有 0）；灭火器" in body
    assert body.index(ON_HAND_WORDS) < body.index("> 告警编号 a1")
    # Without `on_hand` the message is what it was: the summary, then the alert's number.
    _title, plain = text_of(told("street-office"))
    assert ON_HAND_WORDS not in plain and f"{SUMMARY}\n\n> 告警编号 a1" in plain


def test_a_robots_digest_puts_the_on_hand_line_under_its_notification() -> None:
    flood = ALERT | {"id": "a2", "rule": "water.level", "building": "b03", "grid": "g2",
                     "summary": "【橙色预警（II级）】临汾一村 3号楼 （第二网格） 水位计 wl-gate-east：积水"}
    notes = [told("worker-g1"), told("worker-g1", ALERT | {"level": "yellow", "id": "a3"}, "e3"),
             told("worker-g1", flood, "e2")]
    _title, body = digest_of(notes)
    lines = body.split("\n")
    first = lines.index(f"- **新告警**：{SUMMARY}")
    assert lines[first + 1].startswith(f"  {ON_HAND_WORDS}避难场所 临汾路小学操场 291 m")
    assert lines[first + 2].startswith("- **新告警**：【橙色预警") and lines[first + 3].startswith("- **新告警**")
    assert lines[first + 4] == (f"  {ON_HAND_WORDS}避难场所 临汾路小学操场 255 m（容量 600，已有 0）；"
                                "防汛沙袋 300袋（小区东门防汛仓库）；移动排水泵 2台（小区东门防汛仓库）")


def test_an_sms_appends_the_first_thing_on_hand_briefly_within_one_variable() -> None:
    param = orjson.loads(template_param(told("worker-g1")))
    assert param["level"] == "橙色" and len(param["summary"]) <= VARIABLE_MAX
    # The level mark goes (${level} says it), the summary is cut, then the nearest shelter without its figures.
    assert param["summary"] == "临汾一村 1号楼 （第一网格） 烟感…｜避难场所 临汾路小学操场…"
    # A short summary leaves the shelter whole.
    short = told("worker-g1", ALERT | {"summary": "【橙色预警（II级）】1号楼烟感报警"})
    assert summary_param(short) == "1号楼烟感报警｜避难场所 临汾路小学操场 291 m"
    # Without `on_hand`: the summary alone, level mark and all, cut as before.
    plain = summary_param(told("street-office"))
    assert plain == "【橙色预警（II级）】临汾一村 1号楼 （第一网格） 烟感…" and len(plain) <= VARIABLE_MAX
    assert summary_param(told("street-office", ALERT | {"summary": "短"})) == "短"


@pytest.mark.parametrize(("on_hand", "brief"), [
    ("避难场所 临汾路小学操场 291 m（容量 600，已有 0）；灭火器 24具（1号楼一层楼梯口）",
     "避难场所 临汾路小学操场 291 m"),
    ("灭火器 24具（1号楼一层楼梯口）；消防过滤式自救呼吸器 40个（1号楼一层物业间）", "灭火器 24具"),
    ("shelter 临汾路小学操场 291 m (capacity 600, 0 there); 灭火器 ×24 (1号楼一层楼梯口)",
     "shelter 临汾路小学操场 291 m"),
    ("", ""),
])
def test_the_brief_is_the_first_thing_without_its_figures(on_hand: str, brief: str) -> None:
    assert on_hand_brief(on_hand) == brief


def test_an_english_site_says_it_in_english_and_the_sms_stays_within_the_variable() -> None:
    en = SETTINGS.model_copy(update={"locale": "en"})
    extra = view(en).extra_for(ALERT, "worker-g1")
    assert extra["on_hand"].startswith("shelter 临汾路小学操场 291 m (capacity 600, 0 there); 灭火器 ×24")
    summary = "[orange (II)] 临汾一村 1号楼 (第一网格) smoke detector sd-b01-0501: smoke alarm"
    n = Notification("e1", "a1", "worker-g1", Event.FIRED, ALERT | {"summary": summary}, 0, extra=extra)
    got = summary_param(n)
    assert len(got) <= VARIABLE_MAX and got.startswith("临汾一村 1号楼 (第一网格)…｜shelter") and "｜shelter" in got


@pytest.mark.parametrize(("text", "most", "got"), [
    ("很长" * 40, 35, ("很长" * 40)[:34] + "…"),  # no space: cut at the limit
    ("避难场所 临汾路小学操场 291 m", 15, "避难场所 临汾路小学操场…"),  # not "… 2…"
    ("a" * 30 + " bbbbbbbbbbbb", 35, "a" * 30 + "…"),  # cut at the space close before
    ("a" * 20 + " " + "b" * 20, 35, "a" * 20 + " " + "b" * 13 + "…"),  # the space is too far back
    ("短", 35, "短"),
])
def test_a_cut_ends_in_an_ellipsis_within_the_limit(text: str, most: int, got: str) -> None:
    assert cut(text, most) == got and len(got) <= most
