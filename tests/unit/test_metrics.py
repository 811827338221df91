"""The Prometheus text rendering of counters, gauges and histograms."""

from __future__ import annotations

import pytest

from kernel.metrics import Registry


def test_counter_with_labels_renders_sorted_series() -> None:
    reg = Registry()
    rejected = reg.counter("cb_rejected_total", "Messages rejected, by reason", ["reason"])
    rejected.inc(1, "not_json")
    rejected.inc(2, "bad_topic")
    rejected.inc(1, "not_json")
    assert reg.render() == (
        "# HELP cb_rejected_total Messages rejected, by reason\n"
        "# TYPE cb_rejected_total counter\n"
        'cb_rejected_total{reason="bad_topic"} 2\n'
        'cb_rejected_total{reason="not_json"} 2\n'
    )
    assert (rejected.get("not_json"), rejected.get("too_old"), rejected.total()) == (2, 0, 4)


def test_counter_without_labels_starts_at_zero() -> None:
    reg = Registry()
    received = reg.counter("cb_received_total", "Messages received")
    assert reg.render().splitlines()[-1] == "cb_received_total 0"
    received.inc()
    received.inc(2.5)
    assert reg.render().splitlines()[-1] == "cb_received_total 3.5"


def test_counter_with_several_labels() -> None:
    reg = Registry()
    alerts = reg.counter("cb_alerts_total", "Alert events", ["level", "event"])
    alerts.inc(1, "red", "fired")
    assert reg.render().splitlines()[-1] == 'cb_alerts_total{level="red",event="fired"} 1'


def test_label_values_are_escaped() -> None:
    reg = Registry()
    c = reg.counter("c", "h", ["topic"])
    c.inc(1, 'a\\b"c\nd')
    assert reg.render().splitlines()[-1] == r'c{topic="a\\b\"c\nd"} 1'


def test_gauge_reads_its_callback_at_render_time() -> None:
    depth = [3]
    reg = Registry()
    reg.gauge("cb_queue_depth", "Messages waiting", source=lambda: depth[0])
    assert reg.render().splitlines()[-1] == "cb_queue_depth 3"
    depth[0] = 7
    assert reg.render().splitlines()[-1] == "cb_queue_depth 7"


def test_gauge_callback_with_labels() -> None:
    reg = Registry()
    g = reg.gauge("cb_pending", "Pending notifications", ["channel"],
                  source=lambda: {("webhook",): 2.0, ("mqtt",): 0.5})
    assert reg.render().splitlines()[2:] == ['cb_pending{channel="mqtt"} 0.5', 'cb_pending{channel="webhook"} 2']
    assert (g.get("webhook"), g.get("sms")) == (2.0, 0.0)


def test_gauge_set() -> None:
    reg = Registry()
    g = reg.gauge("cb_up", "Whether a part is up", ["part"])
    g.set(1, "broker")
    g.set(0, "store")
    g.set(1, "store")
    assert reg.render().splitlines()[1:] == ["# TYPE cb_up gauge", 'cb_up{part="broker"} 1', 'cb_up{part="store"} 1']


def test_histogram_buckets_are_cumulative() -> None:
    reg = Registry()
    h = reg.histogram("cb_write_seconds", "Write latency", [1, 0.1, 0.5])
    for v in (0.05, 0.1, 0.3, 0.7, 2.0, 0.1):
        h.observe(v)
    assert reg.render() == (
        "# HELP cb_write_seconds Write latency\n"
        "# TYPE cb_write_seconds histogram\n"
        'cb_write_seconds_bucket{le="0.1"} 3\n'
        'cb_write_seconds_bucket{le="0.5"} 4\n'
        'cb_write_seconds_bucket{le="1"} 5\n'
        'cb_write_seconds_bucket{le="+Inf"} 6\n'
        "cb_write_seconds_sum 3.25\n"
        "cb_write_seconds_count 6\n"
    )


def test_empty_histogram() -> None:
    reg = Registry()
    reg.histogram("h", "x", [1.0])
    assert reg.render().splitlines()[2:] == ['h_bucket{le="1"} 0', 'h_bucket{le="+Inf"} 0', "h_sum 0", "h_count 0"]


def test_families_render_in_registration_order() -> None:
    reg = Registry()
    reg.counter("b_total", "b")
    reg.gauge("a", "a", source=lambda: 1.0)
    text = reg.render()
    assert text.index("# HELP b_total") < text.index("# HELP a ")
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_a_name_registers_once() -> None:
    reg = Registry()
    reg.counter("x_total", "x")
    with pytest.raises(ValueError, match="registered twice"):
        reg.gauge("x_total", "again")
