"""An alert as the viewer reads it, in their language: its summary (rendered again from the alert's
fields by alerts.summary when the viewer's language is not the service's), the rule's name, the value
with its field and unit, the place in words, and a link that opens the map app at the place."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from alerts.summary import RULE_TITLES, summarise, value_words
from app.view import ServiceView
from app.words import words
from kernel.alerting import Alert, AlertStatus, Level, Measure
from kernel.devices import CATALOG
from kernel.ids import DeviceType, is_identifier
from kernel.resources import KNOCKS, SUPPLY, target_of
from kernel.settings import Location

# Amap's URI API: a marker at GCJ-02 coordinates; on a phone it opens the 高德地图 app when installed.
AMAP_MARKER = "https://uri.amap.com/marker?position={lon},{lat}&name={name}&coordinate=gaode&callnative=1"


def device_type_name(device_type: str, lang: str) -> str:
    """A device type as people call it (烟感, smoke detector); the id itself for a type not in the catalog."""
    found = DeviceType.lookup(device_type)
    kind = CATALOG.get(found) if found is not None else None
    return kind.name(lang) if kind is not None else device_type


def place_text(view: ServiceView, a: dict[str, Any], lang: str) -> str:
    """community › building › location text of an alert or device."""
    c = view.site.communities.get(a["community"])
    parts = [c.name if c else a["community"]]
    b = next((b for b in (c.buildings if c else []) if b.id == a["building"]), None)
    parts.append(b.name if b else a["building"])
    entry = view.site.registered.get((a["community"], a["device_id"]))
    text = entry.location.text if entry is not None and entry.location is not None else None
    if text is None and b is not None and b.location is not None:
        text = b.location.text
    if text:
        parts.append(text)
    return " › ".join(parts)


def measure_of(view: ServiceView, rule: str) -> Measure | None:
    """What an alert of a rule measures: the field of its first level's condition, or the rising field."""
    spec = next((r for r in view.ruleset().rules if r.id == rule), None)
    return spec.measure() if spec is not None else None


class AlertWords:
    """An alert's words in one language."""

    def __init__(self, view: ServiceView, lang: str) -> None:
        self.view, self.lang = view, lang
        self.zh = lang != "en"

    def _alert(self, a: dict[str, Any]) -> Alert:
        return Alert(id=a["id"], rule=a["rule"], level=Level(a["level"]), status=AlertStatus(a["status"]),
                     community=a["community"], building=a["building"], grid=a["grid"], device_id=a["device_id"],
                     device_type=a["device_type"], value=a["value"], started_ns=0, updated_ns=0,
                     summary=a["summary"] or "", measure=measure_of(self.view, a["rule"]))

    def summary(self, a: dict[str, Any]) -> str:
        """The alert's one line: as stored when it is in the viewer's language, else rendered in it."""
        if self.zh == (self.view.settings.locale != "en") and a.get("summary"):
            return str(a["summary"])
        return summarise(self.view.site, self._alert(a), self.lang)

    def place(self, a: dict[str, Any]) -> str:
        """community › building › location text."""
        return place_text(self.view, a, self.lang)

    def subject(self, a: dict[str, Any]) -> dict[str, str]:
        """What the alert is about, as its page names and links it: a device by its id and kind,
        linked to its page; for the alert of a supply, a shelter or late door knocks (CONTRACT §13)
        that supply or shelter by name on its page, or the alert whose door knocks are late; for any
        other place that is not a device (a rule over a building or a community, smoke.multi's
        "building:b01"; a roster), that building or community by name, else the place, unlinked."""
        t = words(self.lang)
        c = self.view.site.communities.get(a["community"])
        about = target_of(a["device_id"])
        if about is None:
            device_id, kind_text = a["device_id"], device_type_name(a["device_type"], self.lang)
            if is_identifier(device_id):
                return {"label": t["device"], "text": device_id, "href": f"/device/{quote(device_id, safe='')}",
                        "kind": kind_text}
            group, _, place = device_id.partition(":")
            b = next((b for b in (c.buildings if c else []) if b.id == place), None) if group == "building" else None
            text = b.name if b else c.name if c and group == "community" else device_id
            return {"label": t["device"], "text": text, "href": "", "kind": kind_text}
        kind, item = about
        if kind == KNOCKS:
            return {"label": t["knocks"], "text": t["knocks_of"], "href": f"/alert/{quote(item, safe='')}#knocks",
                    "kind": ""}
        items = (c.supplies if kind == SUPPLY else c.shelters) if c is not None else []
        label, page, anchor = (("subject_supply", "/supplies", "s-") if kind == SUPPLY else
                               ("subject_shelter", "/shelters", "sh-"))
        return {"label": t[label], "text": next((x.name for x in items if x.id == item), item),
                "href": f"{page}#{anchor}{quote(item, safe='')}", "kind": ""}

    def rule(self, rule: str) -> str:
        """A rule by its name (电动车充电过热, e-bike charger overheating); the id for a rule without one."""
        return RULE_TITLES.get(rule, (rule, rule))[0 if self.zh else 1]

    def value(self, a: dict[str, Any]) -> str:
        """The value with its field and unit (温度 66.6 °C), or "–" without one."""
        if a.get("value") is None:
            return "–"
        return value_words(self._alert(a), zh=self.zh).strip().removeprefix("（").removesuffix("）").strip("()")

    def map_link(self, a: dict[str, Any]) -> str | None:
        """The Amap link to the device's place (its own coordinates, else its building's), or None."""
        c = self.view.site.communities.get(a["community"])
        b = next((b for b in (c.buildings if c else []) if b.id == a["building"]), None)
        entry = self.view.site.registered.get((a["community"], a["device_id"]))
        spots: list[Location | None] = [entry.location if entry is not None else None, b.location if b else None]
        at = next((x for x in spots if x is not None and x.lat is not None and x.lon is not None), None)
        if at is None:
            return None
        return AMAP_MARKER.format(lon=at.lon, lat=at.lat, name=quote(self.place(a), safe=""))
