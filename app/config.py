"""Loading the configuration file."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from kernel.errors import ConfigError
from kernel.settings import Settings, parse_settings
from rules.spec import RuleSet, default_rules_text, parse_rules, with_overrides


def load_settings(path: str | Path) -> Settings:
    """Read and validate a configuration file (with CB_* environment overrides)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from None
    return parse_settings(text, source=str(p))


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
