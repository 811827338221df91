"""The pages of a cluster (CONTRACT §8, §12) in real headless Chromium: a 3-node NATS cluster on loopback,
InfluxDB, a webhook receiver and two instances (`cbrain run` with `cluster:`), A and B.

A person acknowledges, on A's pages, an alert of a community B holds: B's wall, open in another browser,
shows it acknowledged within 2 s. Each wall shows the cluster strip (the instance serving it, both live
instances, the last handover); after kill -9 of B, A's strip shows B gone and A taking B's partitions over.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from device_sim.receiver import Receiver
from kernel.cluster import partition_of
from tests.browser import SHOTS, chromium
from tests.cluster_kit import Devices, Instance, cluster_site, spread, wait_balanced
from tests.nats_cluster import NATS_SERVER_BIN, NatsCluster
from tests.servers import InfluxD

pytestmark = pytest.mark.integration
pytest.importorskip("playwright.sync_api")
WALL, PHONE = {"width": 1920, "height": 1080}, {"width": 390, "height": 844}
STREET = "example-token-street"  # the street office: every community, the wall as its home page

PARTITIONS = 8
TIMINGS = {"failover_s": 5.0, "ack_wait_s": 2.5, "checkpoint_s": 0.5}
A, B = "cb-a", "cb-b"  # (rendezvous puts 3 partitions on cb-a, 5 on cb-b)
DETECTOR = "sd-b01-0501"  # a smoke detector of building b01 in every community of the site


@dataclass
class World:
    """The cluster, its two instances, the devices, and a browser."""

    cluster: NatsCluster
    instances: dict[str, Instance]
    devices: Devices
    browser: Any
    communities: list[str]
    held: dict[str, set[int]] = field(default_factory=dict)

    def community_of(self, name: str) -> str:
        """A community of the site whose partition the instance holds."""
        found = [c for c in self.communities if partition_of(c, PARTITIONS) in self.held[name]]
        assert found, f"{name} holds none of the site's communities: {self.held}"
        return found[0]


@pytest.fixture
def world(tmp_path: Path, influxdb: InfluxD, influx_db: str, receiver: Receiver) -> Iterator[World]:
    if not Path(NATS_SERVER_BIN).exists():
        pytest.skip(f"no nats-server at {NATS_SERVER_BIN} (make install)")
    cluster = NatsCluster(tmp_path / "nats", nodes=3, partitions=PARTITIONS)
    instances: dict[str, Instance] = {}
    devices: Devices | None = None
    communities = ["linfen-yicun", "linfen-ercun", *spread(PARTITIONS, 4)]
    try:
        cluster.start()
        for name in (A, B):
            (tmp_path / name).mkdir()
            config = cluster_site(tmp_path / name, name=name, nats=cluster.urls, mqtt_port=cluster.mqtt_ports[0],
                                  influx_url=influxdb.url, database=influx_db, receiver_base=receiver.base,
                                  communities=communities[2:], partitions=PARTITIONS, timings=TIMINGS)
            instances[name] = Instance(config)
        # One after the other, as a site scales out: A sets the cluster's streams and buckets up and holds
        # every partition; B joins and takes those the two want it to hold from A.
        instances[A].start()
        wait_balanced({A: instances[A]}, PARTITIONS, spread=True)
        instances[B].start()
        held = wait_balanced(instances, PARTITIONS, spread=True)
        for inst in instances.values():  # 200: the lease held, every partition served and ok
            inst.wait_healthy(60)
        devices = Devices(cluster.mqtt_ports, "pages-devices")
        with chromium() as browser:
            yield World(cluster, instances, devices, browser, communities, held)
    finally:
        if devices is not None:
            devices.close()
        for inst in instances.values():
            inst.close()
        cluster.stop()


def wall_of(world: World, name: str, viewport: dict[str, int], lang: str | None = None) -> Any:
    """A browser's page logged in to an instance as the street office, on its wall, its stream open."""
    context = world.browser.new_context(viewport=viewport, base_url=world.instances[name].base,
                                        timezone_id="Asia/Shanghai")  # (the site's)
    page = context.new_page()
    page.on("pageerror", lambda e: print(f"{name} page error:", e))
    page.goto("/login" + (f"?lang={lang}" if lang else ""))
    page.fill("#token", STREET)
    page.click("button[type=submit]")
    page.wait_for_url("**/wall")
    page.wait_for_function("document.querySelector('#updated').getAttribute('datetime')")
    return page


