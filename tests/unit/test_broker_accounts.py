"""`cbrain mqtt provision`: Mosquitto's password hashing, the ACL and credentials.csv, kept or rotated."""

from __future__ import annotations

import csv
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from app.broker_accounts import check_password, hash_password
from app.cli import main
from app.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "site.yaml"


def _rows(out: Path) -> dict[str, tuple[str, str]]:
    with (out / "credentials.csv").open(encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["device_id", "username", "password"]
    return {r[0]: (r[1], r[2]) for r in rows[1:]}


def _passwd(out: Path) -> dict[str, str]:
    return dict(line.split(":", 1) for line in (out / "passwd").read_text().splitlines())


def test_hash_is_mosquittos_pbkdf2_sha512_format() -> None:
    """`$7$101$salt$key`, and checking takes the right password only."""
    hashed = hash_password("s3cret")
    kind, iterations, salt, key = hashed.split("$")[1:]
    assert (kind, iterations) == ("7", "101")
    assert len(salt) == 16 and len(key) == 88
    assert check_password("s3cret", hashed)
    assert not check_password("s3cret ", hashed)
    assert hash_password("s3cret") != hashed  # a new salt each time


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="no mosquitto_passwd")
def test_hash_checks_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    """The reference tool's own hash verifies with our check (the broker run in the integration test
    verifies ours)."""
    path = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(path), "alice", "horse battery"], check=True,
                   capture_output=True)
    hashed = path.read_text().strip().split(":", 1)[1]
    assert check_password("horse battery", hashed)
    assert not check_password("horse", hashed)


