"""Panel shapes shared by the dashboards: large stats, level mappings, tables, time series."""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.influxql import InfluxQL, datasource
from dashboards.words import LEVEL_COLOURS, LEVELS, NEUTRAL, Lang, event_word, level_word, normal_word, w
from kernel.alerting import Level

# Stats say what is now: they read the last NOW_WINDOW of the snapshots (written every 30 s, every
# device at least every 5 min), whatever range the dashboard shows; scanning hours for a last()
# would only cost time (bench/wall_queries.py).
NOW_WINDOW = "10m"
# The wall is read from across the room: big values, bigger than Grafana's automatic sizes.
STAT_VALUE_SIZE = 64
STAT_TITLE_SIZE = 22


def pos(x: int, y: int, w_: int, h: int) -> dm.GridPos:
    """Where a panel sits on the 24-column grid."""
    return dm.GridPos(x=x, y=y, w=w_, h=h)


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    """Absolute thresholds; the first step's value is None (from minus infinity)."""
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(value=v, color=c) for v, c in steps])


def neutral() -> db.ThresholdsConfig:
    """No colour: what is normal is shown in the theme's text colour."""
    return thresholds((None, NEUTRAL))


def rank_mappings(lang: Lang) -> list[dm.ValueMapping]:
    """0 to 4 (worst_level) as words and colours: 正常 … 红色预警（I级）."""
    options = {"0": dm.ValueMappingResult(text=normal_word(lang), color=NEUTRAL, index=0)}
    for i, level in enumerate(LEVELS, start=1):
        options[str(i)] = dm.ValueMappingResult(text=level_word(level, lang), color=LEVEL_COLOURS[level], index=i)
    return [dm.ValueMap(options=options)]


def rank_thresholds() -> db.ThresholdsConfig:
    """Colours of worst_level 1 to 4, matching rank_mappings."""
    return thresholds((None, NEUTRAL), *((float(i), LEVEL_COLOURS[lv]) for i, lv in enumerate(LEVELS, start=1)))


def level_tag_mappings(lang: Lang) -> list[dm.ValueMapping]:
    """The `level` tag (blue … red) as words and colours."""
    return [dm.ValueMap(options={lv.value: dm.ValueMappingResult(text=level_word(lv, lang), color=LEVEL_COLOURS[lv],
                                                                 index=i) for i, lv in enumerate(LEVELS)})]


def event_mappings(lang: Lang) -> list[dm.ValueMapping]:
    """The `event` tag in words (no colour: the level column carries it)."""
    names = ("fired", "escalated", "level_raised", "level_lowered", "acknowledged", "resolved", "reminder")
    return [dm.ValueMap(options={e: dm.ValueMappingResult(text=event_word(e, lang), index=i)
                                 for i, e in enumerate(names)})]


def online_mappings(lang: Lang) -> list[dm.ValueMapping]:
    """device_state.online (1 / 0) in words; offline in orange."""
    return [dm.ValueMap(options={"1": dm.ValueMappingResult(text=w("yes_online", lang), color=NEUTRAL, index=0),
                                 "0": dm.ValueMappingResult(text=w("no_offline", lang), color="orange", index=1)})]


def flag_mappings(lang: Lang) -> list[dm.ValueMapping]:
    """A 1 / 0 flag (fault, tamper) in words; set in orange."""
    return [dm.ValueMap(options={"0": dm.ValueMappingResult(text=w("no", lang), color=NEUTRAL, index=0),
                                 "1": dm.ValueMappingResult(text=w("yes", lang), color="orange", index=1)})]


def band_mappings(bands: Sequence[tuple[float, Level]], lang: Lang) -> list[dm.ValueMapping]:
    """A number's bands (from each value up, a level) as the levels in words, so a tooltip says the level;
    below the first band, normal."""
    edges: list[tuple[float | None, Level | None]] = [(None, None), *bands]
    out: list[dm.ValueMapping] = []
    for i, (lo, level) in enumerate(edges):
        hi = edges[i + 1][0] if i + 1 < len(edges) else None
        text = normal_word(lang) if level is None else level_word(level, lang)
        colour = NEUTRAL if level is None else LEVEL_COLOURS[level]
        out.append(dm.RangeMap(options=dm.DashboardRangeMapOptions(
            from_val=lo, to=None if hi is None else hi - 0.001, result=dm.ValueMappingResult(text=text, color=colour,
                                                                                             index=i))))
    return out


