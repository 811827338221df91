"""`cbrain cluster nats-config` (app/nats_config.py): the NATS cluster's files, checked by the server's own
config test (`nats-server -c FILE -t`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.nats_config import Limits, plan, write_configs
from kernel.errors import ConfigError
from tests.nats_cluster import NATS_SERVER_BIN

ROOT = Path(__file__).resolve().parents[2]
needs_server = pytest.mark.skipif(not Path(NATS_SERVER_BIN).exists(), reason=f"no {NATS_SERVER_BIN} (make install)")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", "cluster", "nats-config", *args],
                          capture_output=True, text=True, timeout=30, cwd=ROOT)


def config_test(path: Path) -> subprocess.CompletedProcess[str]:
    """The server's own check of a file: parsed, every option known, values valid, no warning."""
    return subprocess.run([NATS_SERVER_BIN, "-c", str(path), "-t"], capture_output=True, text=True, timeout=30)


def block(text: str, name: str) -> str:
    """The body of a top-level `name { … }` block (no nested blocks in ours but routes' list)."""
    match = re.search(rf"^{name} \{{\n(.*?)^\}}", text, re.S | re.M)
    assert match, f"no {name} block"
    return match[1]


def test_ports_follow_the_documented_scheme(tmp_path: Path) -> None:
    nodes = plan(3, out=tmp_path)
    assert [(n.client_port, n.cluster_port, n.mqtt_port, n.http_port) for n in nodes] == [
        (4222, 4223, 4224, 4225), (4232, 4233, 4234, 4235), (4242, 4243, 4244, 4245)]
    assert {n.host for n in nodes} == {n.listen for n in nodes} == {"127.0.0.1"}
    assert [n.name for n in nodes] == ["nats-1", "nats-2", "nats-3"]
    assert [n.store_dir for n in nodes] == [f"{tmp_path.resolve()}/node-{k}" for k in (1, 2, 3)]
    assert nodes[1].url == "nats://127.0.0.1:4232" and nodes[1].mqtt_url == "mqtt://127.0.0.1:4234"


def test_nodes_on_hosts_of_their_own_share_node_1s_ports(tmp_path: Path) -> None:
    nodes = plan(3, out=tmp_path, names="nats-{k}", store_dir="/data")
    assert [n.url for n in nodes] == ["nats://nats-1:4222", "nats://nats-2:4222", "nats://nats-3:4222"]
    assert [n.route for n in nodes] == ["nats-route://nats-1:4223", "nats-route://nats-2:4223",
                                        "nats-route://nats-3:4223"]
    assert {n.listen for n in nodes} == {"0.0.0.0"} and nodes[2].store_dir == "/data/node-3"


@needs_server
@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_every_written_file_passes_the_servers_config_test(tmp_path: Path, count: int) -> None:
    nodes = write_configs(tmp_path / "conf", count, base_port=30000, partitions=64)
    assert sorted(p.name for p in (tmp_path / "conf").iterdir()) == [f"node-{k}.conf" for k in range(1, count + 1)]
    for node in nodes:
        result = config_test(tmp_path / "conf" / node.conf_name)
        assert result.returncode == 0, result.stderr
        assert "is valid" in result.stdout + result.stderr


@needs_server
def test_files_for_containers_pass_the_config_test(tmp_path: Path) -> None:
    write_configs(tmp_path, 3, names="nats-{k}", store_dir="/data")
    for k in (1, 2, 3):
        result = config_test(tmp_path / f"node-{k}.conf")
        assert result.returncode == 0, result.stderr


@needs_server
def test_the_server_refuses_consumer_replicas_so_the_files_leave_it_out(tmp_path: Path) -> None:
    """Why mqtt {} has no consumer_replicas: this server's config test fails on it (it is ignored since 2.9.12:
    the consumers of interest-retention streams have the stream's replicas)."""
    write_configs(tmp_path, 3)
    path = tmp_path / "node-1.conf"
    text = path.read_text()
    assert "consumer_replicas" not in block(text, "mqtt")
    path.write_text(text.replace("  stream_replicas: 3\n", "  stream_replicas: 3\n  consumer_replicas: 3\n"))
    result = config_test(path)
    assert result.returncode != 0 and "consumer replicas setting ignored" in result.stderr


