"""Broker identities (docs/security.md): Mosquitto's password file, its ACL, and credentials.csv.

Every device listed in the site file gets its own account, which may publish only to its own two
topics (telemetry and status) and subscribe to nothing; the service's account may subscribe under
the prefix (and to each source's topics) and publish the MQTT channel's alerts. A source on the
broker (a Zigbee2MQTT hub, ChirpStack, Tasmota or Shelly devices) gets one account, named by its
id, for its own topic trees; the devices behind it get none. MQTT does not tell a subscriber which
client published a message, so this ACL is what stops one device from speaking for another.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import grp
import hashlib
import hmac
import io
import os
import pwd
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from kernel.errors import CBError, ConfigError
from kernel.ids import is_identifier
from kernel.settings import Settings
from kernel.topics import alerts_topic, status_topic, telemetry_topic

# Mosquitto 2's own password hashing ($7$): PBKDF2-HMAC-SHA512, 101 iterations, a 12-byte salt and a
# 64-byte key, both base64 (mosquitto_passwd writes the same).
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12
KEY_BYTES = 64
# 24 random bytes: 192 bits, far beyond guessing, and URL- and CSV-safe.
PASSWORD_BYTES = 24


@dataclass(frozen=True, slots=True)
class Account:
    """One broker account: whose it is, the user name, the password and the topics it may use."""

    device_id: str
    username: str
    password: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Provisioned:
    """What `provision` wrote."""

    accounts: list[Account]
    created: int  # accounts with a new password
    kept: int
    service_password_from_config: bool


def hash_password(password: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """The password file's hash of password: `$7$iterations$salt$key`."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, KEY_BYTES)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def check_password(password: str, hashed: str) -> bool:
    """Whether password matches a `$7$` hash of the password file."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt, key = base64.b64decode(parts[3], validate=True), base64.b64decode(parts[4], validate=True)
    except ValueError:
        return False
    got = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]), len(key))
    return hmac.compare_digest(got, key)


def new_password() -> str:
    """A fresh random password."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def _check_identity(what: str, value: str) -> None:
    if not is_identifier(value):
        raise ConfigError(f"{what} {value!r} is not a valid broker identity (must match ^[a-z0-9][a-z0-9_-]{{0,63}}$)")


def plan_accounts(settings: Settings, known: dict[str, str], rotate: bool = False) -> tuple[list[Account], int]:
    """The accounts of a site: the service first, then every listed device; passwords from known
    (device id -> password) unless rotate. Returns the accounts and how many got a new password."""
    mqtt = settings.mqtt
    prefix = mqtt.prefix
    config_user, config_password = mqtt.credentials()
    service_id = mqtt.client_id
    service_user = config_user or service_id
    _check_identity("mqtt.client_id", service_id)
    _check_identity("mqtt.username", service_user)
    created = 0

    def password_for(device_id: str) -> str:
        nonlocal created
        if not rotate and device_id in known and known[device_id]:
            return known[device_id]
        created += 1
        return new_password()

    # A password in the site file is what the service connects with: it is rotated there, not here.
    service_password = config_password or password_for(service_id)
    sub = ([f"{prefix}/{c}/#" for c in mqtt.communities] if mqtt.communities else [f"{prefix}/#"])
    # $SYS: the broker's own state, which docker-compose's healthcheck reads with the service's account.
    hubs = source_accounts(settings)
    accounts = [Account(service_id, service_user, service_password, (alerts_topic(prefix, "+"),),
                        (*sub, *(t for _, _, read in hubs for t in read), "$SYS/#"))]
    users = {service_user: "the service"}
    for source_id, trees, _ in hubs:
        _check_identity("source id", source_id)
        if source_id in users:
            raise ConfigError(f"source id {source_id!r} is also {users[source_id]}: broker user names must be unique")
        users[source_id] = "a source"
        # The hub (or the source's devices) publish and read their own commands in their trees.
        accounts.append(Account(source_id, source_id, password_for(source_id), trees, trees))
    for d in settings.devices:
        if d.source is not None:
            continue  # it reports through its source, which has the account
        _check_identity("device id", d.id)
        if d.id in users:
            raise ConfigError(f"device id {d.id!r} is used twice ({users[d.id]} and community {d.community!r}): "
                              "broker user names must be unique")
        users[d.id] = f"community {d.community!r}"
        accounts.append(Account(d.id, d.id, password_for(d.id),
                                (telemetry_topic(prefix, d.community, d.type.value, d.id),
                                 status_topic(prefix, d.community, d.type.value, d.id)), ()))
    return accounts, created