def strip_shows(page: Any, here: str, live: list[str], timeout_s: float = 15) -> None:
    """Wait (bounded; the strip is rendered again with each heartbeat, every 5 s) until the wall's cluster
    strip says it is served by `here`, in the ok state, with exactly the `live` instances."""
    page.wait_for_function("""([here, live]) => {
        const s = document.getElementById('cluster-strip');
        if (!s || s.dataset.state !== 'ok' || s.dataset.instance !== here) return false;
        const names = [...s.querySelectorAll('.cl-inst')].map(i => i.dataset.instance);
        const mine = [...s.querySelectorAll('.cl-inst.here')].map(i => i.dataset.instance);
        return JSON.stringify(names) === JSON.stringify(live) && JSON.stringify(mine) === JSON.stringify([here]);
    }""", arg=[here, live], timeout=timeout_s * 1000)


def shot(page: Any, name: str, **kw: Any) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), **kw)
    return path


def raise_smoke(world: World, community: str, seq: int = 1) -> None:
    """The detector alarms: smoke.alarm, orange."""
    world.devices.reading(community, "smoke_detector", DETECTOR, seq, alarm=True, obscuration_pct_m=14.0)
    world.devices.wait_acked(30)


def test_an_acknowledgement_on_one_instance_shows_on_the_others_wall(world: World) -> None:
    community = world.community_of(B)
    wall_a, wall_b = wall_of(world, A, WALL), wall_of(world, B, WALL)
    for page, name in ((wall_a, A), (wall_b, B)):
        strip_shows(page, name, [A, B])
        text = page.locator("#cluster-strip").inner_text()
        assert "集群正常" in text and f"本页来自 {name}" in text, text
        assert "最近交接" in text, text

    raise_smoke(world, community)
    found = world.instances[A].wait_for(lambda: [a for a in world.instances[A].api("/alerts", community=community)
                                                 .json() if a["rule"] == "smoke.alarm"], 20, "the smoke alarm")
    alert_id = found[0]["id"]
    firing = f'li.alert[data-alert-id="{alert_id}"][data-level=orange][data-status=firing]'
    wall_b.locator(firing).wait_for(timeout=10_000)
    item = wall_a.locator(firing)
    item.wait_for(timeout=10_000)

    # On A's wall a person opens the alert (in a new tab, the wall stays), writes a note and acknowledges.
    with wall_a.context.expect_page() as opened:
        item.locator("a.what").click(modifiers=["Control"])
    alert_page = opened.value
    alert_page.bring_to_front()  # (the person turns to the tab: a tab in the background is throttled)
    alert_page.wait_for_url(f"**/alert/{alert_id}")
    alert_page.locator("form[action$='/ack'] input[name=note]").fill("我到现场了")
    acknowledged = f'li.alert[data-alert-id="{alert_id}"][data-status=acknowledged]'
    t0 = time.monotonic()
    alert_page.locator(f'[data-action=ack][data-alert-id="{alert_id}"]').click()
    wall_b.locator(acknowledged).wait_for(timeout=10_000)
    on_b_s = time.monotonic() - t0
    wall_a.locator(acknowledged).wait_for(timeout=10_000)
    on_a_s = time.monotonic() - t0
    print(f"acknowledged on {A}'s alert page, partition {partition_of(community, PARTITIONS)} held by {B}: "
          f"{B}'s wall showed it after {on_b_s:.3f} s, {A}'s wall after {on_a_s:.3f} s")
    assert on_b_s < 2.0, on_b_s
    alert_page.locator('.timeline:has-text("我到现场了")').wait_for(timeout=10_000)  # (the page loads afresh)

    shot(wall_a, "cluster-wall-1920x1080")
    shot(wall_b, "cluster-wall-b-1920x1080")
    english = wall_of(world, A, WALL, lang="en")
    strip_shows(english, A, [A, B])
    text = english.locator("#cluster-strip").inner_text()
    assert "Cluster OK" in text and f"Served by {A}" in text and "Last handover" in text, text
    shot(english, "cluster-wall-en-1920x1080")

    # On a phone the strip keeps to two short lines above the counts; the inbox shows none.
    phone = wall_of(world, A, PHONE)
    strip_shows(phone, A, [A, B])
    box = phone.locator("#cluster-strip").bounding_box()
    assert box is not None and box["height"] < 100 and box["width"] <= PHONE["width"], box
    assert phone.locator("#cluster-strip .cl-hand").is_hidden()
    print(f"the strip on a {PHONE['width']}×{PHONE['height']} phone: {box['height']:.0f} px high")
    shot(phone, "cluster-wall-390x844")
    phone.goto("/inbox")
    phone.locator(f'li.alert[data-alert-id="{alert_id}"]').wait_for(timeout=10_000)
    assert phone.locator("#cluster-strip").count() == 0
    shot(phone, "cluster-inbox-390x844")


