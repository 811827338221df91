"""The deployment files (Dockerfile, docker-compose.yml, deploy/) stay consistent with each other and the code."""

from __future__ import annotations

import getpass
import importlib.metadata
import json
import os
import queue
import re
import shlex
import shutil
import stat
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.client import ConnectFlags, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from app.broker_accounts import provision
from app.config import load_settings
from kernel.settings import ENV_OVERRIDES, Settings
from tests.servers import LOOPBACK, MOSQUITTO_BIN, Mosquitto, free_port, make_certificates

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
# InfluxDB 2.x or 3 Core in place of 1.8: a second file laid over docker-compose.yml (its header says why).
INFLUXDB2_FILE = ROOT / "docker-compose.influxdb2.yml"
INFLUXDB3_FILE = ROOT / "docker-compose.influxdb3.yml"
# The cluster (CONTRACT §12): the same checks apply to it; its own are in test_deploy_cluster.py.
CLUSTER_COMPOSE_FILE = ROOT / "docker-compose.cluster.yml"
COMPOSE_FILES = (COMPOSE_FILE, CLUSTER_COMPOSE_FILE)
# Every stack compose can run, as the files given to it with -f in order.
SINGLE_HOST_STACKS: dict[str, tuple[Path, ...]] = {
    "influxdb1.8": (COMPOSE_FILE,),
    "influxdb2": (COMPOSE_FILE, INFLUXDB2_FILE),
    "influxdb3": (COMPOSE_FILE, INFLUXDB3_FILE),
}
STACKS: dict[str, tuple[Path, ...]] = {**SINGLE_HOST_STACKS, "cluster": (CLUSTER_COMPOSE_FILE,)}
STORE_FILES = (INFLUXDB2_FILE, INFLUXDB3_FILE)
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
ACCOUNTS_DIR = ROOT / "deploy" / "mosquitto" / "accounts"
CERTS_DIR = ROOT / "deploy" / "mosquitto" / "certs"
DATASOURCES = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "influxdb.yaml"
DASHBOARD_PROVIDERS = ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "dashboards.yaml"
GRAFANA_PROVISIONING = "/etc/grafana/provisioning"

SITE_TARGET = "/etc/cbrain/site.yaml"
# The largest reading the contract allows; the broker must pass larger ones on so the service counts them.
MAX_READING_BYTES = 4096
TIMEOUT = 10.0


# --- Parsing helpers ---------------------------------------------------------------------------------


class Override:
    """A value tagged `!override` in a compose file: it replaces the earlier files' value instead of merging."""

    def __init__(self, value: Any) -> None:
        self.value = value


class Reset:
    """A value tagged `!reset`: the earlier files' value is removed."""


class _ComposeLoader(yaml.SafeLoader):
    """YAML as compose reads it, with its merge tags kept as Override and Reset."""


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_ComposeLoader.add_constructor("!override", lambda loader, node: Override(_tagged(loader, node)))
_ComposeLoader.add_constructor("!reset", lambda loader, node: Reset())


def load_compose_file(path: Path) -> dict[str, Any]:
    """Return one compose file as written, `!override` and `!reset` values wrapped."""
    data: dict[str, Any] = yaml.load(path.read_text(encoding="utf-8"), Loader=_ComposeLoader)
    return data


