"""The words shelters, supplies and door knocks share (CONTRACT §13): the rules the service raises about
them, what incident an alert is (which supplies fit it), and distances between places."""

from __future__ import annotations

import math
from enum import StrEnum

from kernel.alerting import Level

# The rules about a community's resources (their alerts are raised by resources/, not by readings).
SUPPLIES_EXPIRING = "supplies.expiring"
SUPPLIES_EXPIRED = "supplies.expired"
SUPPLIES_SHORT = "supplies.short"
SHELTER_FULL = "shelter.full"
DOOR_KNOCKS_LATE = "door_knocks.late"
RESOURCE_RULES = (SUPPLIES_EXPIRING, SUPPLIES_EXPIRED, SUPPLIES_SHORT, SHELTER_FULL, DOOR_KNOCKS_LATE)
LEVEL_OF = {SUPPLIES_EXPIRING: Level.BLUE, SUPPLIES_EXPIRED: Level.YELLOW, SUPPLIES_SHORT: Level.YELLOW,
            DOOR_KNOCKS_LATE: Level.YELLOW}  # shelter.full: yellow at 90 %, orange at 100 %
SHELTER_NEARLY_FULL = 0.9
# The alerts' device types and ids of these rules' places; a door_knocks.late alert's place is the
# alert whose door knocks are late.
SUPPLY, SHELTER, KNOCKS = "supply", "shelter", "knocks"


def target(kind: str, item_id: str) -> str:
    """The device_id of a resource's alert: "supply:sup-ext-b01", "shelter:sh-school", "knocks:<alert id>"."""
    return f"{kind}:{item_id}"


def target_of(device_id: str) -> tuple[str, str] | None:
    """(kind, id) of a resource alert's device_id (target's), None for a device's."""
    kind, sep, item_id = device_id.partition(":")
    return (kind, item_id) if sep and kind in (SUPPLY, SHELTER, KNOCKS) else None


class Knock(StrEnum):
    """Where a door knock is."""

    PENDING = "pending"
    REACHED = "reached"
    NOT_REACHED = "not_reached"


class Movement(StrEnum):
    """Why a supply's stock moves."""

    USED = "used"  # taken out (a negative delta)
    RESTOCKED = "restocked"  # put in (positive)
    COUNT = "count"  # a stock count's correction (either sign)
    EXPIRED = "expired"  # thrown away past its date (negative)


# Which incident a building's alert is, by its rule's family: the supplies whose `kind` has it fit.
_INCIDENT = {"smoke": "fire", "shed": "fire", "ebike": "fire", "water": "flood"}
# The levels whose building alerts carry shelters and supplies; door knocks come with red alone.
ON_HAND_LEVELS = (Level.ORANGE, Level.RED)


def incident_of(rule: str) -> str | None:
    """"fire" for smoke, battery-shed and e-bike rules, "flood" for water rules, None for the others."""
    return _INCIDENT.get(rule.partition(".")[0])


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine; plenty for the few kilometres of a street)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(min(1.0, a)))
