"""A raw InfluxQL query for Grafana's InfluxDB data source (the SDK has no InfluxQL query class)."""

from __future__ import annotations

import typing

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard

DATASOURCE_UID = "cb-influxdb"
DATASOURCE_TYPE = "influxdb"


def datasource() -> dashboard.DataSourceRef:
    """The one data source every dashboard reads: the service's InfluxDB."""
    return dashboard.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)


class InfluxQLQuery(cogvariants.Dataquery):
    """One target of a panel: raw InfluxQL, as the data source's query editor stores it."""

    def __init__(self, query: str = "", ref_id: str = "A", alias: str | None = None,
                 result_format: str = "time_series", datasource: dashboard.DataSourceRef | None = None,
                 hide: bool | None = None) -> None:
        self.query = query
        self.ref_id = ref_id
        self.alias = alias
        self.result_format = result_format
        self.datasource = datasource
        self.hide = hide

    def to_json(self) -> dict[str, object]:
        """The target as Grafana's dashboard JSON has it."""
        payload: dict[str, object] = {"refId": self.ref_id, "query": self.query, "rawQuery": True,
                                      "resultFormat": self.result_format}
        if self.alias is not None:
            payload["alias"] = self.alias
        if self.datasource is not None:
            payload["datasource"] = self.datasource
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, typing.Any]) -> typing.Self:
        """Read a target back (the SDK's runtime calls this for every influxdb target)."""
        ds = data.get("datasource")
        return cls(query=data.get("query", ""), ref_id=data.get("refId", "A"), alias=data.get("alias"),
                   result_format=data.get("resultFormat", "time_series"),
                   datasource=dashboard.DataSourceRef.from_json(ds) if isinstance(ds, dict) else None,
                   hide=data.get("hide"))


class InfluxQL(cogbuilder.Builder[InfluxQLQuery]):
    """Builds an InfluxQLQuery: InfluxQL("SELECT ...").ref_id("B").alias("$tag_community").table()."""

    def __init__(self, query: str) -> None:
        self._internal = InfluxQLQuery(query=query, datasource=datasource())

    def build(self) -> InfluxQLQuery:
        """The query."""
        return self._internal

    def ref_id(self, ref_id: str) -> typing.Self:
        """The target's letter."""
        self._internal.ref_id = ref_id
        return self

    def alias(self, alias: str) -> typing.Self:
        """The series name ($tag_community, $col)."""
        self._internal.alias = alias
        return self

    def table(self) -> typing.Self:
        """Answer as one table (tags as columns) instead of one series per group."""
        self._internal.result_format = "table"
        return self


cogruntime.register_dataquery_variant(cogruntime.DataqueryConfig(identifier=DATASOURCE_TYPE,
                                                                 from_json_hook=InfluxQLQuery.from_json))


class InfluxQLAnnotationTarget(dashboard.AnnotationTarget):
    """An InfluxQL annotation query: which columns are the text and the tags of each annotation.

    The SDK's AnnotationTarget knows only Grafana's built-in annotation keys; the InfluxDB data source
    reads these (`query`, `textColumn`, `tagsColumn`, `fromAnnotations`) from the same object.
    """

    def __init__(self, query: str, text_column: str, tags_column: str) -> None:
        super().__init__(limit=100, match_any=False, tags=[], type_val="dashboard")
        self.query = query
        self.text_column = text_column
        self.tags_column = tags_column

    def to_json(self) -> dict[str, object]:
        """The target with the InfluxDB data source's keys."""
        payload = super().to_json()
        payload.update({"query": self.query, "rawQuery": True, "fromAnnotations": True,
                        "textColumn": self.text_column, "tagsColumn": self.tags_column})
        return payload


def annotation(name: str, query: str, *, text_column: str, tags_column: str,
               icon_color: str) -> dashboard.AnnotationQuery:
    """An annotation on every time series of the dashboard, from an InfluxQL query."""
    return dashboard.AnnotationQuery(name=name, datasource=datasource(), enable=True, hide=False,
                                     icon_color=icon_color,
                                     target=InfluxQLAnnotationTarget(query, text_column, tags_column))


class Built(cogbuilder.Builder[typing.Any]):
    """A model object already built, where a builder is asked for."""

    def __init__(self, built: object) -> None:
        self._built = built

    def build(self) -> typing.Any:
        """The object."""
        return self._built
