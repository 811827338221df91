"""Loading the configuration file."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path

from kernel.errors import ConfigError
from kernel.settings import Settings, parse_settings
from kernel.settings.parsing import ProfileFile, locate_line, parse_profiles
from kernel.settings.profiles import Profile
from rules.spec import RuleSet, default_rules_text, parse_rules, with_overrides

# The profiles that come with the service (docs/devices.md, "Profiles that come with the service").
LIBRARY = Path(str(resources.files("app").joinpath("defaults/profiles")))


def load_settings(path: str | Path) -> Settings:
    """Read and validate a configuration file (with CB_* environment overrides)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from None
    return settings_from_text(text, source=str(p), base_dir=p.resolve().parent)


def settings_from_text(text: str, *, source: str, base_dir: Path | None = None,
                       env: Mapping[str, str] | None = None) -> Settings:
    """A site file's settings with the built-in profiles and its profile files; each codec it uses is
    compiled once here, so a codec that does not load is a configuration error with its line."""

    def read(name: str) -> ProfileFile:
        path = Path(name) if base_dir is None else base_dir / name
        return ProfileFile(path.read_text(encoding="utf-8"), str(path), str(path.resolve().parent))

    settings = parse_settings(text, source=source, env=env, library=library(), base_dir=str(base_dir or "."),
                              read=read)
    check_codecs(settings, text, source)
    return settings


@cache
def library() -> tuple[Profile, ...]:
    """The built-in profiles, each file of app/defaults/profiles read once."""
    out: list[Profile] = []
    for path in sorted(LIBRARY.glob("*.yaml")):
        out += parse_profiles(ProfileFile(path.read_text(encoding="utf-8"), f"built-in profiles {path.name}",
                                          str(path.parent)))
    return tuple(out)


def check_codecs(settings: Settings, text: str, source: str) -> None:
    """Every codec a source or device uses loads (ConfigError naming the profile's codec otherwise)."""
    from ingest.sources.codec import CodecError, JsCodec

    profiles = settings.all_profiles()
    used = {d.profile for d in settings.devices if d.profile} | {s.profile for s in settings.sources if s.profile}
    for pid in sorted(used):
        codec = profiles[pid].codec if pid in profiles else None
        if codec is None:
            continue
        try:
            JsCodec.from_file(codec)
        except (CodecError, OSError) as exc:
            index = next((i for i, p in enumerate(settings.profiles) if p.id == pid), None)
            line = locate_line(text, ("profiles", index, "codec")) if index is not None else None
            where = f"{source}:{line}" if line else source
            raise ConfigError(f"{where}: profile {pid!r}: codec {codec}: {exc}") from None


def default_site_text() -> str:
    """The embedded example site used by `cbrain demo`."""
    return resources.files("app").joinpath("defaults/site.yaml").read_text(encoding="utf-8")


def read_rules(path: str | Path) -> RuleSet:
    """A rules file, validated; ConfigError with file:line otherwise."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the rules file: {exc.strerror}") from None
    return parse_rules(text, source=str(p))


def load_ruleset(settings: Settings) -> RuleSet:
    """The rules file the settings name (or the built-in rules), with the site's rule_overrides."""
    if settings.rules is None:
        ruleset = parse_rules(default_rules_text(), source="built-in rules")
    else:
        ruleset = read_rules(settings.rules)
    return with_overrides(ruleset, settings.rule_overrides, source="site file")
