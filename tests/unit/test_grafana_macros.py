"""Grafana's InfluxQL substitutions as the tests and benchmarks apply them."""

from __future__ import annotations

from dashboards.grafana_macros import DashboardQuery, Variable, interval_ms, substitute

SIX_HOURS = 6 * 3600 * 1000


def test_time_filter_and_intervals() -> None:
    q = "SELECT mean(x) FROM m WHERE $timeFilter GROUP BY time($__interval) LIMIT $__interval_ms"
    text = substitute(q, from_ms=1000, to_ms=1000 + SIX_HOURS)
    assert text == ("SELECT mean(x) FROM m WHERE time >= 1000ms and time <= 21601000ms GROUP BY time(30s) "
                    "LIMIT 30000")
    # Never finer than the data source's minimum (10s) or the panel's own.
    assert interval_ms(0, 60_000) == 10_000
    assert substitute("$interval", from_ms=0, to_ms=SIX_HOURS, min_interval="5m") == "5m"


def test_variables_as_the_influxdb_data_source_formats_them() -> None:
    q = '"community" =~ /^$community$/ AND "building" =~ /^${building}$/ AS "$tag_community"'
    variables = {"community": Variable("community", "linfen-yicun", include_all=True, all_value=".*"),
                 "building": Variable("building", "$__all", include_all=True, all_value=".*")}
    assert substitute(q, from_ms=0, to_ms=1, variables=variables) == \
        '"community" =~ /^linfen\\-yicun$/ AND "building" =~ /^.*$/ AS "$tag_community"'
    assert Variable("c", ["a.b", "c"], multi=True).formatted() == "(a\\.b|c)"
    assert Variable("c", "a-b").formatted() == "a-b"  # neither multi nor All: as it is


def test_a_panel_time_override_narrows_the_range() -> None:
    q = DashboardQuery("cb-wall", "panel x A", "SELECT 1", time_from="10m")
    assert q.range_ms(0, SIX_HOURS) == (SIX_HOURS - 600_000, SIX_HOURS)
    assert DashboardQuery("cb-wall", "panel y A", "SELECT 1").range_ms(0, SIX_HOURS) == (0, SIX_HOURS)
