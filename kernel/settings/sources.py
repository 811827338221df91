"""The checks between sources, profiles and the devices that report through them."""

from __future__ import annotations

from collections.abc import Sequence

from kernel.settings.place import DeviceEntry
from kernel.settings.problems import ReferenceProblem, _unique
from kernel.settings.profiles import Profile
from kernel.sources import SourceConfig

# Sources whose messages have no standard shape: every device needs a profile.
NEEDS_PROFILE = frozenset({"ctwing", "onenet"})
# The only source that runs a profile's codec (on a LoRaWAN uplink's bytes).
RUNS_CODECS = "chirpstack"


def address_key(source: SourceConfig, address: str) -> str:
    """An address as the source's messages spell it: a DevEUI in any case is one device."""
    return address.lower() if source.type == RUNS_CODECS else address


def check_sources(sources: Sequence[SourceConfig], profiles: Sequence[Profile], every_profile: dict[str, Profile],
                  devices: Sequence[DeviceEntry]) -> None:
    """Raise ReferenceProblem at the first reference that does not resolve."""
    _unique("source", [s.id for s in sources], ("sources", "id"))
    _unique("profile", [p.id for p in profiles], ("profiles", "id"))
    by_id = {s.id: s for s in sources}
    used: set[str] = set()
    for i, s in enumerate(sources):
        if s.profile is not None:
            _profile_of(every_profile, s.profile, ("sources", i, "profile"), f"source {s.id!r}")
            used.add(s.profile)
    seen: dict[tuple[str, str, int], str] = {}
    for i, d in enumerate(devices):
        if d.source is None:
            continue
        source = by_id.get(d.source)
        if source is None:
            raise ReferenceProblem(("devices", i, "source"), f"device {d.id!r} names source {d.source!r}, "
                                   "which is not listed under sources")
        if d.port is not None and not source.has_ports:
            raise ReferenceProblem(("devices", i, "port"), f"a {source.type} source has no ports: "
                                   f"only tasmota and shelly addresses have several channels")
        key = (source.id, address_key(source, d.address or ""), d.port or 1)
        if key in seen:
            same_port = " (same port)" if source.has_ports else ""
            raise ReferenceProblem(("devices", i, "address"), f"device {d.id!r} has the address of device "
                                   f"{seen[key]!r} in source {source.id!r}{same_port}")
        seen[key] = d.id
        _check_device_profile(i, d, source, every_profile, used)
    for i, p in enumerate(profiles):
        if p.id not in used:
            raise ReferenceProblem(("profiles", i, "id"), f"profile {p.id!r} is not used by any source or device")


def _check_device_profile(i: int, d: DeviceEntry, source: SourceConfig, every_profile: dict[str, Profile],
                          used: set[str]) -> None:
    name = d.profile or source.profile
    if name is None:
        if source.type in NEEDS_PROFILE:
            raise ReferenceProblem(("devices", i, "source"), f"device {d.id!r} reports through a {source.type} "
                                   f"source, whose messages need a profile: give the source or the device one")
        return
    loc = ("devices", i, "profile") if d.profile is not None else ("devices", i, "source")
    profile = _profile_of(every_profile, name, loc, f"device {d.id!r}")
    used.add(name)
    if profile.device_type != d.type:
        raise ReferenceProblem(loc, f"device {d.id!r} is a {d.type.value} but its profile {name!r} makes "
                               f"{profile.device_type.value} readings")
    if profile.codec is not None and source.type != RUNS_CODECS:
        raise ReferenceProblem(loc, f"profile {name!r} has a codec, which only a {RUNS_CODECS} source runs")
    missing = sorted(profile.variables() - set(d.vars))
    if missing:
        raise ReferenceProblem(("devices", i, "vars"), f"device {d.id!r}'s profile {name!r} reads "
                               f"variable {missing[0]!r}: give it under vars")


def _profile_of(every: dict[str, Profile], name: str, loc: tuple[str | int, ...], who: str) -> Profile:
    found = every.get(name)
    if found is None:
        known = ", ".join(sorted(every)) or "none"
        raise ReferenceProblem(loc, f"{who} names profile {name!r}, which is not defined (profiles: {known})")
    return found
