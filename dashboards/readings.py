"""Panels of the devices' readings, made from the device catalog (kernel.devices): each type's plots.

A type's catalog entry says which of its fields the dashboards draw, how a bucket of readings is
summed up, the levels' bands or a flag's words, and whether the street office's wall shows it; the
field's name and unit in both languages come from the same entry. Nothing here names a device type.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import statetimeline, timeseries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.influxql import Built, InfluxQL, datasource
from dashboards.panels import band_mappings, band_thresholds, lines, neutral, pos, state_mappings
from dashboards.words import Lang, w
from kernel.devices import CATALOG, DeviceKind, Plot

# Grafana's unit ids for the catalog's units; any other unit is shown as a suffix.
GRAFANA_UNITS = {"cm": "lengthcm", "A": "amp", "V": "volt", "W": "watt", "Wh": "watth", "°C": "celsius",
                 "ppm": "ppm", "%": "percent"}


def grafana_unit(unit: str) -> str:
    """Grafana's unit for a catalog unit ("" when the field has none)."""
    return GRAFANA_UNITS.get(unit) or (f"suffix: {unit}" if unit else "")


def plot_title(kind: DeviceKind, plot: Plot, lang: Lang, *, wall: bool = False) -> str:
    """A plot's title: the type's and the field's names, the unit, and on the wall what it shows."""
    info = kind.fields[plot.field]
    unit = "" if not info.unit else (f"（{info.unit}）" if lang == "zh-CN" else f" ({info.unit})")
    kind_name = kind.name(lang)
    return w("plot_wall" if wall else "plot", lang).format(kind=kind_name[:1].upper() + kind_name[1:],
                                                           field=info.name(lang), unit=unit)


def all_plots(*, wall: bool = False) -> list[tuple[DeviceKind, Plot]]:
    """Every type's plots in catalog order (with wall, only those the street office's wall shows)."""
    return [(kind, plot) for kind in CATALOG.values() for plot in kind.plots if plot.wall or not wall]


def _styled(panel: timeseries.Panel, kind: DeviceKind, plot: Plot, lang: Lang) -> timeseries.Panel:
    unit = grafana_unit(kind.fields[plot.field].unit)
    if unit:
        panel = panel.unit(unit)
    if plot.bands:
        panel = (panel.mappings(band_mappings(plot.bands, lang)).thresholds(band_thresholds(plot.bands))
                 .thresholds_style(Built(cm.GraphThresholdsStyleConfig(mode=cm.GraphThresholdsStyleMode.DASHED))))
    return panel


def device_panel(kind: DeviceKind, plot: Plot, lang: Lang, gp: dm.GridPos,
                 where: str) -> timeseries.Panel | statetimeline.Panel:
    """One line (or, for a flag or a word, one row of states) per device of the type, over time."""
    query = InfluxQL(f'SELECT {plot.aggregate}("{plot.field}") FROM "{kind.measurement}" WHERE $timeFilter '
                     f'AND {where} GROUP BY time($__interval), "device_id" fill(none)').alias("$tag_device_id")
    if plot.states:
        return (statetimeline.Panel().title(plot_title(kind, plot, lang)).datasource(datasource()).grid_pos(gp)
                .targets([query]).mappings(state_mappings(plot.states, lang)).thresholds(neutral())
                .show_value(cm.VisibilityMode.AUTO).merge_values(True).line_width(0).fill_opacity(80))
    return _styled(lines(plot_title(kind, plot, lang), gp, query), kind, plot, lang)


def wall_panel(kind: DeviceKind, plot: Plot, lang: Lang, gp: dm.GridPos) -> timeseries.Panel:
    """Per community, the highest value any device of the type reports: the wall shows where, the
    community's dashboard which device."""
    query = InfluxQL(f'SELECT max("{plot.field}") FROM "{kind.measurement}" WHERE $timeFilter '
                     'GROUP BY time($__interval), "community" fill(none)').alias("$tag_community")
    return _styled(lines(plot_title(kind, plot, lang, wall=True), gp, query), kind, plot, lang).interval("1m")


def device_panels(lang: Lang, y: int, where: str) -> tuple[list[timeseries.Panel | statetimeline.Panel], int]:
    """Every type's plots of one community's devices, three to a row from y; and the y below them."""
    plots = all_plots()
    panels = [device_panel(kind, plot, lang, pos(8 * (i % 3), y + 8 * (i // 3), 8, 8), where)
              for i, (kind, plot) in enumerate(plots)]
    return panels, y + 8 * ((len(plots) + 2) // 3)
