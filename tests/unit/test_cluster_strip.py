"""The wall's cluster strip (app/web/cluster_strip.py, templates/cluster_strip.html): nothing in one process;
in a cluster the instance serving the page, the live instances, the newest handover any of them reports,
and a warning in words while this instance's lease is lost or a partition is served by nobody."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from app.web.cluster_strip import cluster_strip
from app.web.kit import HERE
from app.words import words

NOW_NS = 1_796_000_000 * 1_000_000_000  # 2026-11-30T01:33:20Z, 09:33:20 in Shanghai


class View:
    """What the strip reads of a ServiceView."""

    def __init__(self, health: dict[str, Any]) -> None:
        self.body = health
        self.settings = SimpleNamespace(timezone="Asia/Shanghai")

    def health(self) -> tuple[bool, dict[str, Any]]:
        return True, self.body

    def now_ns(self) -> int:
        return NOW_NS


def handover(p: int, frm: str | None, to: str, at: str, *, released: bool = False) -> dict[str, Any]:
    return {"partition": p, "from": frm, "to": to, "released": released, "at": at, "took_s": 0.437,
            "outstanding": 0, "epoch": 2}


def cluster(*, lease: str = "held", errors: tuple[int, ...] = ()) -> dict[str, Any]:
    return {
        "status": "ok",
        "cluster": {
            "instance": "cb-a", "lease": lease, "partitions": 4,
            "instances": [
                {"name": "cb-a", "partitions": [0, 3], "communities": ["linfen-yicun", "k1", "k2"],
                 "last_handover": handover(3, None, "cb-a", "2026-11-30T01:20:00.000Z")},
                {"name": "cb-b", "partitions": [1, 2], "communities": ["linfen-ercun"],
                 "last_handover": handover(2, "cb-a", "cb-b", "2026-11-30T01:30:05.250Z", released=True)}],
            "handovers": [handover(3, None, "cb-a", "2026-11-30T01:20:00.000Z")]},
        "partitions": [{"partition": p, "ok": p not in errors}
                       | ({"error": "its holder stopped serving it"} if p in errors else {}) for p in range(4)],
    }


def render(strip: dict[str, Any] | None, lang: str) -> str:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    return env.get_template("cluster_strip.html").render(t=words(lang), lang=lang, strip=strip)


def test_one_process_has_no_strip() -> None:
    view = View({"status": "ok", "broker": {"ok": True}})
    assert cluster_strip(view, "zh-CN") is None  # type: ignore[arg-type]
    assert render(None, "zh-CN").strip() == ""


def test_the_strip_of_a_cluster_in_good_order() -> None:
    strip = cluster_strip(View(cluster()), "zh-CN")  # type: ignore[arg-type]
    assert strip is not None and strip["ok"] and strip["me"] == "cb-a" and not strip["problems"]
    assert [(i["name"], i["here"], i["partitions"], i["communities"]) for i in strip["instances"]] == [
        ("cb-a", True, 2, 3), ("cb-b", False, 2, 1)]
    # The newest handover of any live instance, in the site's time (today: the time of day alone).
    assert strip["handover"] | {"at": None} == {"partition": 2, "from": "cb-a", "to": "cb-b", "at": None,
                                                "when": "09:30:05", "how": "主动交出", "took": "0.4秒"}
    html = render(strip, "zh-CN")
    assert 'data-state="ok"' in html and "✓" in html and "集群正常" in html and "本页来自 <b>cb-a</b>" in html
    assert 'data-instance="cb-b" data-partitions="2"' in html and "2 个分区" in html and "1 个社区" in html
    assert "<b>cb-a → cb-b</b>（主动交出）" in html and "用时 0.4秒" in html
    english = render(cluster_strip(View(cluster()), "en"), "en")  # type: ignore[arg-type]
    assert "Cluster OK" in english and "Served by <b>cb-a</b>" in english and "(given up)" in english
    assert "Last handover" in english and "took 0.4s" in english


def test_a_first_claim_comes_from_nobody_and_an_old_one_shows_its_date() -> None:
    body = cluster()
    body["cluster"]["instances"][1]["last_handover"] = None
    strip = cluster_strip(View(body), "zh-CN")  # type: ignore[arg-type]
    assert strip is not None
    assert (strip["handover"]["from"], strip["handover"]["how"], strip["handover"]["when"]) == ("无人", "", "09:20:00")
    body["cluster"]["handovers"] = [handover(0, "cb-b", "cb-a", "2026-11-28T15:59:59.000Z")]
    body["cluster"]["instances"][0]["last_handover"] = None
    strip = cluster_strip(View(body), "en")  # type: ignore[arg-type]
    assert strip is not None
    assert (strip["handover"]["when"], strip["handover"]["how"]) == ("11-28 23:59:59", "taken over")


def test_a_lost_lease_or_a_partition_served_by_nobody_is_a_warning_in_words() -> None:
    strip = cluster_strip(View(cluster(lease="lost")), "zh-CN")  # type: ignore[arg-type]
    assert strip is not None and not strip["ok"] and strip["problems"] == ["本实例租约已失效，暂停处理"]
    html = render(strip, "zh-CN")
    assert 'data-state="warning"' in html and "⚠" in html and "集群异常" in html and "租约已失效" in html
    strip = cluster_strip(View(cluster(errors=(1, 3))), "zh-CN")  # type: ignore[arg-type]
    assert strip is not None and strip["problems"] == ["分区 1、3 无人服务"]
    strip = cluster_strip(View(cluster(lease="lost", errors=(2,))), "en")  # type: ignore[arg-type]
    assert strip is not None and strip["problems"] == ["this instance lost its lease: processing paused",
                                                       "partition 2 not served"]
    assert "Cluster warning" in render(strip, "en")
    strip = cluster_strip(View(cluster(errors=(0, 2))), "en")  # type: ignore[arg-type]
    assert strip is not None and strip["problems"] == ["partitions 0, 2 not served"]


def test_names_are_escaped() -> None:
    body = cluster()
    body["cluster"]["instance"] = "<script>x</script>"
    html = render(cluster_strip(View(body), "zh-CN"), "zh-CN")  # type: ignore[arg-type]
    assert "<script>" not in html and "&lt;script&gt;" in html