def _plain(value: Any) -> Any:
    """The value with any merge tags inside it taken as their values (as for a key the earlier files lack)."""
    if isinstance(value, Override):
        return _plain(value.value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not isinstance(v, Reset)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _mount_target(entry: Any) -> str:
    return str(entry["target"]) if isinstance(entry, dict) else str(entry).split(":")[1]


def _merge(base: Any, over: Any, where: tuple[str, ...]) -> Any:
    """Compose's merge of a later file's value into the earlier ones' (the Compose Specification's merge
    rules: mappings key by key, sequences appended, except command, entrypoint and healthcheck.test
    replaced and volumes and ports unique by their key; `!override` replaces, `!reset` removes)."""
    if isinstance(over, Override):
        return _plain(over.value)
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            if isinstance(value, Reset):
                merged.pop(key, None)
            else:
                merged[key] = _merge(base[key], value, (*where, key)) if key in base else _plain(value)
        return merged
    if isinstance(base, list) and isinstance(over, list):
        if where[-1] in ("command", "entrypoint") or where[-2:] == ("healthcheck", "test"):
            return _plain(over)
        if where[-1] == "volumes" and len(where) == 3:
            replaced = {_mount_target(entry) for entry in over}
            return [e for e in base if _mount_target(e) not in replaced] + _plain(over)
        return base + [e for e in _plain(over) if e not in base]
    return _plain(over)


def compose(files: Path | tuple[Path, ...] = COMPOSE_FILE) -> dict[str, Any]:
    """Return a stack's model: one compose file parsed, or several merged in order as `docker compose -f
    ... -f ...` merges them."""
    model: dict[str, Any] = {}
    for path in (files,) if isinstance(files, Path) else files:
        model = _merge(model, load_compose_file(path), ())
    return model


def services(files: Path | tuple[Path, ...] = COMPOSE_FILE) -> dict[str, dict[str, Any]]:
    """Return a stack's services by name."""
    result: dict[str, dict[str, Any]] = compose(files)["services"]
    return result


# Every (stack, service) pair, for the checks that hold for every service of every stack.
EVERY_SERVICE = [(files, name) for files in STACKS.values() for name in sorted(services(files))]
EVERY_SERVICE_IDS = [f"{stack}:{name}" for stack, files in STACKS.items() for name in sorted(services(files))]
by_file = pytest.mark.parametrize("path", list(STACKS.values()), ids=list(STACKS))
by_single_host_stack = pytest.mark.parametrize("stack", list(SINGLE_HOST_STACKS))


def mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """Return a service's volumes as (source, target) pairs, short or long syntax."""
    pairs: list[tuple[str, str]] = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            pairs.append((str(entry["source"]), str(entry["target"])))
        else:
            source, target = str(entry).split(":")[:2]
            pairs.append((source, target))
    return pairs


def is_bind(source: str) -> bool:
    """Return whether a volume source is a host path (compose's rule) rather than a named volume."""
    return source.startswith((".", "/", "~"))


def host_path(service: dict[str, Any], target: str) -> Path:
    """Return the repository file bind-mounted at target in a service."""
    for source, mounted in mounts(service):
        if mounted == target and is_bind(source):
            return (ROOT / source).resolve()
    raise AssertionError(f"nothing is bind-mounted at {target}")


def mosquitto_conf(text: str | None = None) -> dict[str, list[str]]:
    """Return mosquitto.conf as option -> values (an option may repeat), without comments."""
    options: dict[str, list[str]] = {}
    for line in (MOSQUITTO_CONF.read_text(encoding="utf-8") if text is None else text).splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, _, value = stripped.partition(" ")
        options.setdefault(key, []).append(value.strip())
    return options


def one(options: dict[str, list[str]], key: str) -> str:
    """Return the single value of a mosquitto.conf option."""
    values = options.get(key, [])
    assert len(values) == 1, f"mosquitto.conf must set {key} exactly once, sets it {len(values)} times"
    return values[0]


def plain_listener() -> int:
    """The port of the first listener (plain MQTT for the compose network)."""
    return int(mosquitto_conf()["listener"][0].split()[0])


def listener_blocks(text: str | None = None) -> list[dict[str, str]]:
    """Each listener's own options (the lines after it up to the next listener)."""
    blocks: list[dict[str, str]] = []
    for line in (MOSQUITTO_CONF.read_text(encoding="utf-8") if text is None else text).splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, _, value = stripped.partition(" ")
        if key == "listener":
            blocks.append({"listener": value})
        elif blocks:
            blocks[-1][key] = value
    return blocks


def duration_s(text: str) -> int:
    """Return a Mosquitto duration like 14d or 2w in seconds."""
    match = re.fullmatch(r"(\d+)([hdwmy])", text)
    assert match, f"{text!r} is not a Mosquitto duration"
    unit = {"h": 3600, "d": 86400, "w": 7 * 86400, "m": 30 * 86400, "y": 365 * 86400}[match[2]]
    return int(match[1]) * unit


def dockerfile_instructions() -> list[tuple[str, str]]:
    """Return the Dockerfile as (INSTRUCTION, arguments), continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        word, _, rest = full.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    return instructions


def dockerfile(word: str) -> list[str]:
    """Return the arguments of every Dockerfile instruction named word."""
    return [args for name, args in dockerfile_instructions() if name == word]


def cbrain_settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Return the cbrain service's configuration as the service itself loads it."""
    for var in ENV_OVERRIDES:
        monkeypatch.delenv(var, raising=False)
    return load_settings(host_path(services()["cbrain"], SITE_TARGET))


# --- docker-compose.yml ------------------------------------------------------------------------------


@by_single_host_stack
def test_compose_has_the_services(stack: str) -> None:
    """The stack is the broker, the database, Grafana, the service and the simulator, whichever InfluxDB."""
    assert set(services(SINGLE_HOST_STACKS[stack])) == {"mosquitto", "influxdb", "grafana", "cbrain", "simulator"}


@pytest.mark.parametrize(("path", "name"), EVERY_SERVICE, ids=EVERY_SERVICE_IDS)
def test_every_service_has_a_healthcheck(path: tuple[Path, ...], name: str) -> None:
    """Each service says what healthy means, so that dependants can wait for it."""
    check = services(path)[name].get("healthcheck")
    assert isinstance(check, dict), f"{name} has no healthcheck"
    assert not check.get("disable"), f"{name} disables its healthcheck"
    test = check.get("test")
    assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, f"{name}: bad test {test}"


@pytest.mark.parametrize(("path", "name"), EVERY_SERVICE, ids=EVERY_SERVICE_IDS)
def test_depends_on_waits_for_healthy_existing_services(path: tuple[Path, ...], name: str) -> None:
    """A dependency is a service of this file, waited for until healthy (the list form only waits for a start)."""
    depends = services(path)[name].get("depends_on", {})
    assert isinstance(depends, dict), f"{name}: depends_on must be a mapping with conditions"
    for other, spec in depends.items():
        assert other in services(path), f"{name} depends on {other}, which is not a service"
        assert other != name
        assert spec.get("condition") == "service_healthy", f"{name} does not wait for {other} to be healthy"


@by_file
def test_every_bind_mount_exists_and_every_named_volume_is_declared(path: tuple[Path, ...]) -> None:
    """Host paths mounted into containers exist in the repository; named volumes are declared."""
    declared = set(compose(path).get("volumes") or {})
    seen = 0
    for name, service in services(path).items():
        for source, target in mounts(service):
            if is_bind(source):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
                seen += 1
            else:
                assert source in declared, f"{name} mounts volume {source}, which is not declared"
            assert target.startswith("/"), f"{name}: mount target {target} is not absolute"
    assert seen >= 4


@pytest.mark.parametrize(("path", "expected"),
                         [(files, {"cbrain-1", "cbrain-2"} if stack == "cluster" else {"cbrain", "simulator"})
                          for stack, files in STACKS.items()], ids=list(STACKS))
def test_build_context_has_the_dockerfile(path: tuple[Path, ...], expected: set[str]) -> None:
    """Services built from the repository find the Dockerfile and share one image name."""
    built = {name: s for name, s in services(path).items() if "build" in s}
    assert set(built) == expected
    for service in built.values():
        context = service["build"] if isinstance(service["build"], str) else service["build"]["context"]
        assert (ROOT / context / "Dockerfile").is_file()
    assert len({s.get("image") for s in built.values()}) == 1


@by_file
def test_published_ports_are_loopback_only(path: tuple[Path, ...]) -> None:
    """Nothing is reachable from the network unless an operator opens it on purpose."""
    for name, service in services(path).items():
        for port in service.get("ports", []):
            if isinstance(port, dict):
                assert port.get("host_ip") == LOOPBACK, f"{name} publishes {port} beyond loopback"
            else:
                assert str(port).startswith(f"{LOOPBACK}:"), f"{name} publishes {port} beyond loopback"


@by_file
def test_long_running_services_restart(path: tuple[Path, ...]) -> None:
    """Every service (the brokers, the database, Grafana, the service, the simulator) comes back after a crash
    or a reboot."""
    for name, service in services(path).items():
        assert service.get("restart") in ("unless-stopped", "always"), name


def test_cbrain_service_config_is_accepted_and_names_the_compose_services(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mounted site file loads, listens on every interface and reaches mosquitto and influxdb."""
    cbrain = services()["cbrain"]
    assert cbrain["command"][cbrain["command"].index("--config") + 1] == SITE_TARGET
    settings = cbrain_settings(monkeypatch)
    assert settings.http.host == "0.0.0.0"
    assert f"{LOOPBACK}:{settings.http.port}:{settings.http.port}" in cbrain["ports"]
    mqtt_url = urlsplit(settings.mqtt.url)
    assert mqtt_url.hostname == "mosquitto" and mqtt_url.hostname in services()
    assert (mqtt_url.port or 1883) == plain_listener()
    # In the container, the service logs in with its provisioned account (the password from .env).
    raw_url = cbrain["environment"]["CB_MQTT_URL"]
    env_url = urlsplit(re.sub(r"\$\{CB_MQTT_PASSWORD:\?[^}]*\}", "from-env", raw_url))
    assert (env_url.username, env_url.password) == (settings.mqtt.client_id, "from-env"), raw_url
    assert (env_url.hostname, env_url.port) == ("mosquitto", plain_listener())
    assert settings.influx.url is not None
    influx_url = urlsplit(settings.influx.url)
    assert influx_url.hostname == "influxdb" and influx_url.hostname in services()
    assert (influx_url.port or 8086) == 8086
    assert settings.influx.database == services()["influxdb"]["environment"]["INFLUXDB_DB"]
    state_mounts = [source for source, target in mounts(cbrain) if target == settings.state_dir]
    assert state_mounts and not is_bind(state_mounts[0]), "state_dir must be a named volume"
    assert services()["cbrain"]["stop_grace_period"] == "30s"


def test_cbrain_site_is_the_example_site(monkeypatch: pytest.MonkeyPatch) -> None:
    """The container runs the example site; only the connection settings differ."""
    example = ROOT / "examples" / "site.yaml"
    deployed = cbrain_settings(monkeypatch)
    reference = load_settings(example)
    for field in ("street", "communities", "devices", "recipients", "api_tokens", "locale"):
        assert getattr(deployed, field) == getattr(reference, field), field


def test_simulator_publishes_to_the_compose_broker() -> None:
    """The simulator reads the same site file and publishes to the mosquitto service."""
    simulator = services()["simulator"]
    command: list[str] = simulator["command"]
    assert command[0] == "simulate"
    assert command[command.index("--config") + 1] == SITE_TARGET
    assert host_path(simulator, SITE_TARGET) == host_path(services()["cbrain"], SITE_TARGET)
    url = urlsplit(command[command.index("--mqtt-url") + 1])
    assert url.hostname == "mosquitto" and url.port == plain_listener()
    # Every simulated device logs in with its own account from the provisioned credentials.csv.
    credentials = Path(command[command.index("--credentials") + 1])
    assert host_path(simulator, str(credentials.parent)) == ACCOUNTS_DIR
    assert simulator["depends_on"] == {"cbrain": {"condition": "service_healthy"}}


def test_mosquitto_service_mounts_the_config_and_persists_its_data() -> None:
    """The broker reads deploy/mosquitto/mosquitto.conf and keeps its database in a named volume."""
    broker = services()["mosquitto"]
    assert host_path(broker, "/mosquitto/config/mosquitto.conf") == MOSQUITTO_CONF
    location = one(mosquitto_conf(), "persistence_location").rstrip("/")
    assert any(target.rstrip("/") == location and not is_bind(source) for source, target in mounts(broker))


def container_path(service: dict[str, Any], path: str) -> Path:
    """Return the repository path that a path inside a service's container is, through the deepest bind mount
    at or above it."""
    found: tuple[str, str] | None = None
    for source, target in mounts(service):
        inside = path == target or path.startswith(target.rstrip("/") + "/")
        if is_bind(source) and inside and (found is None or len(target) > len(found[1])):
            found = (source, target)
    assert found is not None, f"nothing is bind-mounted at or above {path}"
    return (ROOT / found[0] / os.path.relpath(path, found[1])).resolve()


def provisioned_datasources(stack: str) -> list[dict[str, Any]]:
    """Return every data source that Grafana of a single-host stack provisions, from every file of the
    directory it reads."""
    grafana = services(SINGLE_HOST_STACKS[stack])["grafana"]
    directory = container_path(grafana, f"{GRAFANA_PROVISIONING}/datasources")
    files = sorted(directory.iterdir())
    assert files and all(f.suffix == ".yaml" for f in files), f"{directory}: only data source files, {files}"
    return [ds for f in files for ds in yaml.safe_load(f.read_text(encoding="utf-8"))["datasources"]]


def cbrain_influx(stack: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """Return the InfluxDB URL and database the service of a single-host stack uses: the site file's, unless
    the compose environment overrides them."""
    settings = cbrain_settings(monkeypatch)
    environment = services(SINGLE_HOST_STACKS[stack])["cbrain"]["environment"]
    assert settings.influx.url is not None
    return (environment.get("CB_INFLUX_URL", settings.influx.url),
            environment.get("CB_INFLUX_DB", settings.influx.database))


@by_single_host_stack
def test_grafana_provisioning_is_mounted(stack: str) -> None:
    """Grafana gets the dashboard provider, a data source directory and the dashboards folder the provider reads."""
    grafana = services(SINGLE_HOST_STACKS[stack])["grafana"]
    assert container_path(grafana, f"{GRAFANA_PROVISIONING}/dashboards") == DASHBOARD_PROVIDERS.parent
    assert container_path(grafana, f"{GRAFANA_PROVISIONING}/datasources").is_dir()
    providers = yaml.safe_load(DASHBOARD_PROVIDERS.read_text(encoding="utf-8"))["providers"]
    assert len(providers) == 1 and providers[0]["type"] == "file"
    assert host_path(grafana, providers[0]["options"]["path"]) == ROOT / "dashboards"
    # The checked-in files are the truth: Grafana's UI can neither save over nor delete them.
    assert providers[0]["allowUiUpdates"] is False and providers[0]["disableDeletion"] is True
    assert providers[0]["folder"] and providers[0]["folderUid"]


@by_single_host_stack
def test_every_provisioned_dashboard_reads_the_provisioned_datasource(stack: str) -> None:
    """Each dashboard file under the mounted folder names the data source uid the provisioning creates, whichever
    InfluxDB the stack runs."""
    (source,) = provisioned_datasources(stack)
    files = sorted((ROOT / "dashboards").rglob("*.json"))
    assert files
    for path in files:
        text = path.read_text(encoding="utf-8")
        uids = set(re.findall(r'"uid": "([^"]+)"', text)) - {json.loads(text)["uid"]}
        assert uids == {source["uid"]}, (path, uids)


def _grafana_of_sdk(version: str) -> tuple[int, int]:
    """The Grafana (major, minor) a grafana-foundation-sdk version is built for: `<build>!<grafana version>`."""
    m = re.fullmatch(r"\d+!(\d+)\.(\d+)\.\d+", version)
    assert m, f"{version!r} is not a grafana-foundation-sdk version <build>!<grafana version>"
    return int(m[1]), int(m[2])


def test_grafana_image_is_the_version_the_dashboards_are_built_for() -> None:
    """The compose Grafana, the pinned and the installed dashboard SDK, and the dashboards' schemaVersion agree."""
    from grafana_foundation_sdk.builders import dashboard as db

    with (ROOT / "pyproject.toml").open("rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    pinned = [d.split("==", 1)[1] for d in dependencies if d.startswith("grafana-foundation-sdk==")]
    assert len(pinned) == 1, "pyproject.toml pins grafana-foundation-sdk exactly (an unpinned one picks a 10.1 build)"
    assert importlib.metadata.version("grafana-foundation-sdk") == pinned[0], "the installed SDK is not the pinned one"
    grafana = _grafana_of_sdk(pinned[0])
    image = services()["grafana"]["image"]
    m = re.fullmatch(r"grafana/grafana(?:-oss)?:(\d+)\.(\d+)\.(\d+)", image)
    assert m, f"{image!r}: Grafana's image is pinned to a release (major.minor.patch)"
    assert (int(m[1]), int(m[2])) == grafana, f"{image} runs dashboards built for Grafana {grafana[0]}.{grafana[1]}"
    schema = db.Dashboard("schema").build().schema_version
    files = sorted((ROOT / "dashboards").rglob("*.json"))
    assert files
    for path in files:
        assert json.loads(path.read_text(encoding="utf-8"))["schemaVersion"] == schema, path


@by_single_host_stack
def test_grafana_datasource_points_at_the_service_database(stack: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The one InfluxQL data source reads the store and database the service writes."""
    (source,) = provisioned_datasources(stack)
    assert (source["name"], source["uid"], source["type"]) == ("community_brain", "cb-influxdb", "influxdb")
    assert source["editable"] is False
    url, database = cbrain_influx(stack, monkeypatch)
    assert source["url"] == url
    assert source["jsonData"]["dbName"] == source["database"] == database
    assert source["jsonData"].get("version", "InfluxQL") == "InfluxQL"


# --- InfluxDB 2.x and 3 Core in place of 1.8 ---------------------------------------------------------

TOKEN_REFERENCE = "${CB_INFLUX_TOKEN:?run deploy/secure-setup.sh first (docs/security.md)}"
# What the service of each stack is told about its store besides the URL, database and token.
STORE_SETTINGS = {
    "influxdb1.8": {},
    "influxdb2": {"CB_INFLUX_FLAVOR": "v2", "CB_INFLUX_ORG": "community-brain", "CB_INFLUX_BUCKET": "community_brain"},
    "influxdb3": {"CB_INFLUX_FLAVOR": "v3"},
}


def store_port(stack: str) -> int:
    """The port the stack's InfluxDB listens on in its container (the one it publishes)."""
    (port,) = services(SINGLE_HOST_STACKS[stack])["influxdb"]["ports"]
    return int(str(port).rsplit(":", 1)[1])


@pytest.mark.parametrize("path", STORE_FILES, ids=[p.name for p in STORE_FILES])
def test_store_files_change_only_the_base_services_and_replace_their_lists(path: Path) -> None:
    """A store's file changes services that docker-compose.yml has (a misspelt name would add a half service)
    and replaces each list it sets: compose appends a later file's list to the earlier one's (1.8's volume,
    variables or ports would stay), except for command, entrypoint and healthcheck.test."""
    data = load_compose_file(path)
    assert set(data) <= {"services", "volumes"}
    assert set(data["services"]) <= set(services())
    for name, service in data["services"].items():
        for key, value in service.items():
            if key in ("command", "entrypoint"):
                continue
            if key == "healthcheck":
                assert set(value) == {"test"}, f"{name}: the base's interval, retries and start period hold"
                continue
            assert not isinstance(value, list), f"{name}.{key} would be appended to the base's; tag it !override"
            if key == "environment":
                assert isinstance(value, (dict, Override)), f"{name}.environment must be a mapping"


@by_single_host_stack
def test_cbrain_gets_the_token_flavor_and_bucket_of_its_store(stack: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The service is told the store's flavor, and for 2.x the organisation and bucket the store was set up
    with; with 2.x and 3 it sends the token the store was set up with, from .env; the URL reaches the store's
    port. 1.8 runs without authentication and is told nothing."""
    files = SINGLE_HOST_STACKS[stack]
    cbrain, store = services(files)["cbrain"], services(files)["influxdb"]
    told = {k: v for k, v in cbrain["environment"].items() if k.startswith("CB_INFLUX_")}
    url, database = cbrain_influx(stack, monkeypatch)
    assert urlsplit(url).hostname == "influxdb" and urlsplit(url).port == store_port(stack)
    if stack == "influxdb1.8":
        assert told == {}
        assert store["environment"]["INFLUXDB_HTTP_AUTH_ENABLED"] == "false"
        return
    assert told.pop("CB_INFLUX_TOKEN") == TOKEN_REFERENCE
    told.pop("CB_INFLUX_URL", None)
    assert told == STORE_SETTINGS[stack]
    if stack == "influxdb2":
        assert store["image"] == "influxdb:2.7"
        init = store["environment"]
        assert init["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
        assert init["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"] == TOKEN_REFERENCE
        assert init["DOCKER_INFLUXDB_INIT_ORG"] == told["CB_INFLUX_ORG"]
        # InfluxQL reads the bucket as the database of its name (2.1's virtual DBRP mapping).
        assert init["DOCKER_INFLUXDB_INIT_BUCKET"] == told["CB_INFLUX_BUCKET"] == database
        assert init["DOCKER_INFLUXDB_INIT_PASSWORD"].startswith("${INFLUXDB2_ADMIN_PASSWORD:?")
        assert [target for _, target in mounts(store)] == ["/var/lib/influxdb2", "/etc/influxdb2"]
    else:
        assert store["image"] == "influxdb:3-core"
        # The command writes the offline admin token file from this variable.
        assert store["environment"] == {"CB_INFLUX_TOKEN": TOKEN_REFERENCE}
    # Each store keeps its data in volumes of its own: 1.8's is left as it was.
    volumes = {source for source, _ in mounts(store)}
    assert volumes and not volumes & {s for s, _ in mounts(services()["influxdb"])}


@by_single_host_stack
def test_grafana_sends_the_store_token_as_a_header(stack: str) -> None:
    """With 2.x and 3 the data source sends "Authorization: Token <CB_INFLUX_TOKEN>" (Grafana's way for InfluxQL
    on a store with tokens), the token from Grafana's environment, which compose fills from .env as for the
    service; with 1.8 it sends no header."""
    (source,) = provisioned_datasources(stack)
    grafana, cbrain = services(SINGLE_HOST_STACKS[stack])["grafana"], services(SINGLE_HOST_STACKS[stack])["cbrain"]
    headers = {k: v for k, v in source["jsonData"].items() if k.startswith("httpHeaderName")}
    if stack == "influxdb1.8":
        assert headers == {} and "secureJsonData" not in source
        assert "CB_INFLUX_TOKEN" not in grafana["environment"]
        return
    assert source["jsonData"]["version"] == "InfluxQL"
    assert headers == {"httpHeaderName1": "Authorization"}
    assert source["secureJsonData"] == {"httpHeaderValue1": "Token ${CB_INFLUX_TOKEN}"}
    assert grafana["environment"]["CB_INFLUX_TOKEN"] == cbrain["environment"]["CB_INFLUX_TOKEN"] == TOKEN_REFERENCE


def test_every_secret_a_stack_demands_is_written_by_secure_setup() -> None:
    """Each `${VAR:?...}` of the compose files names a variable that deploy/secure-setup.sh writes into .env."""
    script = (ROOT / "deploy" / "secure-setup.sh").read_text(encoding="utf-8")
    demanded = {v for path in (COMPOSE_FILE, *STORE_FILES)
                for v in re.findall(r"\$\{(\w+):\?", path.read_text(encoding="utf-8"))}
    assert demanded == {"CB_MQTT_PASSWORD", "CB_INFLUX_TOKEN", "INFLUXDB2_ADMIN_PASSWORD"}
    for var in demanded:
        assert re.search(rf"echo \"{var}=", script), f"deploy/secure-setup.sh does not write {var}"


def test_influxdb3_command_starts_the_server_with_the_token_from_env(tmp_path: Path) -> None:
    """The 3 Core command, run by bash with a stand-in influxdb3, writes CB_INFLUX_TOKEN into an offline admin
    token file only its user can read, then runs `influxdb3 serve` with that file, a node id, the file object
    store in the mounted volume and the published port."""
    store = services(SINGLE_HOST_STACKS["influxdb3"])["influxdb"]
    argv = [arg.replace("$$", "$") for arg in store["command"]]
    assert argv[:2] == ["bash", "-c"]
    token_file = "/tmp/admin-token.json"
    assert token_file in argv[2]
    local = tmp_path / "admin-token.json"
    script = argv[2].replace(token_file, str(local))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "influxdb3"
    stub.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {tmp_path / 'args'}\n")
    stub.chmod(0o755)
    token = "apiv3_" + "ab" * 32
    result = subprocess.run(["bash", "-c", script], env={"PATH": f"{bin_dir}:{os.environ['PATH']}",
                                                         "CB_INFLUX_TOKEN": token},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert json.loads(local.read_text()) == {"token": token, "name": "_admin"}
    assert stat.S_IMODE(local.stat().st_mode) == 0o600
    args = (tmp_path / "args").read_text().splitlines()
    assert args[0] == "serve"
    options = dict(zip(args[1::2], args[2::2], strict=True))
    assert options["--admin-token-file"] == str(local)
    assert options["--object-store"] == "file" and options["--node-id"]
    assert [target for _, target in mounts(store)] == [options["--data-dir"]]
    assert options["--http-bind"] == f"0.0.0.0:{store_port('influxdb3')}"


class _Store(BaseHTTPRequestHandler):
    """Answers one path with the status the test sets, only with the right token when the server has one."""

    def do_GET(self) -> None:
        """Answer like the store: 401 without the token it wants, the set status on its health path."""
        server: Any = self.server
        if server.token and self.headers.get("Authorization") not in (f"Bearer {server.token}",
                                                                      f"Token {server.token}"):
            status = 401
        else:
            status = server.status if self.path == server.health_path else 404
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


# The path each store answers health on (1.8 /ping with 204; 2.x /health, no token; 3 /health, token).
STORE_HEALTH = {"influxdb1.8": ("/ping", 204, False), "influxdb2": ("/health", 200, False),
                "influxdb3": ("/health", 200, True)}


@by_single_host_stack
def test_store_healthcheck_passes_only_while_the_store_answers(stack: str) -> None:
    """The store's compose healthcheck, run with curl against a stand-in on the store's port: it passes on the
    store's health answer, fails on 503, on a wrong token (3), and when nothing answers."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("no curl")
    test = services(SINGLE_HOST_STACKS[stack])["influxdb"]["healthcheck"]["test"]
    path, ok, needs_token = STORE_HEALTH[stack]
    server = ThreadingHTTPServer((LOOPBACK, 0), _Store)
    server.health_path, server.status = path, ok  # type: ignore[attr-defined]
    server.token = "apiv3_" + "cd" * 32 if needs_token else ""  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    here = f"http://localhost:{store_port(stack)}"

    def run(token: str) -> int:
        env = {**os.environ, "CB_INFLUX_TOKEN": token}
        if test[0] == "CMD":
            argv = [a.replace(here, f"http://{LOOPBACK}:{port}") for a in test[1:]]
        else:
            assert test[0] == "CMD-SHELL"
            argv = ["sh", "-c", test[1].replace("$$", "$").replace(here, f"http://{LOOPBACK}:{port}")]
        assert any(f"{LOOPBACK}:{port}" in a for a in argv), f"the check does not ask {here}: {test}"
        return subprocess.run(argv, env=env, capture_output=True, timeout=30).returncode

    try:
        assert run(server.token) == 0  # type: ignore[attr-defined]
        if needs_token:
            assert run("apiv3_wrong") != 0
        server.status = 503  # type: ignore[attr-defined]
        assert run(server.token) != 0  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
    assert run(server.token) != 0  # type: ignore[attr-defined]


# --- Dockerfile --------------------------------------------------------------------------------------


def test_dockerfile_runs_the_service_as_a_non_root_user() -> None:
    """Slim Python 3.11 base, non-root user, cbrain entry point, default config where compose mounts it."""
    bases = dockerfile("FROM")
    assert bases and all(b.split()[0] == "python:3.11-slim" for b in bases)
    users = dockerfile("USER")
    assert users and users[-1] not in ("root", "0")
    assert json.loads(dockerfile("ENTRYPOINT")[-1]) == ["cbrain"]
    assert json.loads(dockerfile("CMD")[-1]) == ["run", "--config", SITE_TARGET]
    assert "8000" in dockerfile("EXPOSE")[-1].split()
    assert any("pip install" in run or "pip wheel" in run for run in dockerfile("RUN"))


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    """The build context leaves out the virtualenv, state, git history and results."""
    patterns = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()}
    assert {".venv", "var", ".git", "bench/results"} <= patterns


class _Health(BaseHTTPRequestHandler):
    """Answers /health with the status the test sets on the server."""

    def do_GET(self) -> None:
        """Answer with the configured status."""
        status: int = self.server.status  # type: ignore[attr-defined]
        self.send_response(status if self.path == "/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    """Return an HTTP server on loopback whose /health status the test controls."""
    server = ThreadingHTTPServer((LOOPBACK, 0), _Health)
    server.status = 200  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _run_check(argv: list[str], port: int) -> int:
    """Run a healthcheck argv (CMD form) with this interpreter as python; return its exit status."""
    assert argv[0] == "python"
    env = {**os.environ, "CB_HTTP_PORT": str(port)}
    return subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True, timeout=30).returncode


def test_cbrain_healthchecks_follow_health(health_server: ThreadingHTTPServer) -> None:
    """The image's and compose's checks pass on 200 and fail on 503 or when nothing answers."""
    healthcheck = dockerfile("HEALTHCHECK")
    assert len(healthcheck) == 1
    image_check = json.loads(healthcheck[0].split(" CMD ", 1)[1])
    compose_check = services()["cbrain"]["healthcheck"]["test"]
    assert compose_check[0] == "CMD"
    port = health_server.server_address[1]
    for argv in (image_check, compose_check[1:]):
        assert "127.0.0.1" in argv[-1] and "/health" in argv[-1]
        health_server.status = 200  # type: ignore[attr-defined]
        assert _run_check(argv, port) == 0
        health_server.status = 503  # type: ignore[attr-defined]
        assert _run_check(argv, port) != 0
    health_server.shutdown()
    health_server.server_close()
    assert _run_check(image_check, port) != 0


@by_file
def test_docker_compose_config_validates(path: tuple[Path, ...]) -> None:
    """`docker compose config -q` accepts the stack's files, where the compose CLI is installed."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip("the docker CLI has no compose plugin")
    files = [arg for file in path for arg in ("-f", str(file))]
    result = subprocess.run([docker, "compose", *files, "config", "-q"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT,
                            env={**os.environ, "CB_MQTT_PASSWORD": "set-by-secure-setup",
                                 "CB_INFLUX_TOKEN": "apiv3_set-by-secure-setup",
                                 "INFLUXDB2_ADMIN_PASSWORD": "set-by-secure-setup"})
    assert result.returncode == 0, result.stderr


# --- mosquitto.conf ----------------------------------------------------------------------------------


def test_mosquitto_conf_keeps_readings_through_a_backlog(monkeypatch: pytest.MonkeyPatch) -> None:
    """Queues big enough for an outage, persisted, with sessions outliving the service's own expiry."""
    options = mosquitto_conf()
    assert int(one(options, "max_queued_messages")) >= 100_000
    # The byte limit must not cut in before the message limit's floor, even for readings of the largest size.
    queued_bytes = int(one(options, "max_queued_bytes"))
    assert queued_bytes == 0 or queued_bytes >= 100_000 * MAX_READING_BYTES
    assert one(options, "persistence") == "true"
    assert one(options, "persistence_location").startswith("/")
    assert 0 < int(one(options, "autosave_interval")) <= 60
    expiry = duration_s(one(options, "persistent_client_expiration"))
    assert expiry > cbrain_settings(monkeypatch).mqtt.session_expiry_s


def test_mosquitto_conf_passes_on_readings_and_serves_the_healthcheck() -> None:
    """Low latency, oversized readings still delivered, inflight left to Receive Maximum, $SYS on."""
    options = mosquitto_conf()
    assert one(options, "set_tcp_nodelay") == "true"
    size_limit = int(one(options, "message_size_limit"))
    assert size_limit == 0 or size_limit > MAX_READING_BYTES
    assert "max_packet_size" not in options or int(one(options, "max_packet_size")) > 2 * MAX_READING_BYTES
    assert one(options, "max_inflight_messages") == "0"
    assert one(options, "max_inflight_bytes") == "0"
    assert one(options, "sys_interval") != "0"
    assert options["listener"] == ["1883", "8883"]
    assert "stdout" in options.get("log_dest", [])


def test_mosquitto_conf_takes_only_accounts_limited_by_the_acl() -> None:
    """No anonymous access, the provisioned password file and ACL from the mounted accounts directory, one
    set of rules for every listener, and TLS on 8883 with the mounted certificates."""
    options = mosquitto_conf()
    assert one(options, "allow_anonymous") == "false"
    assert options.get("per_listener_settings", ["false"]) == ["false"]
    broker = services()["mosquitto"]
    accounts = host_path(broker, str(Path(one(options, "password_file")).parent))
    assert accounts == ACCOUNTS_DIR
    assert Path(one(options, "password_file")).name == "passwd" and Path(one(options, "acl_file")).name == "acl"
    assert host_path(broker, str(Path(one(options, "acl_file")).parent)) == ACCOUNTS_DIR
    plain, tls = listener_blocks()
    assert plain == {"listener": "1883"}
    assert tls["listener"] == "8883"
    for key in ("cafile", "certfile", "keyfile"):
        assert host_path(broker, str(Path(tls[key]).parent)) == CERTS_DIR, key
    assert f"{LOOPBACK}:8883:8883" in broker["ports"]
    # Generated secrets never enter git or the image.
    for directory in (ACCOUNTS_DIR, CERTS_DIR):
        assert (directory / ".gitignore").read_text().splitlines()[1] == "*"
    ignored = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    assert {"deploy/mosquitto/accounts", "deploy/mosquitto/certs", ".env"} <= set(ignored)


def test_compose_demands_the_broker_password() -> None:
    """Without deploy/secure-setup.sh's .env, compose stops with a message instead of starting unprotected."""
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert text.count("${CB_MQTT_PASSWORD:?run deploy/secure-setup.sh first") == 2
    assert os.access(ROOT / "deploy" / "secure-setup.sh", os.X_OK)


def adapt_conf(text: str, *, ports: tuple[int, int], data_dir: Path, log_path: Path, accounts: Path,
               certs: Path) -> str:
    """Return the deployed mosquitto.conf bound to loopback with its files in a temp dir, other lines kept."""
    rewrites = {
        "persistence_location": f"persistence_location {data_dir}/",
        "log_dest": f"log_dest file {log_path}",
        "password_file": f"password_file {accounts / 'passwd'}",
        "acl_file": f"acl_file {accounts / 'acl'}",
        "cafile": f"cafile {certs / 'ca.crt'}",
        "certfile": f"certfile {certs / 'server.crt'}",
        "keyfile": f"keyfile {certs / 'server.key'}",
    }
    done: dict[str, int] = dict.fromkeys(rewrites, 0)
    listeners = iter(ports)
    lines: list[str] = []
    for line in text.splitlines():
        key = line.strip().partition(" ")[0]
        if key in rewrites:
            lines.append(rewrites[key])
            done[key] += 1
        elif key == "listener":
            lines.append(f"listener {next(listeners)} {LOOPBACK}")
        else:
            lines.append(line)
    assert all(n == 1 for n in done.values()), f"expected each of {sorted(rewrites)} once, got {done}"
    assert next(listeners, None) is None, "expected two listeners"
    # As root, mosquitto switches to the "mosquitto" user, which cannot write the test's directory;
    # for any other user this line has no effect.
    lines.append(f"user {getpass.getuser()}")
    return "\n".join(lines) + "\n"


class DeployedMosquitto(Mosquitto):
    """A real broker running deploy/mosquitto/mosquitto.conf, adapted to a temp dir and loopback ports, with
    accounts provisioned for the deployed site and a throwaway CA's certificate."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.tls_port = free_port()
        self.accounts = workdir / "accounts"
        self.certs = workdir / "certs"
        self.ca_file = make_certificates(self.certs)[0]
        done = provision(load_settings(host_path(services()["cbrain"], SITE_TARGET)), self.accounts)
        self.passwords = {a.username: a.password for a in done.accounts}
        super().__init__(workdir)

    def render_conf(self) -> str:
        """Return the deployed configuration with only its listener, file and log lines rewritten."""
        return adapt_conf(MOSQUITTO_CONF.read_text(encoding="utf-8"), ports=(self.port, self.tls_port),
                          data_dir=self.data_dir, log_path=self.log_path, accounts=self.accounts, certs=self.certs)


@pytest.fixture
def deployed_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DeployedMosquitto]:
    """Return a started broker with the deployed configuration."""
    if not Path(MOSQUITTO_BIN).exists():
        pytest.skip(f"no mosquitto at {MOSQUITTO_BIN}")
    for var in ENV_OVERRIDES:
        monkeypatch.delenv(var, raising=False)
    broker = DeployedMosquitto(tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()


SERVICE_USER = "cbrain-ingest"
DEVICE = "sd-b01-0501"
DEVICE_TOPIC = f"cb/linfen-yicun/smoke_detector/{DEVICE}/telemetry"


class Client:
    """An MQTT v5 paho client that waits for its acknowledgements and queues what it receives."""

    def __init__(self, client_id: str) -> None:
        """Create the client; nothing is connected yet."""
        self.paho = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                                protocol=mqtt.MQTTv5)
        self.messages: queue.Queue[MQTTMessage] = queue.Queue()
        self.session_present: bool | None = None
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.paho.on_connect = self._on_connect
        self.paho.on_subscribe = self._on_subscribe
        self.paho.on_message = lambda client, userdata, message: self.messages.put(message)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: ConnectFlags, reason_code: ReasonCode,
                    properties: Properties | None) -> None:
        """Record a successful CONNACK."""
        if not reason_code.is_failure:
            self.session_present = flags.session_present
            self._connected.set()

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: list[ReasonCode],
                      properties: Properties | None) -> None:
        """Record the SUBACK."""
        assert not any(code.is_failure for code in reason_codes), reason_codes
        self._subscribed.set()

    def connect(self, broker: DeployedMosquitto, *, user: str, clean_start: bool = True, session_expiry_s: int = 0,
                tls: bool = False) -> None:
        """Log in as a provisioned user and wait for the CONNACK."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = session_expiry_s
        self._connected.clear()
        self.paho.username_pw_set(user, broker.passwords[user])
        if tls:
            self.paho.tls_set(ca_certs=str(broker.ca_file))
        self.paho.connect(broker.host, broker.tls_port if tls else broker.port, clean_start=clean_start,
                          properties=props)
        self.paho.loop_start()
        assert self._connected.wait(TIMEOUT), "no CONNACK"

    def subscribe(self, topic: str) -> None:
        """Subscribe at QoS 1 and wait for the SUBACK."""
        self._subscribed.clear()
        self.paho.subscribe(topic, qos=1)
        assert self._subscribed.wait(TIMEOUT), "no SUBACK"

    def publish(self, topic: str, payloads: list[bytes]) -> None:
        """Publish at QoS 1 and wait until the broker acknowledged every message."""
        infos = [self.paho.publish(topic, payload, qos=1) for payload in payloads]
        for info in infos:
            info.wait_for_publish(TIMEOUT)
            assert info.is_published(), f"publish {info.mid} not acknowledged"

    def receive(self, count: int, timeout: float = TIMEOUT) -> list[MQTTMessage]:
        """Return the next count messages, or fail saying how many arrived."""
        deadline = time.monotonic() + timeout
        received: list[MQTTMessage] = []
        while len(received) < count:
            try:
                received.append(self.messages.get(timeout=max(deadline - time.monotonic(), 0.001)))
            except queue.Empty:
                pytest.fail(f"received {len(received)} of {count} messages within {timeout} s")
        return received

    def disconnect(self) -> None:
        """Disconnect cleanly and stop the network thread."""
        self.paho.disconnect()
        self.paho.loop_stop()


@pytest.mark.integration
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_real_mosquitto_runs_the_deployed_conf(deployed_broker: DeployedMosquitto, tls: bool) -> None:
    """The real broker starts on the file and carries a device's QoS 1 readings to the service's account,
    including ones above 4 KiB, on both listeners."""
    sub, pub = Client("cbt-deploy-sub"), Client("cbt-deploy-pub")
    sub.connect(deployed_broker, user=SERVICE_USER, tls=tls)
    pub.connect(deployed_broker, user=DEVICE, tls=tls)
    try:
        sub.subscribe("cb/#")
        small = json.dumps({"seq": 1, "level_cm": 12.5}).encode()
        oversized = json.dumps({"seq": 2, "level_cm": 1.0, "pad": "x" * (MAX_READING_BYTES + 1000)}).encode()
        pub.publish(DEVICE_TOPIC, [small, oversized])
        received = sub.receive(2)
    finally:
        pub.disconnect()
        sub.disconnect()
    assert [m.payload for m in received] == [small, oversized]
    assert all(m.qos == 1 for m in received)


@pytest.mark.integration
def test_real_mosquitto_on_the_deployed_conf_refuses_anonymous_clients(deployed_broker: DeployedMosquitto) -> None:
    """Without an account, no connection."""
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="cbt-anon", protocol=mqtt.MQTTv5)
    codes: queue.Queue[ReasonCode] = queue.Queue()
    client.on_connect = lambda _c, _u, _f, reason, _p: codes.put(reason)
    client.connect(deployed_broker.host, deployed_broker.port)
    client.loop_start()
    try:
        reason = codes.get(timeout=TIMEOUT)
    finally:
        client.loop_stop()
    assert reason.is_failure and reason.getName() in ("Not authorized", "Bad user name or password")


@pytest.mark.integration
def test_real_mosquitto_queues_a_backlog_beyond_the_default_limit(deployed_broker: DeployedMosquitto) -> None:
    """An offline persistent session gets all of a backlog that the default max_queued_messages would cut."""
    backlog = 2500
    sub = Client(SERVICE_USER)
    sub.connect(deployed_broker, user=SERVICE_USER, session_expiry_s=600)
    sub.subscribe("cb/#")
    sub.disconnect()
    pub = Client("cbt-deploy-backlog-pub")
    pub.connect(deployed_broker, user=DEVICE)
    try:
        pub.publish(DEVICE_TOPIC, [b'{"seq": %d}' % i for i in range(backlog)])
    finally:
        pub.disconnect()
    sub.connect(deployed_broker, user=SERVICE_USER, clean_start=False, session_expiry_s=600)
    try:
        assert sub.session_present
        received = sub.receive(backlog, timeout=30)
    finally:
        sub.disconnect()
    assert [m.payload for m in received] == [b'{"seq": %d}' % i for i in range(backlog)]


@pytest.mark.integration
def test_real_mosquitto_answers_the_compose_healthcheck(deployed_broker: DeployedMosquitto) -> None:
    """The $SYS topic that the compose healthcheck waits for, with the account it logs in with, arrives well
    within its -W timeout."""
    command = shlex.split(services()["mosquitto"]["healthcheck"]["test"][1].replace("$$", "$"))
    assert command[0] == "mosquitto_sub"
    user = command[command.index("-u") + 1]
    assert user == SERVICE_USER and command[command.index("-P") + 1] == "$CB_MQTT_PASSWORD"
    assert "CB_MQTT_PASSWORD" in services()["mosquitto"]["environment"]
    topic = command[command.index("-t") + 1]
    wait_s = float(command[command.index("-W") + 1])
    sub = Client("cbt-deploy-health")
    sub.connect(deployed_broker, user=user)
    try:
        sub.subscribe(topic)
        sub.receive(1, timeout=wait_s)
    finally:
        sub.disconnect()


@pytest.mark.integration
def test_secure_setup_makes_accounts_certificates_env_and_fresh_secrets(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """deploy/secure-setup.sh on a copy of deploy/: accounts, a certificate chain that verifies, the service's
    password, InfluxDB 2.x/3's token and 2.x's admin password in .env, no example secret left in the site file;
    run again, nothing changes; run with ROTATE=1, the broker password changes and the store's secrets do not
    (a store takes them only at its first start)."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl")
    from app.example_secrets import example_secrets_in

    for var in ENV_OVERRIDES:
        monkeypatch.delenv(var, raising=False)
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy", ignore=shutil.ignore_patterns("grafana"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}

    def setup(**extra: str) -> str:
        result = subprocess.run(["sh", str(tmp_path / "deploy" / "secure-setup.sh")], cwd=tmp_path,
                                env={**env, **extra},
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    out = setup()
    accounts, certs = tmp_path / "deploy" / "mosquitto" / "accounts", tmp_path / "deploy" / "mosquitto" / "certs"
    def passwords() -> dict[str, str]:
        lines = (accounts / "credentials.csv").read_text().splitlines()[1:]
        return {r.split(",")[0]: r.split(",")[2] for r in lines}

    rows = passwords()
    def dotenv() -> dict[str, str]:
        lines = (tmp_path / ".env").read_text().splitlines()
        pairs = dict(line.split("=", 1) for line in lines)
        assert len(pairs) == len(lines), "a variable is written twice"
        return pairs

    first_env = dotenv()
    assert set(first_env) == {"CB_MQTT_PASSWORD", "CB_INFLUX_TOKEN", "INFLUXDB2_ADMIN_PASSWORD"}
    assert first_env["CB_MQTT_PASSWORD"] == rows["cbrain-ingest"]
    # 3 Core takes only tokens beginning apiv3_; 2.x takes any, and a password of at least 8 characters.
    assert re.fullmatch(r"apiv3_[0-9a-f]{64}", first_env["CB_INFLUX_TOKEN"]), first_env["CB_INFLUX_TOKEN"]
    assert re.fullmatch(r"[0-9a-f]{32}", first_env["INFLUXDB2_ADMIN_PASSWORD"])
    assert stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o600
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(certs / "ca.crt"), str(certs / "server.crt")],
                            capture_output=True, text=True, timeout=30)
    assert verify.returncode == 0, verify.stderr
    site_path = tmp_path / "deploy" / "cbrain" / "site.yaml"
    site = site_path.read_text(encoding="utf-8")
    assert "example-token-" not in site and "example-secret-" not in site
    settings = load_settings(site_path)
    assert example_secrets_in(settings) == []
    printed = dict(line.strip().split(": ") for line in out.splitlines() if line.startswith("  "))
    assert printed["admin"] in {t.token for t in settings.api_tokens}
    setup()
    assert site_path.read_text(encoding="utf-8") == site
    assert passwords() == rows
    assert dotenv() == first_env
    setup(ROTATE="1")
    rotated = dotenv()
    assert rotated["CB_MQTT_PASSWORD"] == passwords()["cbrain-ingest"] != first_env["CB_MQTT_PASSWORD"]
    assert {k: rotated[k] for k in ("CB_INFLUX_TOKEN", "INFLUXDB2_ADMIN_PASSWORD")} == \
        {k: first_env[k] for k in ("CB_INFLUX_TOKEN", "INFLUXDB2_ADMIN_PASSWORD")}