def band_thresholds(bands: Sequence[tuple[float, Level]]) -> db.ThresholdsConfig:
    """A number's bands as thresholds in their levels' colours."""
    return thresholds((None, NEUTRAL), *((value, LEVEL_COLOURS[level]) for value, level in bands))


def state_mappings(states: Sequence[tuple[str, str, str, Level | None]], lang: Lang) -> list[dm.ValueMapping]:
    """A flag's or a word's values in words, each in its level's colour (none: the text colour)."""
    return [dm.ValueMap(options={value: dm.ValueMappingResult(text=zh if lang == "zh-CN" else en,
                                                              color=NEUTRAL if level is None else LEVEL_COLOURS[level],
                                                              index=i)
                                 for i, (value, zh, en, level) in enumerate(states)})]


def big_stat(title: str, gp: dm.GridPos, *queries: InfluxQL) -> stat.Panel:
    """A stat readable from 5 m: one big value per series, named by the series."""
    return (stat.Panel().title(title).datasource(datasource()).grid_pos(gp).targets(list(queries))
            .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
            .text(cb.VizTextDisplayOptions().title_size(STAT_TITLE_SIZE).value_size(STAT_VALUE_SIZE))
            .graph_mode(cm.BigValueGraphMode.NONE).justify_mode(cm.BigValueJustifyMode.CENTER)
            .text_mode(cm.BigValueTextMode.VALUE_AND_NAME).orientation(cm.VizOrientation.AUTO)
            .color_mode(cm.BigValueColorMode.BACKGROUND).thresholds(neutral()).decimals(0)
            .time_from(NOW_WINDOW).hide_time_override(True))


def level_count_stat(level: Level, lang: Lang, gp: dm.GridPos, query: InfluxQL) -> stat.Panel:
    """Unacknowledged alerts of one level per community: the level in the title and the unit, its
    colour only when there are some."""
    return (big_stat(w("unacked_of", lang).format(level=level_word(level, lang)), gp, query)
            .unit(f"suffix: {w('count_unit', lang)}")
            .thresholds(thresholds((None, NEUTRAL), (1.0, LEVEL_COLOURS[level]))))


def series_table(title: str, gp: dm.GridPos, query: InfluxQL) -> table.Panel:
    """A table with large rows."""
    return (table.Panel().title(title).datasource(datasource()).grid_pos(gp).targets([query])
            .cell_height(cm.TableCellHeight.LG).show_header(True).thresholds(neutral()))


def column(name: str, *properties: tuple[str, object]) -> db.DashboardFieldConfigSourceOverrides:
    """Per-column settings of a table, by the column's name."""
    return (db.DashboardFieldConfigSourceOverrides().matcher(dm.MatcherConfig(id_val="byName", options=name))
            .properties([dm.DynamicConfigValue(id_val=k, value=v) for k, v in properties]))


def coloured_cells() -> dict[str, object]:
    """A cell whose background takes its mapping's colour."""
    return {"type": "color-background", "mode": "basic"}


def lines(title: str, gp: dm.GridPos, *queries: InfluxQL) -> timeseries.Panel:
    """A time series of a few lines."""
    return (timeseries.Panel().title(title).datasource(datasource()).grid_pos(gp).targets(list(queries))
            .line_width(2).fill_opacity(0).show_points(cm.VisibilityMode.NEVER).span_nulls(True)
            .legend(cb.VizLegendOptions().show_legend(True).display_mode(cm.LegendDisplayMode.LIST)
                    .placement(cm.LegendPlacement.BOTTOM))
            .thresholds(neutral()))
