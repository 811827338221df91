"""The four dashboards: 街道总览 (the street-office wall), 社区详情, 设备健康, 告警历史."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import geomap, table
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import geomap as gm

from dashboards.influxql import Built, InfluxQL, annotation, datasource
from dashboards.panels import (
    NOW_WINDOW,
    big_stat,
    coloured_cells,
    column,
    event_mappings,
    flag_mappings,
    level_count_stat,
    level_tag_mappings,
    lines,
    neutral,
    online_mappings,
    pos,
    rank_mappings,
    rank_thresholds,
    series_table,
    thresholds,
)
from dashboards.readings import all_plots, device_panels, wall_panel
from dashboards.words import LEVEL_COLOURS, LEVELS, NEUTRAL, Lang, level_word, w
from kernel.alerting import Level
from kernel.resources import SHELTER_NEARLY_FULL
from kernel.settings import DashboardSettings

TAGS = ["community-brain"]
# Where the map opens when the site gives no centre: 临汾路街道, Shanghai (GCJ-02).
DEFAULT_CENTRE = (31.3160, 121.4540)
C = '"community" =~ /^$community$/'
B = '"building" =~ /^$building$/'
Override = cogbuilder.Builder[dm.DashboardFieldConfigSourceOverrides]


def uid(key: str, lang: Lang) -> str:
    """A dashboard's uid: the same in every Grafana, one per language."""
    return f"cb-{key}" if lang == "zh-CN" else f"cb-{key}-en"


def _dashboard(key: str, lang: Lang, refresh: str, time_from: str = "now-6h") -> db.Dashboard:
    return (db.Dashboard(w(key, lang)).uid(uid(key, lang)).tags([*TAGS, lang]).refresh(refresh)
            .time(time_from, "now").timezone("browser").readonly().live_now(False)
            .tooltip(dm.DashboardCursorSync.CROSSHAIR))


def _alert_annotation(lang: Lang) -> dm.AnnotationQuery:
    return annotation(w("annotation", lang),
                      'SELECT "summary", "level", "rule" FROM "alert" WHERE $timeFilter '
                      "AND \"event\" =~ /^(fired|level_raised)$/",
                      text_column="summary", tags_column="level,rule", icon_color="orange")


def community_variable(lang: Lang, *, include_all: bool) -> db.QueryVariable:
    v = (db.QueryVariable("community").label(w("community_var", lang)).datasource(datasource())
         .query('SHOW TAG VALUES FROM "community_summary" WITH KEY = "community"')
         .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD).sort(dm.VariableSort.ALPHABETICAL_ASC))
    if include_all:
        v = v.include_all(True).all_value(".*").current(dm.VariableOption(selected=True, text=w("all", lang),
                                                                          value="$__all"))
    return v


# ---- 街道总览 ---------------------------------------------------------------------------------------


