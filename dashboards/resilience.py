"""韧性评估 (docs/resilience.md, docs/dashboards.md): the communities' resilience scorecards from the
`resilience` measurement the service writes at start and every resilience.history_interval_s — the
overall score of each community with its rating in words, each category's score per community, and the
overall score over time."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.influxql import InfluxQL
from dashboards.panels import coloured_cells, column, lines, pos, series_table, thresholds
from dashboards.words import NEUTRAL, Lang, w

C = '"community" =~ /^$community$/'
# The ratings of docs/resilience.md: low < 50 ≤ medium < 80 ≤ high; each in words and its colour.
RATINGS = ((0.0, 49.999, "rs_low", "red"), (50.0, 79.999, "rs_medium", "orange"), (80.0, 100.0, "rs_high", "green"))
CATEGORIES = ("sensing", "response", "departments", "preparedness", "recovery")
Mapping = dm.ValueMap | dm.RangeMap


def rating_mappings(lang: Lang) -> list[Mapping]:
    """A score (0–100) as its rating in words and colour: 低 / 中 / 高."""
    return [dm.RangeMap(options=dm.DashboardRangeMapOptions(
        from_val=lo, to=hi, result=dm.ValueMappingResult(text=w(key, lang), color=colour, index=i)))
        for i, (lo, hi, key, colour) in enumerate(RATINGS)]


def category_mappings(lang: Lang) -> list[Mapping]:
    """The `category` tag in words."""
    return [dm.ValueMap(options={c: dm.ValueMappingResult(text=w(f"rs_{c}", lang), index=i)
                                 for i, c in enumerate(CATEGORIES)})]


def rating_column(lang: Lang) -> db.DashboardFieldConfigSourceOverrides:
    """The rating column: the score in words (低/中/高) on its colour."""
    return column("rating", ("displayName", w("col_rating", lang)), ("mappings", rating_mappings(lang)),
                  ("thresholds", {"mode": "absolute", "steps": [{"value": None, "color": "red"},
                                                                {"value": 50, "color": "orange"},
                                                                {"value": 80, "color": "green"}]}),
                  ("custom.cellOptions", coloured_cells()))


def resilience_board(lang: Lang, community_variable: cogbuilder.Builder[dm.VariableModel]) -> db.Dashboard:
    """The communities' scores and ratings now, each category's, and the overall score over time."""
    d = (db.Dashboard(w("resilience", lang)).uid("cb-resilience" if lang == "zh-CN" else "cb-resilience-en")
         .tags(["community-brain", lang]).refresh("1h").time("now-90d", "now").timezone("browser").readonly()
         .live_now(False).with_variable(community_variable))
    latest = 'last("score") AS "score", last("score") AS "rating" FROM "resilience" WHERE $timeFilter'
    overall = InfluxQL(f"SELECT {latest} AND \"category\" = 'overall' AND {C} GROUP BY \"community\"").table()
    d = d.with_panel(series_table(w("rs_overall_table", lang), pos(0, 0, 10, 9), overall)
                     .thresholds(thresholds((None, NEUTRAL)))
                     .overrides([column("community", ("displayName", w("col_community", lang))),
                                 column("score", ("displayName", w("col_score", lang)), ("decimals", 1)),
                                 rating_column(lang)]))
    categories = InfluxQL(f"SELECT {latest} AND \"category\" != 'overall' AND {C} "
                          'GROUP BY "community", "category"').table()
    d = d.with_panel(series_table(w("rs_category_table", lang), pos(10, 0, 14, 9), categories)
                     .thresholds(thresholds((None, NEUTRAL)))
                     .overrides([column("community", ("displayName", w("col_community", lang))),
                                 column("category", ("displayName", w("col_category", lang)),
                                        ("mappings", category_mappings(lang))),
                                 column("score", ("displayName", w("col_score", lang)), ("decimals", 1)),
                                 rating_column(lang)]))
    over_time = InfluxQL("SELECT last(\"score\") FROM \"resilience\" WHERE $timeFilter AND \"category\" = 'overall' "
                         f'AND {C} GROUP BY time($__interval), "community" fill(none)').alias("$tag_community")
    d = d.with_panel(lines(w("rs_over_time", lang), pos(0, 9, 24, 9), over_time).min(0).max(100).interval("1h"))
    for i, cid in enumerate(CATEGORIES):
        per = InfluxQL(f"SELECT last(\"score\") FROM \"resilience\" WHERE $timeFilter AND \"category\" = '{cid}' "
                       f'AND {C} GROUP BY time($__interval), "community" fill(none)').alias("$tag_community")
        d = d.with_panel(lines(w(f"rs_{cid}", lang), pos((i % 3) * 8, 18 + (i // 3) * 7, 8, 7), per)
                         .min(0).max(100).interval("1h"))
    return d
