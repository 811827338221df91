"""Reading the configuration file: YAML, the CB_* environment overrides, located one-line errors."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from kernel.channels import CHANNEL_CONFIGS
from kernel.errors import ConfigError
from kernel.settings.problems import ReferenceProblem
from kernel.settings.profiles import Profile, with_codec_path
from kernel.settings.site_file import Settings

ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "CB_MQTT_URL": ("mqtt", "url"),
    "CB_INFLUX_URL": ("influx", "url"),
    "CB_INFLUX_DB": ("influx", "database"),
    "CB_INFLUX_TOKEN": ("influx", "token"),
    "CB_INFLUX_FLAVOR": ("influx", "flavor"),
    "CB_INFLUX_ORG": ("influx", "org"),
    "CB_INFLUX_BUCKET": ("influx", "bucket"),
    "CB_HTTP_PORT": ("http", "port"),
    "CB_STATE_DIR": ("state_dir",),
    "CB_CLUSTER_INSTANCE": ("cluster", "instance"),
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
    nats = env.get("CB_CLUSTER_NATS")
    if nats is not None:  # comma-separated: the cluster's node URLs
        cluster = out.get("cluster")
        out["cluster"] = (dict(cluster) if isinstance(cluster, dict) else {}) | {
            "nats": [u.strip() for u in nats.split(",") if u.strip()]}
    return out


@dataclass(frozen=True, slots=True)
class ProfileFile:
    """A file of profiles as read: its text, the name errors give it, and the directory its codecs are in."""

    text: str
    source: str
    base_dir: str | None = None


def parse_settings(text: str, *, source: str = "config", env: Mapping[str, str] | None = None,
                   library: Sequence[Profile] = (), base_dir: str | None = None,
                   read: Callable[[str], ProfileFile] | None = None) -> Settings:
    """Parse and validate a YAML configuration; raise ConfigError with a one-line, located reason.

    `library` is the built-in profiles; `read` reads a file named by `profile_files` (relative to
    base_dir, the site file's directory); `base_dir` also anchors the site's own profiles' codecs."""
    raw = parse_yaml(text, source)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, not {type(raw).__name__}")
    raw = apply_env(raw, os.environ if env is None else env)
    files = _profile_files(raw, text, source, read)
    inline = raw.get("profiles")
    if files:
        raw["profiles"] = [*(inline if isinstance(inline, list) else []), *(p for _, p in files)]
    try:
        settings = Settings.model_validate(raw, context={"library": {p.id: p for p in library}})
    except ReferenceProblem as exc:
        raise _reference_error(exc, text, source, len(inline) if isinstance(inline, list) else 0, files) from None
    except ValidationError as exc:
        raise _validation_error(exc, text, source, env) from None
    if base_dir is not None and any(p.codec for p in settings.profiles[: len(settings.profiles) - len(files)]):
        own = [with_codec_path(p, base_dir) for p in settings.profiles[: len(settings.profiles) - len(files)]]
        settings = settings.model_copy(update={"profiles": own + settings.profiles[len(own):]})
    return settings


def _validation_error(exc: ValidationError, text: str, source: str, env: Mapping[str, str] | None) -> ConfigError:
    err = exc.errors()[0]
    loc = _without_union_tags(_key_loc(err))
    line = locate_line(text, loc)
    where = f"{source}:{line}" if line else source
    path = ".".join(str(p) for p in loc) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    env_hint = next((f" (from {var})" for var, p in ENV_OVERRIDES.items()
                     if p == loc[: len(p)] and var in (os.environ if env is None else env)), "")
    return ConfigError(f"{where}: {path}: {msg}{env_hint}{more}")


def _reference_error(exc: ReferenceProblem, text: str, source: str, inline: int,
                     files: list[tuple[tuple[ProfileFile, int], Profile]]) -> ConfigError:
    """A reference problem located in the file it is in: the site file, or a profile file."""
    loc = exc.loc
    if len(loc) >= 2 and loc[0] == "profiles" and isinstance(loc[1], int) and loc[1] >= inline:
        (origin, index), _ = files[loc[1] - inline]
        loc = (index, *loc[2:])
        text, source = origin.text, origin.source
        line = locate_line(text, loc) or locate_line(text, ("profiles", *loc))
        path = ".".join(map(str, ("profiles", *loc)))
    else:
        line = locate_line(text, loc)
        path = ".".join(map(str, loc))
    where = f"{source}:{line}" if line else source
    return ConfigError(f"{where}: {path}: {exc}")


def _profile_files(raw: dict[str, Any], text: str, source: str,
                   read: Callable[[str], ProfileFile] | None) -> list[tuple[tuple[ProfileFile, int], Profile]]:
    """The profiles of each file named by `profile_files`, each with its file and index there."""
    names = raw.get("profile_files") or []
    if not isinstance(names, list):
        return []  # the model says what is wrong with it
    out: list[tuple[tuple[ProfileFile, int], Profile]] = []
    for i, name in enumerate(names):
        if not isinstance(name, str):
            continue
        if read is None:
            line = locate_line(text, ("profile_files", i))
            raise ConfigError(f"{source}:{line}: profile_files.{i}: profile files are read only from a site file "
                              "on disk (cbrain run --config FILE)")
        try:
            found = read(name)
        except OSError as exc:
            line = locate_line(text, ("profile_files", i))
            raise ConfigError(f"{source}:{line}: profile_files.{i}: cannot read {name}: "
                              f"{exc.strerror or exc}") from None
        out += [((found, j), p) for j, p in enumerate(parse_profiles(found))]
    return out


def parse_profiles(found: ProfileFile) -> list[Profile]:
    """The profiles of a profile file (a list of profiles, or a mapping with `profiles:`), validated;
    ConfigError naming the file and line otherwise."""
    raw = parse_yaml(found.text, found.source)
    items = raw.get("profiles") if isinstance(raw, dict) else raw
    prefix: tuple[str, ...] = ("profiles",) if isinstance(raw, dict) else ()
    if not isinstance(items, list):
        raise ConfigError(f"{found.source}: a profile file holds a list of profiles (or `profiles:` and a list)")
    out: list[Profile] = []
    for i, item in enumerate(items):
        try:
            out.append(with_codec_path(Profile.model_validate(item), found.base_dir))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = (*prefix, i, *_key_loc(err))
            line = locate_line(found.text, loc)
            where = f"{found.source}:{line}" if line else found.source
            raise ConfigError(f"{where}: {'.'.join(map(str, loc))}: "
                              f"{err['msg'].removeprefix('Value error, ')}") from None
    return out


def _key_loc(err: Any) -> tuple[Any, ...]:
    """An error's path, down to the key it is about when the error names one (a profile's field)."""
    loc = tuple(err["loc"])
    if err["type"] == "unknown_field":
        return (*loc, "fields", err["ctx"]["field"])
    return loc


def _without_union_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Pydantic's path names the channel type it tried (`channels.0.webhook.secret`): not a key of the file."""
    return tuple(k for i, k in enumerate(loc)
                 if not (i >= 2 and loc[i - 2] == "channels" and isinstance(loc[i - 1], int) and k in CHANNEL_CONFIGS))


class _Loader(yaml.SafeLoader):
    """safe_load's loader, with an impossible date (2031-02-31) a located YAML error rather than a bare
    ValueError out of the constructor."""

    def construct_yaml_timestamp(self, node: Any) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(None, None, f"{node.value!r} is not a date ({exc})",
                                                    node.start_mark) from None


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


def parse_yaml(text: str, source: str) -> Any:
    """The YAML document in text; ConfigError naming source:line when it is not valid YAML."""
    try:
        return yaml.load(text, _Loader)  # a SafeLoader
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