def street_wall(lang: Lang, settings: DashboardSettings, centre: tuple[float, float] | None = None) -> db.Dashboard:
    """The street office's wall: per community what is firing and unacknowledged, the map, the latest
    events, the device catalog's wall plots and charging; refreshes itself, needs no controls (open it with ?kiosk)."""
    summary = 'FROM "community_summary" WHERE $timeFilter GROUP BY "community", "name"'
    d = _dashboard("wall", lang, "30s").timepicker(db.TimePicker().hidden(True))
    # Counts and the map say what is now: they read the last 10 minutes, not the wall's 6 hours.
    d = d.with_panel(big_stat(w("worst", lang), pos(0, 0, 8, 5),
                              InfluxQL(f'SELECT last("worst_level") {summary}').alias("$tag_name"))
                     .mappings(rank_mappings(lang)).thresholds(rank_thresholds()))
    for i, level in enumerate(reversed(LEVELS)):
        d = d.with_panel(level_count_stat(level, lang, pos(8 + 4 * i, 0, 4, 5),
                                          InfluxQL(f'SELECT last("firing_{level.value}") {summary}')
                                          .alias("$tag_name")))
    d = d.with_panel(big_stat(w("unacked", lang), pos(0, 5, 6, 4),
                              InfluxQL(f'SELECT last("unacknowledged") {summary}').alias("$tag_name"))
                     .unit(f"suffix: {w('count_unit', lang)}"))
    d = d.with_panel(big_stat(w("oldest", lang), pos(6, 5, 6, 4),
                              InfluxQL(f'SELECT last("oldest_unacked_age_s") {summary}').alias("$tag_name"))
                     .unit("s").decimals(0))
    street = ('FROM (SELECT last("{f}") AS "n" FROM "community_summary" WHERE $timeFilter GROUP BY "community") '
              "WHERE $timeFilter")
    d = d.with_panel(big_stat(w("online", lang), pos(12, 5, 6, 4),
                              InfluxQL('SELECT sum("n") ' + street.format(f="devices_online")).alias(w("online", lang)))
                     .unit(f"suffix: {w('devices_unit', lang)}").text_mode(cm.BigValueTextMode.VALUE))
    d = d.with_panel(big_stat(w("offline", lang), pos(18, 5, 6, 4),
                              InfluxQL('SELECT sum("n") ' + street.format(f="devices_offline"))
                              .alias(w("offline", lang)))
                     .unit(f"suffix: {w('devices_unit', lang)}").text_mode(cm.BigValueTextMode.VALUE))
    d = d.with_panel(building_map(lang, settings, pos(0, 9, 12, 10), centre))
    d = d.with_panel(events_table(lang, pos(12, 9, 12, 10), "", 20))
    # Per community, the highest reading of each plot the device catalog puts on the wall (water depth,
    # a shed's gases...): the wall shows where, the community's dashboard which device.
    charts = [wall_panel(kind, plot, lang, pos(0, 0, 12, 8)) for kind, plot in all_plots(wall=True)]
    # The charging load is the service's sum over each community's ports (community_summary): summing
    # the readings per port in InfluxQL takes seconds at 2,000 ports (bench/wall_queries.py).
    charts.append(lines(w("charging", lang), pos(0, 0, 12, 8),
                        InfluxQL('SELECT mean("charging_a") FROM "community_summary" WHERE $timeFilter '
                                 'GROUP BY time($__interval), "community", "name" fill(none)')
                        .alias("$tag_name"))
                  .unit("amp").interval("1m"))
    for i, chart in enumerate(charts):
        d = d.with_panel(chart.grid_pos(pos(12 * (i % 2), 19 + 8 * (i // 2), 12, 8)))
    y = 19 + 8 * ((len(charts) + 1) // 2)
    # 吹哨报到: the service's snapshot of the work orders per department (docs/storage.md, work_orders).
    d = d.with_panel(series_table(w("work_orders", lang), pos(0, y, 24, 8),
                                  InfluxQL('SELECT last("open") AS "open", last("overdue") AS "overdue", '
                                           'last("rating_avg") AS "rating" FROM "work_orders" WHERE $timeFilter '
                                           'AND "community" = \'all\' GROUP BY "department"')
                                  .alias("$tag_department")))
    return d.annotation(Built(_alert_annotation(lang)))


def building_map(lang: Lang, settings: DashboardSettings, gp: dm.GridPos,
                 centre: tuple[float, float] | None) -> geomap.Panel:
    """Buildings at their coordinates, each marker coloured by and labelled with its worst level; the shelters
    as a second layer, coloured by how full they are, their occupancy in the tooltip."""
    lat, lon = (settings.map_center_lat, settings.map_center_lon)
    if lat is None or lon is None:
        lat, lon = centre or DEFAULT_CENTRE
    query = (InfluxQL('SELECT last("worst_level") AS "worst_level", last("lat") AS "lat", last("lon") AS "lon", '
                      'last("name") AS "name" FROM "building_state" WHERE $timeFilter GROUP BY "community", "building"')
             .table())
    basemap = cm.MapLayerOptions(type_val="xyz", name="tiles",
                                 config={"url": settings.map_tile_url, "attribution": settings.map_attribution})
    markers = cm.MapLayerOptions(
        type_val="markers", name=w("buildings", lang), tooltip=True, filter_data={"id": "byRefId", "options": "A"},
        location=cm.FrameGeometrySource(mode=cm.FrameGeometrySourceMode.COORDS, latitude="lat", longitude="lon"),
        config={"showLegend": True,
                "style": {"color": {"field": "worst_level", "fixed": NEUTRAL}, "size": {"fixed": 14},
                          "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
                          "text": {"field": "worst_level", "mode": "field"},
                          "textConfig": {"fontSize": 14, "offsetY": -18, "textAlign": "center",
                                         "textBaseline": "middle"}}})
    shelters, shelter_fields = shelter_layer(lang)
    return (geomap.Panel().title(w("map", lang)).datasource(datasource()).grid_pos(gp)
            .targets([query, shelter_query()])
            .time_from(NOW_WINDOW).hide_time_override(True)
            .view(Built(gm.MapViewConfig(id_val="coords", lat=lat, lon=lon, zoom=settings.map_zoom)))  # type: ignore[arg-type]
            .basemap(Built(basemap)).layers([Built(markers), Built(shelters)])
            .controls(Built(gm.ControlsOptions(show_zoom=False, mouse_wheel_zoom=False, show_attribution=True)))
            .tooltip(Built(gm.TooltipOptions(mode=gm.TooltipMode.DETAILS)))
            .mappings(rank_mappings(lang)).thresholds(rank_thresholds())
            .color_scheme(Built(dm.FieldColor(mode=dm.FieldColorModeId.THRESHOLDS)))
            .overrides(shelter_fields))


def shelter_query() -> InfluxQL:
    """Each shelter's latest snapshot (shelter_state, docs/dashboards.md): where, how many, how full."""
    return (InfluxQL('SELECT last("lat") AS "lat", last("lon") AS "lon", last("capacity") AS "capacity", '
                     'last("occupancy") AS "occupancy", last("share") AS "share" FROM "shelter_state" '
                     'WHERE $timeFilter GROUP BY "community", "shelter", "name"').ref_id("B").table())


def shelter_layer(lang: Lang) -> tuple[cm.MapLayerOptions, list[Override]]:
    """The shelters' markers (query B), in the colours of shelter.full (yellow from 90 %, orange when full: the
    layer's name says so in words), and their fields' settings: numbers as they are (the panel's level words
    are the buildings'), the share in per cent."""
    layer = cm.MapLayerOptions(
        type_val="markers", name=w("shelters", lang), tooltip=True, filter_data={"id": "byRefId", "options": "B"},
        location=cm.FrameGeometrySource(mode=cm.FrameGeometrySourceMode.COORDS, latitude="lat", longitude="lon"),
        config={"showLegend": True,
                "style": {"color": {"field": "share", "fixed": NEUTRAL}, "size": {"fixed": 16},
                          "symbol": {"fixed": "img/icons/marker/square.svg", "mode": "fixed"},
                          "text": {"field": "name", "mode": "field"},
                          "textConfig": {"fontSize": 12, "offsetY": 20, "textAlign": "center",
                                         "textBaseline": "middle"}}})
    full = thresholds((None, NEUTRAL), (SHELTER_NEARLY_FULL, LEVEL_COLOURS[Level.YELLOW]),
                      (1.0, LEVEL_COLOURS[Level.ORANGE])).build()
    fields: list[Override] = [
        column("capacity", ("displayName", w("col_capacity", lang)), ("mappings", []), ("decimals", 0)),
        column("occupancy", ("displayName", w("col_occupancy", lang)), ("mappings", []), ("decimals", 0)),
        column("share", ("displayName", w("col_share", lang)), ("mappings", []), ("unit", "percentunit"),
               ("decimals", 0), ("thresholds", full))]
    return layer, fields


def events_table(lang: Lang, gp: dm.GridPos, where: str, limit: int) -> table.Panel:
    """The latest alert events, newest first: level (words and colour), event, summary."""
    query = InfluxQL(f'SELECT "level", "event", "summary" FROM "alert" WHERE $timeFilter{where} '
                     f"ORDER BY time DESC LIMIT {limit}").table()
    return (series_table(w("events" if not where else "alerts", lang), gp, query)
            .mappings([*level_tag_mappings(lang), *event_mappings(lang)])
            .overrides([column("level", ("displayName", w("col_level", lang)), ("custom.cellOptions", coloured_cells()),
                               ("custom.width", 200)),
                        column("event", ("displayName", w("col_event", lang)), ("custom.width", 120)),
                        column("summary", ("displayName", w("col_summary", lang)))]))


# ---- 社区详情 ---------------------------------------------------------------------------------------


def community_detail(lang: Lang) -> db.Dashboard:
    """One community: its buildings (chosen with the variables community → building), devices, alerts, readings."""
    building_var = (db.QueryVariable("building").label(w("building_var", lang)).datasource(datasource())
                    .query(f'SHOW TAG VALUES FROM "building_state" WITH KEY = "building" WHERE {C}')
                    .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD).sort(dm.VariableSort.ALPHABETICAL_ASC)
                    .include_all(True).all_value(".*")
                    .current(dm.VariableOption(selected=True, text=w("all", lang), value="$__all")))
    d = (_dashboard("community", lang, "30s").with_variable(community_variable(lang, include_all=False))
         .with_variable(building_var))
    summary = f'FROM "community_summary" WHERE $timeFilter AND {C}'
    d = d.with_panel(big_stat(w("worst", lang), pos(0, 0, 6, 5), InfluxQL(f'SELECT last("worst_level") {summary}'))
                     .mappings(rank_mappings(lang)).thresholds(rank_thresholds()).text_mode(cm.BigValueTextMode.VALUE))
    d = d.with_panel(big_stat(w("unacked", lang), pos(6, 0, 6, 5), InfluxQL(f'SELECT last("unacknowledged") {summary}'))
                     .unit(f"suffix: {w('count_unit', lang)}").text_mode(cm.BigValueTextMode.VALUE))
    d = d.with_panel(big_stat(w("online", lang), pos(12, 0, 6, 5), InfluxQL(f'SELECT last("devices_online") {summary}'))
                     .unit(f"suffix: {w('devices_unit', lang)}").text_mode(cm.BigValueTextMode.VALUE))
    d = d.with_panel(big_stat(w("offline", lang), pos(18, 0, 6, 5),
                              InfluxQL(f'SELECT last("devices_offline") {summary}'))
                     .unit(f"suffix: {w('devices_unit', lang)}").text_mode(cm.BigValueTextMode.VALUE))
    buildings = InfluxQL('SELECT last("name") AS "name", last("worst_level") AS "worst_level", '
                         'last("firing") AS "firing", last("open_alerts") AS "open_alerts" FROM "building_state" '
                         f'WHERE $timeFilter AND {C} AND {B} GROUP BY "building"').table()
    d = d.with_panel(series_table(w("buildings", lang), pos(0, 5, 12, 8), buildings)
                     .mappings(rank_mappings(lang)).thresholds(rank_thresholds())
                     .overrides([column("building", ("displayName", w("col_building", lang))),
                                 column("name", ("displayName", w("col_name", lang))),
                                 column("worst_level", ("displayName", w("worst", lang)),
                                        ("custom.cellOptions", coloured_cells())),
                                 column("firing", ("displayName", w("col_firing", lang))),
                                 column("open_alerts", ("displayName", w("col_open", lang)))]))
    d = d.with_panel(events_table(lang, pos(12, 5, 12, 8), f" AND {C}", 50))
    d = d.with_panel(device_table(lang, pos(0, 13, 24, 8), f"{C} AND {B}"))
    # Every device type's readings, as its catalog entry says (dashboards.readings).
    panels, _ = device_panels(lang, 21, f"{C} AND {B}")
    for panel in panels:
        d = d.with_panel(panel)
    return d.annotation(Built(_alert_annotation(lang)))


def device_table(lang: Lang, gp: dm.GridPos, where: str) -> table.Panel:
    """Each device's latest state, offline ones first: online, silence, battery, signal, fault, tamper."""
    query = InfluxQL('SELECT last("online") AS "online", last("silent_s") AS "silent_s", '
                     'last("battery_pct") AS "battery_pct", last("rssi_dbm") AS "rssi_dbm", '
                     'last("fault") AS "fault", last("tamper") AS "tamper" FROM "device_state" '
                     f'WHERE $timeFilter AND {where} GROUP BY "community", "building", "device_type", "device_id"'
                     ).table()
    flags = ("custom.cellOptions", coloured_cells())
    return (series_table(w("device_table", lang), gp, query).thresholds(neutral())
            .sort_by([Built(cm.TableSortByFieldState(display_name=w("col_online", lang), desc=False))])
            .overrides([column("community", ("displayName", w("col_community", lang))),
                        column("building", ("displayName", w("col_building", lang))),
                        column("device_type", ("displayName", w("col_type", lang))),
                        column("device_id", ("displayName", w("col_device", lang))),
                        column("online", ("displayName", w("col_online", lang)), ("mappings", online_mappings(lang)),
                               flags),
                        column("silent_s", ("displayName", w("col_silent", lang)), ("decimals", 0)),
                        column("battery_pct", ("displayName", w("col_battery", lang)), ("decimals", 0)),
                        column("rssi_dbm", ("displayName", w("col_rssi", lang)), ("decimals", 0)),
                        column("fault", ("displayName", w("col_fault", lang)), ("mappings", flag_mappings(lang)),
                               flags),
                        column("tamper", ("displayName", w("col_tamper", lang)), ("mappings", flag_mappings(lang)),
                               flags)]))


# ---- 设备健康 ---------------------------------------------------------------------------------------


def device_health(lang: Lang) -> db.Dashboard:
    """Offline and silent devices, low batteries, faults and tamper, the online rate over time."""
    d = _dashboard("health", lang, "1m").with_variable(community_variable(lang, include_all=True))
    latest = ('FROM (SELECT last("online") AS "online", last("battery_pct") AS "battery_pct", '
              'last("fault") AS "fault", last("tamper") AS "tamper" FROM "device_state" '
              f'WHERE $timeFilter AND {C} GROUP BY "community", "device_id") WHERE $timeFilter')
    d = d.with_panel(big_stat(w("online_rate", lang), pos(0, 0, 6, 5),
                              InfluxQL(f'SELECT mean("online") * 100 {latest}').alias(w("online_rate", lang)))
                     .unit("percent").text_mode(cm.BigValueTextMode.VALUE))
    d = d.with_panel(big_stat(w("offline", lang), pos(6, 0, 6, 5),
                              InfluxQL(f'SELECT count("online") - sum("online") {latest}').alias(w("offline", lang)))
                     .unit(f"suffix: {w('devices_unit', lang)}").text_mode(cm.BigValueTextMode.VALUE))
    low: list[dm.ValueMapping] = [dm.RangeMap(options=dm.DashboardRangeMapOptions(
        from_val=0.0, to=19.999, result=dm.ValueMappingResult(text=w("low_battery", lang) + " < 20%", color="orange",
                                                              index=0)))]
    d = d.with_panel(big_stat(w("low_battery", lang), pos(12, 0, 6, 5),
                              InfluxQL(f'SELECT min("battery_pct") {latest}').alias(w("low_battery", lang)))
                     .unit("percent").mappings(low).thresholds(thresholds((None, "orange"), (20.0, NEUTRAL)))
                     .text_mode(cm.BigValueTextMode.VALUE))
    d = d.with_panel(big_stat(w("faults", lang), pos(18, 0, 6, 5),
                              InfluxQL(f'SELECT sum("fault") AS "{w("col_fault", lang)}", '
                                       f'sum("tamper") AS "{w("col_tamper", lang)}" {latest}'))
                     .unit(f"suffix: {w('devices_unit', lang)}"))
    d = d.with_panel(device_table(lang, pos(0, 5, 24, 12), C))
    d = d.with_panel(lines(w("online_rate_time", lang), pos(0, 17, 24, 8),
                           InfluxQL('SELECT mean("online") * 100 FROM "device_state" '
                                    f'WHERE $timeFilter AND {C} GROUP BY time($__interval), "community" fill(previous)')
                           .alias("$tag_community"))
                     .unit("percent").min(0).max(100)
                     # device_state comes every few minutes per device: finer buckets would be mostly empty.
                     .interval("5m"))
    return d.annotation(Built(_alert_annotation(lang)))


# ---- 告警历史 ---------------------------------------------------------------------------------------


def alert_history(lang: Lang) -> db.Dashboard:
    """Alerts by rule and level over time; time to acknowledge and to resolve (median, 90th percentile)."""
    d = _dashboard("history", lang, "1m", "now-7d").with_variable(community_variable(lang, include_all=True))
    fired = f"FROM \"alert\" WHERE $timeFilter AND \"event\" = 'fired' AND {C}"
    d = d.with_panel(lines(w("by_rule", lang), pos(0, 0, 12, 9),
                           InfluxQL(f'SELECT count("alert_id") {fired} GROUP BY time($__interval), "rule" fill(0)')
                           .alias("$tag_rule"))
                     .draw_style(cm.GraphDrawStyle.BARS).fill_opacity(80).interval("1h")
                     .stacking(Built(cm.StackingConfig(mode=cm.StackingMode.NORMAL))))
    by_level = (lines(w("by_level", lang), pos(12, 0, 12, 9),
                      InfluxQL(f'SELECT count("alert_id") {fired} GROUP BY time($__interval), "level" fill(0)')
                      .alias("$tag_level"))
                .draw_style(cm.GraphDrawStyle.BARS).fill_opacity(80).interval("1h")
                .stacking(Built(cm.StackingConfig(mode=cm.StackingMode.NORMAL)))
                .overrides([column(lv.value, ("displayName", level_word(lv, lang)),
                                   ("color", {"mode": "fixed", "fixedColor": LEVEL_COLOURS[lv]})) for lv in LEVELS]))
    d = d.with_panel(by_level)
    for i, (key, event, fn) in enumerate((("ack_median", "acknowledged", 'median("age_s")'),
                                          ("ack_p90", "acknowledged", 'percentile("age_s", 90)'),
                                          ("resolve_median", "resolved", 'median("age_s")'),
                                          ("resolve_p90", "resolved", 'percentile("age_s", 90)'))):
        d = d.with_panel(big_stat(w(key, lang), pos(6 * i, 9, 6, 5),
                                  InfluxQL(f"SELECT {fn} FROM \"alert\" WHERE $timeFilter AND \"event\" = '{event}' "
                                           f"AND {C}").alias(w(key, lang)))
                         .unit("s").text_mode(cm.BigValueTextMode.VALUE))
    table_query = InfluxQL(f'SELECT count("alert_id") AS "count" {fired} GROUP BY "rule", "level"').table()
    d = d.with_panel(series_table(w("rule_level_table", lang), pos(0, 14, 24, 10), table_query)
                     .mappings(level_tag_mappings(lang))
                     .overrides([column("rule", ("displayName", w("col_rule", lang))),
                                 column("level", ("displayName", w("col_level", lang)),
                                        ("custom.cellOptions", coloured_cells())),
                                 column("count", ("displayName", w("col_count", lang)))]))
    return d.annotation(Built(_alert_annotation(lang)))
