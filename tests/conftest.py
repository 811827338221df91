"""Shared pytest fixtures: real Mosquitto / influxd servers and per-test names."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
import uvloop

from device_sim.receiver import Receiver
from tests.nats_cluster import NATS_SERVER_BIN, NatsCluster
from tests.servers import InfluxD, InfluxDFactory, Mosquitto, MosquittoFactory, ServerProcess

SERVER_FIXTURES = frozenset({"mosquitto", "influxdb", "influx_db", "mosquitto_factory", "influxd_factory",
                             "nats_cluster"})


def pytest_configure(config: pytest.Config) -> None:
    """Register the integration marker."""
    config.addinivalue_line("markers", "integration: needs real Mosquitto / InfluxDB / processes")


# The tests' coroutines run on the loop `cbrain run` runs on (app/cli/common.py: uvloop); those of the
# modules named here run on asyncio's own loop as well, the service's fallback where uvloop is missing.
BOTH_LOOPS = frozenset({"test_mqtt_source.py", "test_ingest_e2e.py", "test_event_loop.py"})


def pytest_asyncio_loop_factories(config: pytest.Config,
                                  item: pytest.Item) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The event loops each async test runs on (pytest-asyncio's hook)."""
    if Path(str(item.fspath)).name in BOTH_LOOPS:
        return {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}
    return {"uvloop": uvloop.new_event_loop}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a real server as integration."""
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def _stop_all(servers: list[ServerProcess]) -> None:
    """Stop every server, then re-raise the first failure."""
    errors: list[BaseException] = []
    for server in servers:
        try:
            server.stop()
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """Return the broker shared by the whole test session."""
    server = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxD]:
    """Return the influxd shared by the whole test session."""
    server = InfluxD(tmp_path_factory.mktemp("influxd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def influx_db(influxdb: InfluxD) -> Iterator[str]:
    """Return the name of a fresh database on the session influxd, dropped afterwards."""
    name = f"cbt_{secrets.token_hex(6)}"
    influxdb.create_database(name)
    yield name
    influxdb.drop_database(name)


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[MosquittoFactory]:
    """Return a factory of private brokers the test may stop, kill or restart."""
    created: list[ServerProcess] = []

    def make(*, port: int | None = None, extra_conf: str = "", start: bool = True,
             persistence: bool = True) -> Mosquitto:
        """Create (and by default start) a private broker."""
        server = Mosquitto(tmp_path / f"mosquitto{len(created)}", port=port, extra_conf=extra_conf,
                           persistence=persistence)
        created.append(server)
        if start:
            server.start()
        return server

    yield make
    _stop_all(created)


@pytest.fixture
def influxd_factory(tmp_path: Path) -> Iterator[InfluxDFactory]:
    """Return a factory of private influxd servers the test may stop, kill or restart."""
    created: list[ServerProcess] = []

    def make(*, start: bool = True) -> InfluxD:
        """Create (and by default start) a private influxd."""
        server = InfluxD(tmp_path / f"influxd{len(created)}")
        created.append(server)
        if start:
            server.start()
        return server

    yield make
    _stop_all(created)


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """Return a started 3-node NATS JetStream cluster (16 partitions, prefix cb) private to the test,
    which it may kill and restart nodes of; every node is stopped afterwards."""
    if not Path(NATS_SERVER_BIN).exists():
        pytest.skip(f"no nats-server at {NATS_SERVER_BIN} (make install)")
    cluster = NatsCluster(tmp_path / "nats", nodes=3)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def unique_prefix() -> str:
    """Return a topic prefix unique to this test, like cbt1a2b3c4d."""
    return f"cbt{secrets.token_hex(4)}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP receiver for notifications, on a free loopback port."""
    r = Receiver().start()
    yield r
    r.stop()