def test_the_strip_warns_then_shows_the_takeover_after_kill_9(world: World) -> None:
    """kill -9 of B: A's wall warns while B's partitions are served by nobody (seen on a page loaded
    afresh twice a second: the warning lasts a few seconds), then, live, shows B gone and A holding all."""
    wall, probe = wall_of(world, A, WALL), wall_of(world, A, WALL)
    strip_shows(wall, A, [A, B])
    moved = sorted(world.held[B])
    world.instances[B].kill()
    killed = time.monotonic()
    warned: str | None = None
    taken = f'#cluster-strip[data-state=ok] .cl-hand[data-from="{B}"][data-to="{A}"]'
    everything = f'#cluster-strip .cl-inst[data-instance="{A}"][data-partitions="{PARTITIONS}"]'
    deadline = killed + 60
    while time.monotonic() < deadline:
        if warned is None:
            probe.reload()
            if probe.locator("#cluster-strip[data-state=warning]").count():
                warned = probe.locator("#cluster-strip").inner_text()
                shot(probe, "cluster-wall-warning-1920x1080")
        if wall.locator(taken).count() and wall.locator(everything).count() \
                and wall.locator("#cluster-strip .cl-inst").count() == 1:
            break
        time.sleep(0.3 if warned is None else 0.5)
    else:
        raise AssertionError(f"{A}'s strip does not show the takeover from {B}: "
                             f"{wall.locator('#cluster-strip').inner_text()}\n{world.instances[A].log_tail()}")
    took_s = time.monotonic() - killed
    assert warned is not None, "the strip never warned while B's partitions were served by nobody"
    assert "⚠ 集群异常" in warned and "无人服务" in warned, warned
    assert any(f"分区 {p}" in warned or f"、{p}" in warned for p in moved), warned
    strip_shows(wall, A, [A])
    hand = wall.locator("#cluster-strip .cl-hand")
    assert int(hand.get_attribute("data-partition")) in moved
    text = hand.inner_text()
    assert f"{B} → {A}（故障接管）" in text and "用时" in text, text
    assert f"{PARTITIONS} 个分区" in wall.locator(f'#cluster-strip .cl-inst[data-instance="{A}"]').inner_text()
    print(f"{A}'s strip warned {warned!r}, then showed the takeover of {B}'s partitions {moved} {took_s:.1f} s "
          f"after kill -9: {wall.locator('#cluster-strip').inner_text()!r}")
    shot(wall, "cluster-wall-takeover-1920x1080")