@pytest.mark.parametrize(("count", "replicas"), [(1, 1), (2, 2), (3, 3), (5, 3)])
def test_each_node_runs_jetstream_mqtt_and_routes_to_every_other(tmp_path: Path, count: int, replicas: int) -> None:
    nodes = write_configs(tmp_path, count, limits=Limits("128MB", "2GB"))
    for node in nodes:
        text = (tmp_path / node.conf_name).read_text()
        assert f'server_name: "{node.name}"' in text
        assert f'listen: "127.0.0.1:{node.client_port}"' in text and f'http: "127.0.0.1:{node.http_port}"' in text
        js = block(text, "jetstream")
        assert f'store_dir: "{node.store_dir}"' in js and Path(node.store_dir).is_absolute()
        assert "max_memory_store: 128MB" in js and "max_file_store: 2GB" in js
        mqtt = block(text, "mqtt")
        assert f'listen: "127.0.0.1:{node.mqtt_port}"' in mqtt and f"stream_replicas: {replicas}" in mqtt
        mappings = block(text, "mappings")
        assert '"cb.*.*.*.*": "cbp.{{partition(16,1)}}.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}.' \
               '{{wildcard(4)}}"' in mappings
        if count == 1:
            assert "cluster {" not in text
            continue
        cluster = block(text, "cluster")
        assert f'listen: "127.0.0.1:{node.cluster_port}"' in cluster
        routes = re.findall(r'"(nats-route://[^"]+)"', cluster)
        assert routes == [n.route for n in nodes if n is not node]


def test_the_mapping_follows_prefix_and_partitions(tmp_path: Path) -> None:
    write_configs(tmp_path, 3, partitions=128, prefix="city/cb")
    mappings = block((tmp_path / "node-2.conf").read_text(), "mappings")
    assert '"city.cb.*.*.*.*": "city.cbp.{{partition(128,1)}}.{{wildcard(1)}}.' in mappings


def test_a_smaller_cluster_removes_the_files_of_the_nodes_it_no_longer_has(tmp_path: Path) -> None:
    write_configs(tmp_path, 5)
    (tmp_path / "notes.txt").write_text("kept")
    write_configs(tmp_path, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node-1.conf", "node-2.conf", "node-3.conf", "notes.txt"]


def test_the_command_writes_the_files_and_prints_each_nodes_urls(tmp_path: Path) -> None:
    result = cli("--nodes", "3", "--out", str(tmp_path), "--base-port", "5000")
    assert result.returncode == 0, result.stderr
    for k, port in enumerate((5000, 5010, 5020), start=1):
        assert (tmp_path / f"node-{k}.conf").is_file()
        assert f"MQTT mqtt://127.0.0.1:{port + 2}  NATS nats://127.0.0.1:{port}" in result.stdout


@pytest.mark.parametrize(("args", "says"), [
    (("--nodes", "0"), "--nodes must be between 1 and"),
    (("--nodes", "-2"), "--nodes must be between 1 and"),
    (("--nodes", "3", "--base-port", "65520"), "beyond 1..65535"),
    (("--nodes", "1", "--base-port", "65533"), "beyond 1..65535"),
    (("--nodes", "3", "--base-port", "0"), "beyond 1..65535"),
    (("--nodes", "3", "--partitions", "0"), "partitions must be between 1 and 1024"),
    (("--nodes", "3", "--prefix", "cb/#"), "prefix 'cb/#' must be levels"),
    (("--nodes", "3", "--names", "nats"), "must hold {k}"),
    (("--nodes", "3", "--names", "nats_{k}"), "is not a host name"),
    (("--nodes", "3", "--store-dir", "data"), "must be an absolute path"),
    (("--nodes", "3", "--host", "127.0.0.1 x"), "is not an address"),
])
def test_bad_input_is_a_one_line_error(tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    result = cli(*args, "--out", str(tmp_path / "out"))
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and says in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_an_unwritable_directory_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    result = cli("--nodes", "3", "--out", str(tmp_path / "a-file" / "conf"))
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and "cannot write the configuration" in result.stderr


def test_the_python_function_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--nodes"):
        write_configs(tmp_path, 0)
