"""Secrets left at the public example values: refused beyond loopback, warned about on it.

The known values are read, at check time, from the example site files that ship with the code
(examples/site.yaml; the demo's app/defaults/site.yaml, the same with devices of other systems;
examples/scenario-site.yaml, installed as device_sim/scenarios/site.yaml): every API token, webhook
or robot secret, push source's token (CTWing, OneNET) and broker or database password in them is
public.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from kernel.errors import ConfigError
from kernel.settings import Settings

_HERE = Path(__file__).resolve().parent
EXAMPLE_FILES = (
    _HERE.parent / "examples" / "site.yaml",
    _HERE.parent / "examples" / "scenario-site.yaml",
    _HERE / "defaults" / "site.yaml",
    _HERE.parent / "device_sim" / "scenarios" / "site.yaml",
)
# The naming of the examples' secrets, so that an example value is caught even where its file is absent.
EXAMPLE_PREFIXES = ("example-secret-", "example-token-")


def _url_password(url: object) -> str | None:
    if not isinstance(url, str):
        return None
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def known_example_secrets(files: tuple[Path, ...] = EXAMPLE_FILES) -> set[str]:
    """Every secret value found in the example site files that exist."""
    return set(_known(files, tuple(_mtime(p) for p in files)))


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


@functools.lru_cache(maxsize=8)
def _known(files: tuple[Path, ...], _mtimes: tuple[float | None, ...]) -> frozenset[str]:
    """(Read once per version of the files: a cluster instance starts a service per partition it holds,
    and reading the example files took over a second each time.)"""
    found: set[str] = set()
    for path in files:
        try:
            raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(raw, dict):
            continue
        for section in ("mqtt", "influx"):
            part = raw.get(section)
            if isinstance(part, dict):
                for value in (part.get("password"), _url_password(part.get("url"))):
                    if isinstance(value, str) and value:
                        found.add(value)
        for t in [*(raw.get("api_tokens") or []), *(raw.get("sources") or [])]:
            if isinstance(t, dict) and isinstance(t.get("token"), str):
                found.add(t["token"])
        for r in raw.get("recipients") or []:
            for c in (r.get("channels") or []) if isinstance(r, dict) else []:
                if isinstance(c, dict):
                    for key in ("secret", "previous_secret", "old_secret"):
                        if isinstance(c.get(key), str) and c[key]:
                            found.add(c[key])
    return frozenset(found)


def _is_example(value: str | None, known: set[str]) -> bool:
    return bool(value) and (value in known or str(value).startswith(EXAMPLE_PREFIXES))


def example_secrets_in(settings: Settings, known: set[str] | None = None) -> list[str]:
    """Where settings still hold a public example secret, one short phrase each."""
    known = known_example_secrets() if known is None else known
    digests = {hashlib.sha256(v.encode()).hexdigest() for v in known}
    out: list[str] = []
    for i, t in enumerate(settings.api_tokens):
        who = f"recipient {t.recipient}" if t.recipient else f"role {t.role}"
        if _is_example(t.token, known):
            out.append(f"api_tokens[{i}] ({who}) is the example token {t.token!r}")
        elif t.token is None and t.digest in digests:
            out.append(f"api_tokens[{i}] ({who}) is the digest of an example token")
    for r in settings.recipients:
        for j, ch in enumerate(r.channels):
            # The channel model may name its secrets as fields or keep them as extra keys.
            for key in ("secret", "previous_secret", "old_secret"):
                value = getattr(ch, key, None) or (ch.model_extra or {}).get(key)
                if isinstance(value, str) and _is_example(value, known):
                    out.append(f"recipient {r.id} channel {j} ({ch.type}) {key} is the example value {value!r}")
    for s in settings.sources:
        token = getattr(s, "token", None)
        if isinstance(token, str) and _is_example(token, known):
            out.append(f"source {s.id} ({s.type}) token is the example value {token!r}")
    mqtt_user, mqtt_password = settings.mqtt.credentials()
    if mqtt_password and _is_example(mqtt_password, known):
        out.append(f"mqtt password of {mqtt_user!r} is an example value")
    influx_password = settings.influx.password or _url_password(settings.influx.url)
    if influx_password and _is_example(influx_password, known):
        out.append("influx password is an example value")
    return out


def is_loopback(host: str) -> bool:
    """Whether an HTTP listen address reaches this host only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def check_example_secrets(settings: Settings) -> list[str]:
    """The warnings to show on loopback; ConfigError naming each example secret beyond loopback."""
    found = example_secrets_in(settings)
    if found and not is_loopback(settings.http.host):
        raise ConfigError(f"http.host {settings.http.host} is reachable beyond this machine, and secrets are "
                          f"still the public example values: {'; '.join(found)}. Replace them "
                          "(cbrain token new; openssl rand -hex 32) before listening there")
    return [f"example secret in use (fine on loopback only): {f}" for f in found]