def source_accounts(settings: Settings) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """For each source on the broker: its id, the topic trees its hub or devices use (read and
    write), and the filters the service reads it by (docs/devices.md, "Connecting the devices you have")."""
    from ingest.sources.reader import SourceReader
    from kernel.site import Site

    if not settings.sources:
        return []
    reader = SourceReader(settings, Site(settings), lambda *a: None)  # type: ignore[arg-type]
    out = []
    for adapter in reader.adapters:
        read = tuple(adapter.subscriptions())
        if read:
            out.append((adapter.config.id, adapter.topic_trees(), read))
    return out


def read_credentials(path: Path) -> dict[str, str]:
    """device id -> password from an existing credentials.csv (empty when there is none)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    found: dict[str, str] = {}
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or row[0].startswith("#") or row == ["device_id", "username", "password"]:
            continue
        if len(row) != 3:
            raise ConfigError(f"{path}:{number}: expected device_id,username,password")
        found[row[0]] = row[2]
    return found


def render_passwd(accounts: list[Account]) -> str:
    """The Mosquitto password file."""
    return "".join(f"{a.username}:{hash_password(a.password)}\n" for a in accounts)


def render_acl(accounts: list[Account]) -> str:
    """The Mosquitto ACL file: no pattern for anyone else, exact topics for devices."""
    lines = ["# Written by `cbrain mqtt provision`; regenerate rather than edit.",
             "# Devices publish only to their own telemetry and status topics and subscribe to nothing;",
             "# a source (a hub) reads and writes its own topic trees; the service reads under the prefix",
             "# and the sources' topics and writes the alerts topics. A client without a",
             "# `user` section below (anonymous, or an unknown user) may do nothing.", ""]
    for a in accounts:
        lines.append(f"user {a.username}")
        lines += [f"topic read {t}" for t in a.subscribe]
        lines += [f"topic write {t}" for t in a.publish]
        lines.append("")
    return "\n".join(lines)


def render_credentials(accounts: list[Account]) -> str:
    """credentials.csv: `device_id,username,password`, the format `cbrain simulate --credentials` reads."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["device_id", "username", "password"])
    for a in accounts:
        writer.writerow([a.device_id, a.username, a.password])
    return out.getvalue()


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write text to path atomically, created with mode (never readable by others in between)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)  # the umask may have taken bits away
    os.replace(tmp, path)


@dataclass(frozen=True, slots=True)
class Owner:
    """Who the broker runs as: the owner given to passwd and acl (`--owner USER[:GROUP]`)."""

    spec: str
    uid: int
    gid: int


def parse_owner(spec: str) -> Owner:
    """USER[:GROUP], as names or numbers (a container's uid need not exist here); without a group,
    the user's own. CBError for a name this system does not know."""
    user, _, group = spec.partition(":")
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        uid, gid = entry.pw_uid, entry.pw_gid
    except KeyError:
        if not user.isdigit():
            raise CBError(f"--owner {spec}: no user {user!r} on this system") from None
        uid = gid = int(user)  # a container's user, unknown here: its group has its number
    if group.isdigit():
        gid = int(group)
    elif group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise CBError(f"--owner {spec}: no group {group!r} on this system") from None
    return Owner(spec, uid, gid)


def owner_name(uid: int) -> str:
    """A user's name and uid, as `ls -l` would name it."""
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def hand_over(out: Path, owner: Owner) -> bool:
    """Give passwd and acl to the broker's user; let it into the directory if it could not enter
    (its group gets search permission, not listing). Whether the directory was changed."""
    try:
        for name in ("passwd", "acl"):
            os.chown(out / name, owner.uid, owner.gid)
        st = out.stat()
        bit = (stat.S_IXUSR if st.st_uid == owner.uid else stat.S_IXGRP if st.st_gid == owner.gid
               else stat.S_IXOTH)
        if st.st_mode & bit:
            return False
        os.chown(out, -1, owner.gid)
        os.chmod(out, stat.S_IMODE(st.st_mode) | stat.S_IXGRP)
        return True
    except PermissionError:
        raise CBError(f"{out}: cannot give passwd and acl to {owner.spec}: only root can "
                      "(run as root, or chown them as root)") from None


def provision(settings: Settings, out: Path, rotate: bool = False) -> Provisioned:
    """Write out/passwd, out/acl and out/credentials.csv for the site; keep passwords unless rotate."""
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{out}: cannot create the directory: {exc.strerror}") from None
    if not out.is_dir():
        raise ConfigError(f"{out}: not a directory")
    known = read_credentials(out / "credentials.csv")
    accounts, created = plan_accounts(settings, known, rotate)
    try:
        write_private(out / "passwd", render_passwd(accounts))
        # Not secret, but newer Mosquitto releases warn about ACL files that others may read.
        write_private(out / "acl", render_acl(accounts))
        write_private(out / "credentials.csv", render_credentials(accounts))
    except OSError as exc:
        raise ConfigError(f"{out}: cannot write: {exc.strerror}") from None
    _, config_password = settings.mqtt.credentials()
    return Provisioned(accounts, created, len(accounts) - created, bool(config_password))