def test_provision_writes_accounts_acl_and_credentials(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One account per listed device plus the service; exact topics; secret files 0600."""
    out = tmp_path / "broker"
    assert main(["mqtt", "provision", "--config", str(EXAMPLE), "--out", str(out)]) == 0
    settings = load_settings(EXAMPLE)
    rows = _rows(out)
    assert set(rows) == {d.id for d in settings.devices} | {settings.mqtt.client_id}
    hashes = _passwd(out)
    for device_id, (user, password) in rows.items():
        assert check_password(password, hashes[user]), device_id
    for name in ("passwd", "acl", "credentials.csv"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
    acl = (out / "acl").read_text()
    sections = {block.splitlines()[0]: block.splitlines()[1:] for block in acl.split("\n\n")
                if block.startswith("user ")}
    assert sections["user cbrain-ingest"] == ["topic read cb/#", "topic read $SYS/#", "topic write cb/+/alerts"]
    assert sections["user sd-b01-0501"] == ["topic write cb/linfen-yicun/smoke_detector/sd-b01-0501/telemetry",
                                            "topic write cb/linfen-yicun/smoke_detector/sd-b01-0501/status"]
    assert all(not line.startswith("topic read") for user, lines in sections.items()
               if user != "user cbrain-ingest" for line in lines)
    assert "10 new passwords" in capsys.readouterr().out


def test_without_owner_the_output_names_the_owner_and_the_fix(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A broker running as its own user cannot read root's 0600 files: the command says so and how to fix it."""
    out = tmp_path / "broker"
    assert main(["mqtt", "provision", "--config", str(EXAMPLE), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    me = pwd.getpwuid(os.geteuid()).pw_name
    assert f"passwd and acl: mode 0600, owned by {me} (uid {os.geteuid()})" in said
    assert "Unable to open pwfile" in said and "--owner mosquitto" in said
    assert f"chown mosquitto: {out / 'passwd'} {out / 'acl'}" in said


def test_owner_gives_passwd_and_acl_to_the_user(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--owner USER chowns passwd and acl (to oneself needs no root); credentials.csv is not handed over."""
    out = tmp_path / "broker"
    me = pwd.getpwuid(os.geteuid())
    assert main(["mqtt", "provision", "--config", str(EXAMPLE), "--out", str(out), "--owner", me.pw_name]) == 0
    for name in ("passwd", "acl"):
        st = (out / name).stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (me.pw_uid, me.pw_gid, 0o600), name
    said = capsys.readouterr().out
    assert f"owned by {me.pw_name} (uid {me.pw_uid})" in said and "Unable to open pwfile" not in said


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files to another user")
def test_owner_another_user_can_enter_the_directory_and_read_only_its_files(tmp_path: Path) -> None:
    """As root: passwd and acl go to the broker's user and its group may enter (not list) the new 0700 directory."""
    nobody = pwd.getpwnam("nobody")
    out = tmp_path / "broker"
    assert main(["mqtt", "provision", "--config", str(EXAMPLE), "--out", str(out), "--owner", "nobody"]) == 0
    for name in ("passwd", "acl"):
        assert ((out / name).stat().st_uid, (out / name).stat().st_gid) == (nobody.pw_uid, nobody.pw_gid), name
    assert (out / "credentials.csv").stat().st_uid == 0
    st = out.stat()
    assert st.st_gid == nobody.pw_gid and stat.S_IMODE(st.st_mode) == 0o710
    assert main(["mqtt", "provision", "--config", str(EXAMPLE), "--out", str(tmp_path / "c"), "--owner",
                 "1883:1883"]) == 0
    assert (tmp_path / "c" / "passwd").stat().st_uid == 1883  # a container's user, unknown to this system


@pytest.mark.parametrize("owner", ["no-such-user-cb", "root:no-such-group-cb"])
def test_unknown_owner_is_one_line_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      owner: str) -> None:
    out = tmp_path / "broker"
    assert main(["mqtt", "provision", "--config", str(EXAMPLE), "--out", str(out), "--owner", owner]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"cbrain: --owner {owner}: no ")
    assert not out.exists()


def test_rerun_keeps_passwords_and_rotate_replaces_them(tmp_path: Path) -> None:
    """A second run keeps every password; --rotate gives every account a new one."""
    out = tmp_path / "broker"
    args = ["mqtt", "provision", "--config", str(EXAMPLE), "--out", str(out)]
    assert main(args) == 0
    first = _rows(out)
    assert main(args) == 0
    assert _rows(out) == first
    assert main([*args, "--rotate"]) == 0
    rotated = _rows(out)
    assert set(rotated) == set(first)
    assert all(rotated[k][1] != first[k][1] for k in first)


def test_service_password_from_the_site_file_is_used(tmp_path: Path) -> None:
    """mqtt.username / mqtt.password are what the service logs in with, so its account gets them."""
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    raw["mqtt"] = {"url": "mqtt://127.0.0.1:1883", "username": "svc", "password": "from-the-site-file"}
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    out = tmp_path / "broker"
    assert main(["mqtt", "provision", "--config", str(site), "--out", str(out), "--rotate"]) == 0
    assert _rows(out)["cbrain-ingest"] == ("svc", "from-the-site-file")


@pytest.mark.parametrize("mqtt", [{"client_id": "CBrain"}, {"client_id": "cbrain", "username": "svc user"},
                                  {"client_id": "x" * 65}])
def test_identities_outside_the_pattern_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    mqtt: dict[str, str]) -> None:
    """One line naming the identity, exit 2, nothing written."""
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    raw["mqtt"] = mqtt
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    out = tmp_path / "broker"
    assert main(["mqtt", "provision", "--config", str(site), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a valid broker identity" in err
    assert not (out / "passwd").exists()


def test_a_device_id_in_two_communities_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """User names are unique on the broker, so one id in two communities cannot have two accounts."""
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    raw["devices"].append({"id": "sd-b01-0501", "type": "smoke_detector", "community": "linfen-ercun"})
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    assert main(["mqtt", "provision", "--config", str(site), "--out", str(tmp_path / "b")]) == 2
    assert "used twice" in capsys.readouterr().err


def test_token_new_prints_a_token_and_its_digest_line(capsys: pytest.CaptureFixture[str]) -> None:
    """The printed line loads as an api_tokens entry whose digest is the printed token's."""
    import hashlib

    assert main(["token", "new", "--recipient", "worker-g1", "--config", str(EXAMPLE)]) == 0
    lines = capsys.readouterr().out.splitlines()
    token = lines[0].removeprefix("token: ")
    entry = yaml.safe_load(lines[-1].strip())[0]
    assert entry == {"token_sha256": hashlib.sha256(token.encode()).hexdigest(), "recipient": "worker-g1"}
    assert len(token) >= 40


@pytest.mark.parametrize(("mqtt", "expected"), [
    ({"url": "mqtt://h:1883"}, (None, None)),
    ({"url": "mqtt://svc:p%40ss@h:1883"}, ("svc", "p@ss")),
    ({"url": "mqtt://svc:from-url@h:1883", "username": "other", "password": "from-file"}, ("other", "from-file")),
    ({"url": "mqtt://h:1883", "username": "svc", "password": "pw"}, ("svc", "pw")),
    ({"url": "mqtt://svc:from-url@h:1883", "username": "svc"}, ("svc", "from-url")),
])
def test_service_credentials_come_from_the_settings_then_the_url(mqtt: dict[str, str],
                                                                  expected: tuple[str | None, str | None]) -> None:
    from kernel.settings import MqttSettings

    assert MqttSettings.model_validate(mqtt).credentials() == expected


@pytest.mark.parametrize(("mqtt", "message"), [
    ({"url": "mqtt://h:1883", "ca_file": "/ca.crt"}, "need a TLS url"),
    ({"url": "mqtts://h:8883", "key_file": "/k.pem"}, "key_file needs cert_file"),
])
def test_tls_files_are_checked(tmp_path: Path, mqtt: dict[str, str], message: str) -> None:
    from kernel.errors import ConfigError
    from kernel.settings import parse_settings

    with pytest.raises(ConfigError, match=message):
        parse_settings(yaml.safe_dump({"mqtt": mqtt}), env={})
