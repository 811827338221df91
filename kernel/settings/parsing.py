"""Reading the configuration file: YAML, the CB_* environment overrides, located one-line errors."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import ValidationError

from kernel.channels import CHANNEL_CONFIGS
from kernel.errors import ConfigError
from kernel.settings.site_file import ReferenceProblem, Settings

ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "CB_MQTT_URL": ("mqtt", "url"),
    "CB_INFLUX_URL": ("influx", "url"),
    "CB_INFLUX_DB": ("influx", "database"),
    "CB_HTTP_PORT": ("http", "port"),
    "CB_STATE_DIR": ("state_dir",),
}


def apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Return raw with the CB_* environment overrides of docs/operations.md applied."""
    out = dict(raw)
    for var, path in ENV_OVERRIDES.items():
        value = env.get(var)
        if value is None:
            continue
        node = out
        for key in path[:-1]:
            child = node.get(key)
            node[key] = dict(child) if isinstance(child, dict) else {}
            node = node[key]
        node[path[-1]] = value
    return out


def parse_settings(text: str, *, source: str = "config", env: Mapping[str, str] | None = None) -> Settings:
    """Parse and validate a YAML configuration; raise ConfigError with a one-line, located reason."""
    raw = parse_yaml(text, source)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, not {type(raw).__name__}")
    raw = apply_env(raw, os.environ if env is None else env)
    try:
        return Settings.model_validate(raw)
    except ReferenceProblem as exc:
        line = locate_line(text, exc.loc)
        where = f"{source}:{line}" if line else source
        raise ConfigError(f"{where}: {'.'.join(map(str, exc.loc))}: {exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = _without_union_tags(tuple(err["loc"]))
        line = locate_line(text, loc)
        where = f"{source}:{line}" if line else source
        path = ".".join(str(p) for p in loc) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        env_hint = next((f" (from {var})" for var, p in ENV_OVERRIDES.items()
                         if p == loc[: len(p)] and var in (os.environ if env is None else env)), "")
        raise ConfigError(f"{where}: {path}: {msg}{env_hint}{more}") from None


def _without_union_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Pydantic's path names the channel type it tried (`channels.0.webhook.secret`): not a key of the file."""
    return tuple(k for i, k in enumerate(loc)
                 if not (i >= 2 and loc[i - 2] == "channels" and isinstance(loc[i - 1], int) and k in CHANNEL_CONFIGS))


def parse_yaml(text: str, source: str) -> Any:
    """The YAML document in text; ConfigError naming source:line when it is not valid YAML."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None


def locate_line(text: str, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the YAML node at loc (keys and list indexes), or of its nearest parent."""
    try:
        node: Any = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for key in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if k.value == str(key):
                    line, nxt = k.start_mark.line + 1, v
                    break
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            node = None
    return line
