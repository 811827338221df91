"""docker-compose.cluster.yml and deploy/nats/ (CONTRACT §12) stay consistent with each other, with the
single-host stack and with the code: the nodes' files are what `cbrain cluster nats-config` writes, the
ports agree, the instances name the nodes, the image runs the release the layout tests check, and
`make install` refuses a nats-server binary whose digest is not the recorded one. The checks every
compose file passes (healthchecks, dependencies, mounts, loopback ports) are in test_deploy.py."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from app.cli import parser
from app.nats_config import NatsNode, plan
from kernel.cluster import subject_map
from kernel.settings import ENV_OVERRIDES
from tests.nats_cluster import NATS_SERVER_BIN
from tests.unit.test_deploy import CLUSTER_COMPOSE_FILE, ROOT, SITE_TARGET, host_path, is_bind, mounts, services

NATS_DIR = ROOT / "deploy" / "nats"
NODES = ("nats-1", "nats-2", "nats-3")
INSTANCES = ("cbrain-1", "cbrain-2")


def cluster_services() -> dict[str, dict[str, Any]]:
    return services(CLUSTER_COMPOSE_FILE)


def generate_command() -> list[str]:
    """The `cbrain cluster nats-config` command the compose file says the nodes' files come from."""
    lines = [line.lstrip("# ").strip() for line in CLUSTER_COMPOSE_FILE.read_text(encoding="utf-8").splitlines()
             if line.lstrip("# ").startswith("cbrain cluster nats-config ")]
    assert len(lines) == 1, "the compose file names the command that writes deploy/nats/ once"
    return shlex.split(lines[0])[1:]


def generated_nodes() -> list[NatsNode]:
    args = parser().parse_args(generate_command())
    assert Path(args.out) == Path("deploy/nats")
    return plan(args.nodes, out=ROOT / args.out, base_port=args.base_port, host=args.host, names=args.names,
                store_dir=args.store_dir)


def published(service: dict[str, Any]) -> list[tuple[int, int]]:
    """(host port, container port) of a service's loopback ports."""
    pairs = []
    for entry in service.get("ports", []):
        _host, host_port, container_port = str(entry).split(":")
        pairs.append((int(host_port), int(container_port)))
    return pairs


def test_the_cluster_stack_has_its_services() -> None:
    assert set(cluster_services()) == {*NODES, *INSTANCES, "influxdb", "grafana"}


def test_the_checked_in_node_files_are_what_the_command_writes(tmp_path: Path) -> None:
    """deploy/nats/node-K.conf are byte for byte what the command of the compose file's header writes now."""
    command = generate_command()
    command[command.index("--out") + 1] = str(tmp_path)
    result = subprocess.run([sys.executable, "-m", "app.cli", *command], capture_output=True, text=True, timeout=60,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr
    written = {p.name: p.read_text(encoding="utf-8") for p in sorted(tmp_path.glob("*.conf"))}
    checked_in = {p.name: p.read_text(encoding="utf-8") for p in sorted(NATS_DIR.glob("*.conf"))}
    assert written == checked_in, "deploy/nats/ differs from the code: run the command of docker-compose.cluster.yml"
    assert sorted(written) == [f"node-{k}.conf" for k in (1, 2, 3)]


@pytest.mark.skipif(not Path(NATS_SERVER_BIN).exists(), reason="no nats-server (make install)")
@pytest.mark.parametrize("k", [1, 2, 3])
def test_the_checked_in_node_files_pass_the_servers_config_test(k: int) -> None:
    result = subprocess.run([NATS_SERVER_BIN, "-c", str(NATS_DIR / f"node-{k}.conf"), "-t"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("node", generated_nodes(), ids=NODES)
def test_each_node_runs_its_file_with_its_store_on_a_volume_and_its_ports_published(node: NatsNode) -> None:
    service = cluster_services()[node.name]
    command = service["command"]
    conf_target = command[command.index("--config") + 1]
    assert host_path(service, conf_target) == NATS_DIR / node.conf_name
    # The store is on a named volume of its own.
    store = [(source, target) for source, target in mounts(service) if node.store_dir.startswith(target + "/")]
    assert len(store) == 1 and not is_bind(store[0][0])
    # What is published is the node's MQTT listener (for devices) and its monitoring, each on a host port
    # of its own; the healthcheck asks the node's /healthz.
    ports = published(service)
    assert {c for _, c in ports} <= {node.client_port, node.mqtt_port, node.http_port}
    assert node.mqtt_port in {c for _, c in ports} and node.http_port in {c for _, c in ports}
    assert service["healthcheck"]["test"][-1] == f"http://127.0.0.1:{node.http_port}/healthz"


def test_the_nodes_reach_each_other_by_service_name_and_host_ports_do_not_collide() -> None:
    nodes = generated_nodes()
    assert [n.name for n in nodes] == list(NODES) and {n.host for n in nodes} == set(NODES)
    for node in nodes:
        text = (NATS_DIR / node.conf_name).read_text(encoding="utf-8")
        for other in nodes:
            assert (f'"{other.route}"' in text) == (other is not node)
    host_ports = [h for s in cluster_services().values() for h, _ in published(s)]
    assert len(host_ports) == len(set(host_ports))
    mqtt = [h for name in NODES for h, c in published(cluster_services()[name]) if c == nodes[0].mqtt_port]
    assert mqtt == [1883, 1884, 1885]


def test_the_nats_image_runs_the_pinned_server_release() -> None:
    """The containers run the nats-server release of the nats-server-bin pin, which the layout tests run."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    pinned = [d.split("==", 1)[1] for d in dependencies if d.startswith("nats-server-bin==")]
    assert len(pinned) == 1
    major, minor = (int(x) for x in pinned[0].split(".")[:2])
    assert (major, minor) >= (2, 11), "the cluster needs nats-server 2.11 or later"
    assert {cluster_services()[name]["image"] for name in NODES} == {f"nats:{pinned[0]}-alpine"}


@pytest.mark.parametrize("name", INSTANCES)
def test_each_instance_names_every_node_and_itself(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """CB_CLUSTER_NATS lists every node's client URL, CB_CLUSTER_INSTANCE is the service's own name, and the site
    file with them loads, with the partitions of the nodes' mapping."""
    from app.config import load_settings

    service = cluster_services()[name]
    env = service["environment"]
    nodes = generated_nodes()
    urls = env["CB_CLUSTER_NATS"].split(",")
    assert urls == [n.url for n in nodes]
    assert all(urlsplit(u).hostname in cluster_services() for u in urls)
    assert env["CB_CLUSTER_INSTANCE"] == name
    for var in ENV_OVERRIDES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CB_CLUSTER_NATS", env["CB_CLUSTER_NATS"])
    monkeypatch.setenv("CB_CLUSTER_INSTANCE", env["CB_CLUSTER_INSTANCE"])
    settings = load_settings(host_path(service, SITE_TARGET))
    assert settings.cluster is not None
    assert settings.cluster.nats == urls and settings.cluster.instance == name
    mapping = subject_map(settings.mqtt.prefix, settings.cluster.partitions)
    assert f'"{mapping.source}": "{mapping.destination}"' in (NATS_DIR / "node-1.conf").read_text(encoding="utf-8")
    assert set(service["depends_on"]) == {*NODES, "influxdb"}
    # The single-host stack's site, less the communities' shelters, supplies and vulnerable residents.
    single = load_settings(host_path(services()["cbrain"], SITE_TARGET))
    assert any(c.shelters or c.supplies or c.vulnerable for c in single.communities)
    bare = [c.model_copy(update={"shelters": [], "supplies": [], "vulnerable": []}) for c in single.communities]
    assert settings.communities == bare  # (what the instances would refuse to start with: ClusterInstance)
    for field in ("street", "devices", "recipients", "api_tokens", "locale", "mqtt", "influx", "http"):
        assert getattr(settings, field) == getattr(single, field), field


def test_the_instances_differ_only_in_name_state_and_port() -> None:
    one, two = (cluster_services()[name] for name in INSTANCES)
    states = [[s for s, t in mounts(svc) if t == "/var/lib/cbrain"] for svc in (one, two)]
    assert all(len(s) == 1 and not is_bind(s[0]) for s in states) and states[0] != states[1]
    assert [c for _, c in published(one)] == [c for _, c in published(two)] == [8000]
    assert {k: v for k, v in one.items() if k not in ("volumes", "environment", "ports")} == \
        {k: v for k, v in two.items() if k not in ("volumes", "environment", "ports")}


@pytest.mark.parametrize("name", ["influxdb", "grafana"])
def test_influxdb_and_grafana_are_those_of_the_single_host_stack(name: str) -> None:
    assert cluster_services()[name] == services()[name]


# --- the nats-server binary -------------------------------------------------------------------------------


def verify(binary: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(NATS_DIR / "verify-binary.sh"), str(binary)], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


@pytest.mark.skipif(not Path(NATS_SERVER_BIN).exists(), reason="no nats-server (make install)")
def test_the_installed_binary_is_the_recorded_one() -> None:
    result = verify(Path(NATS_SERVER_BIN))
    assert result.returncode == 0, result.stderr
    assert "as recorded in deploy/nats/SHA256SUMS" in result.stdout and "v2." in result.stdout


@pytest.mark.skipif(not Path(NATS_SERVER_BIN).exists(), reason="no nats-server (make install)")
def test_a_binary_with_another_digest_is_refused_before_it_runs(tmp_path: Path) -> None:
    copy = tmp_path / "nats-server"
    shutil.copy(NATS_SERVER_BIN, copy)
    with copy.open("ab") as f:
        f.write(b"\0")
    result = verify(copy)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "which" in result.stderr and "does not record" in result.stderr and "not the build that was reviewed" \
        in result.stderr
    assert verify(tmp_path / "missing").returncode == 1


def test_make_install_checks_the_binary() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "install: $(STAMP) nats-server-check" in makefile
    assert "sh deploy/nats/verify-binary.sh $(BIN)/nats-server" in makefile
    lines = (NATS_DIR / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    assert lines and all(len(line.split("  ")[0]) == 64 and line.split("  ")[1].endswith("/nats-server")
                         for line in lines)
