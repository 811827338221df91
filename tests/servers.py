"""Real Mosquitto and InfluxDB 1.x servers on loopback ports, for integration tests."""

from __future__ import annotations

import atexit
import getpass
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self

LOOPBACK = "127.0.0.1"
MOSQUITTO_BIN = os.environ.get("CBT_MOSQUITTO_BIN", "/usr/sbin/mosquitto")
INFLUXD_BIN = os.environ.get("CBT_INFLUXD_BIN", "/usr/bin/influxd")

_live_servers: set[ServerProcess] = set()
_handed_out_ports: set[int] = set()


class ServerError(RuntimeError):
    """A test server failed to start, stop or answer."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now, for a server to listen on.

    Drawn below the kernel's ephemeral range (server_port): a port the kernel hands out for
    bind(0) can be taken, before the server binds it, as the local port of any outgoing
    connection (a service's own MQTT client took one once, and its HTTP listener could not bind).
    """
    return server_port()


def _kernel_port() -> int:
    """Return a TCP port on 127.0.0.1 that the kernel reports as free right now (ephemeral range)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _ephemeral_port_floor() -> int:
    """Return the lowest port the kernel hands out for outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _port_is_bindable(port: int) -> bool:
    """Return whether 127.0.0.1:port can be bound at this moment."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def server_port() -> int:
    """Return a free port that stays usable while its server is stopped for a restart.

    Ports are drawn below the kernel's ephemeral range: a port from inside it can be
    taken as the local port of some outgoing client connection while the server is
    down, and the restart would then fail to bind.
    """
    floor = _ephemeral_port_floor()
    low = 10000
    if floor - low >= 1000:
        for _ in range(500):
            port = random.randrange(low, floor)
            if port not in _handed_out_ports and _port_is_bindable(port):
                _handed_out_ports.add(port)
                return port
    while True:
        port = _kernel_port()
        if port not in _handed_out_ports:
            _handed_out_ports.add(port)
            return port


def free_port_block(offsets: Iterable[int]) -> int:
    """Return a base port such that base + offset is free for every offset, drawn like server_port(),
    for a server (or cluster) whose ports follow a fixed scheme from one base."""
    wanted = sorted(set(offsets))
    floor = _ephemeral_port_floor()
    low, high = 10000, floor - wanted[-1]
    for _ in range(500):
        base = random.randrange(low, high) if high - low >= 1000 else random.randrange(low, 65535 - wanted[-1])
        ports = [base + offset for offset in wanted]
        if not _handed_out_ports.intersection(ports) and all(_port_is_bindable(port) for port in ports):
            _handed_out_ports.update(ports)
            return base
    raise ServerError(f"no free block of ports {wanted} on {LOOPBACK}")


def _tail(path: Path, lines: int) -> str:
    """Return the last lines of a text file, or a note that it does not exist."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"<{path} does not exist>"
    return "\n".join(text.splitlines()[-lines:])


class ServerProcess:
    """A server subprocess with start/stop/kill/restart and readiness polling."""

    name: ClassVar[str] = "server"
    start_timeout: ClassVar[float] = 10.0
    stop_timeout: ClassVar[float] = 15.0

    def __init__(self, workdir: Path) -> None:
        """Prepare a server rooted at workdir (created if missing)."""
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.output_path = self.workdir / f"{self.name}.out"
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """Return the argv that runs the server."""
        raise NotImplementedError

    def is_ready(self) -> bool:
        """Return whether the running server answers requests."""
        raise NotImplementedError

    def log_paths(self) -> list[Path]:
        """Return the files worth showing when the server misbehaves."""
        return [self.output_path]

    def log_tail(self, lines: int = 40) -> str:
        """Return the end of every log file of this server."""
        return "\n".join(f"--- {path.name} ---\n{_tail(path, lines)}" for path in self.log_paths())

    @property
    def pid(self) -> int | None:
        """Return the server's process id while it is running."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        """Return whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Spawn the server and wait until it answers, raising ServerError on failure."""
        if self.running:
            raise ServerError(f"{self.name} in {self.workdir} is already running")
        argv = self.command()
        if not Path(argv[0]).exists():
            raise ServerError(f"{self.name} binary not found: {argv[0]}")
        setpriv = shutil.which("setpriv")
        if setpriv is not None:
            # A server must not outlive a test run that is itself killed, which atexit
            # cannot cover. The death signal follows the thread that spawned the server.
            argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
        with self.output_path.open("ab") as output:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                # Own session: a Ctrl-C aimed at pytest must not reach the servers
                # before fixture teardown has stopped them cleanly.
                start_new_session=True,
            )
        _live_servers.add(self)
        deadline = time.monotonic() + self.start_timeout
        while True:
            returncode = self._proc.poll()
            if returncode is not None:
                self._forget()
                raise ServerError(
                    f"{self.name} exited with status {returncode} during startup\n{self.log_tail()}"
                )
            if self.is_ready():
                return
            if time.monotonic() > deadline:
                self.kill()
                raise ServerError(
                    f"{self.name} not ready after {self.start_timeout:.0f} s\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Terminate the server with SIGTERM and wait; escalate to SIGKILL on timeout."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                self._forget()
                raise ServerError(
                    f"{self.name} ignored SIGTERM for {self.stop_timeout:.0f} s and was killed\n"
                    f"{self.log_tail()}"
                ) from None
        self._forget()

    def kill(self) -> None:
        """Kill the server with SIGKILL (no clean shutdown) and reap it."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self._forget()

    def restart(self, *, hard: bool = False) -> None:
        """Stop (or kill, if hard) the server and start it again on the same ports."""
        if hard:
            self.kill()
        else:
            self.stop()
        self.start()

    def _forget(self) -> None:
        """Drop the reference to an exited process."""
        self._proc = None
        _live_servers.discard(self)

    def __enter__(self) -> Self:
        """Start the server."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    def __repr__(self) -> str:
        """Describe the server and its state."""
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<{type(self).__name__} {self.workdir} {state}>"


class Mosquitto(ServerProcess):
    """A Mosquitto 2.x broker with on-disk persistence, listening on 127.0.0.1 only."""

    name = "mosquitto"
    start_timeout = 10.0
    stop_timeout = 10.0

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = "", persistence: bool = True) -> None:
        """Write mosquitto.conf into workdir; the port is kept across restarts. Without persistence
        the broker forgets every session and queued message when it stops (a misconfigured broker)."""
        super().__init__(workdir)
        self._port = port if port is not None else server_port()
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.conf_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self.extra_conf = extra_conf
        self.persistence = persistence
        self.conf_path.write_text(self.render_conf())

    @property
    def host(self) -> str:
        """Return the address the broker listens on."""
        return LOOPBACK

    @property
    def port(self) -> int:
        """Return the broker's TCP port."""
        return self._port

    @property
    def url(self) -> str:
        """Return the broker address as mqtt://host:port."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def db_path(self) -> Path:
        """Return the persistence database file."""
        return self.data_dir / "mosquitto.db"

    def render_conf(self) -> str:
        """Return the content of mosquitto.conf."""
        lines = [
            f"listener {self.port} {LOOPBACK}",
            "allow_anonymous true",
            # As root, mosquitto would otherwise drop to the "mosquitto" user, which cannot
            # write the workdir. For other users this line has no effect.
            f"user {getpass.getuser()}",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.data_dir}/",
            "autosave_interval 1",
            "persistent_client_expiration 1d",
            "max_queued_messages 1000000",
            "max_queued_bytes 0",
            # 0 = no broker-side cap: MQTT v5 clients get the Receive Maximum they ask
            # for, v3 clients are not limited to 20 in-flight messages, and CONNACK
            # carries no Receive Maximum, so v5 publishers may have 65535 in flight.
            "max_inflight_messages 0",
            "max_inflight_bytes 0",
            "set_tcp_nodelay true",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        ]
        conf = "\n".join(lines) + "\n"
        if self.extra_conf:
            conf += self.extra_conf.rstrip("\n") + "\n"
        return conf

    def command(self) -> list[str]:
        """Return the argv that runs the broker."""
        return [MOSQUITTO_BIN, "-c", str(self.conf_path)]

    def is_ready(self) -> bool:
        """Return whether the listener accepts TCP connections."""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def log_paths(self) -> list[Path]:
        """Return the broker log and its captured stdout/stderr."""
        return [self.log_path, self.output_path]


class InfluxD(ServerProcess):
    """An InfluxDB 1.x server without auth, listening on 127.0.0.1 only."""

    name = "influxd"
    start_timeout = 20.0
    stop_timeout = 30.0

    def __init__(self, workdir: Path) -> None:
        """Write influxd.conf into workdir; the ports are kept across restarts."""
        super().__init__(workdir)
        self.http_port = server_port()
        self.rpc_port = server_port()
        self.conf_path = self.workdir / "influxd.conf"
        self.conf_path.write_text(self.render_conf())
        # Keeps requests to loopback away from any http_proxy set in the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def host(self) -> str:
        """Return the address the HTTP API listens on."""
        return LOOPBACK

    @property
    def port(self) -> int:
        """Return the HTTP API port."""
        return self.http_port

    @property
    def url(self) -> str:
        """Return the HTTP API base URL."""
        return f"http://{self.host}:{self.http_port}"

    def render_conf(self) -> str:
        """Return the content of influxd.conf (TOML)."""
        root = self.workdir
        return f"""\
# Upstream spells the first key reporting-disabled, Debian's build reporting-enabled.
reporting-disabled = true
reporting-enabled = false
bind-address = "{LOOPBACK}:{self.rpc_port}"

[meta]
  dir = "{root / "meta"}"
  retention-autocreate = true
  logging-enabled = false

[data]
  dir = "{root / "data"}"
  wal-dir = "{root / "wal"}"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "1s"

[coordinator]
  log-queries-after = "0s"

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[http]
  enabled = true
  bind-address = "{LOOPBACK}:{self.http_port}"
  auth-enabled = false
  log-enabled = false
  write-tracing = false
  pprof-enabled = false
  https-enabled = false
  max-row-limit = 0

[ifql]
  enabled = false

[logging]
  format = "logfmt"
  level = "info"
  suppress-logo = true

[continuous_queries]
  enabled = false

[[graphite]]
  enabled = false

[[collectd]]
  enabled = false

[[opentsdb]]
  enabled = false

[[udp]]
  enabled = false
"""

    def command(self) -> list[str]:
        """Return the argv that runs influxd."""
        return [INFLUXD_BIN, "-config", str(self.conf_path)]

    def is_ready(self) -> bool:
        """Return whether GET /ping answers 204."""
        try:
            with self._opener.open(f"{self.url}/ping", timeout=1.0) as response:
                return bool(response.status == 204)
        except OSError:
            return False

    def _request(self, path: str, params: dict[str, str], body: bytes | None = None) -> tuple[int, bytes]:
        """POST to the HTTP API and return (status, body); raise ServerError on HTTP errors."""
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(url, data=body if body is not None else b"", method="POST")
        try:
            with self._opener.open(request, timeout=30.0) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")
            raise ServerError(f"influxd {path} answered {err.code}: {detail}") from None

    def query(self, q: str, db: str | None = None, epoch: str | None = "ns") -> dict[str, Any]:
        """Run an InfluxQL query (POST /query) and return the parsed JSON; raise on any error."""
        params = {"q": q}
        if db is not None:
            params["db"] = db
        if epoch is not None:
            params["epoch"] = epoch
        _, body = self._request("/query", params)
        result: dict[str, Any] = json.loads(body)
        errors = [result["error"]] if "error" in result else []
        errors += [stmt["error"] for stmt in result.get("results", []) if "error" in stmt]
        if errors:
            raise ServerError(f"influxd query {q!r} failed: {'; '.join(errors)}")
        return result

    def write(self, db: str, lines: str | Iterable[str], precision: str = "ns") -> None:
        """Write line-protocol points (POST /write)."""
        text = lines if isinstance(lines, str) else "\n".join(lines)
        self._request("/write", {"db": db, "precision": precision}, text.encode())

    def create_database(self, name: str) -> None:
        """Create a database (no-op if it exists)."""
        self.query(f"CREATE DATABASE {quote_ident(name)}")

    def drop_database(self, name: str) -> None:
        """Drop a database (no-op if it does not exist)."""
        self.query(f"DROP DATABASE {quote_ident(name)}")

    def databases(self) -> list[str]:
        """Return the names of all databases."""
        result = self.query("SHOW DATABASES")
        return [row[0] for series in result["results"][0].get("series", []) for row in series["values"]]

    def rows(self, measurement: str, db: str) -> list[dict[str, Any]]:
        """Return every point of a measurement as a column -> value dict, time in epoch ns."""
        result = self.query(f"SELECT * FROM {quote_ident(measurement)}", db=db, epoch="ns")
        rows: list[dict[str, Any]] = []
        for series in result["results"][0].get("series", []):
            tags = series.get("tags", {})
            for values in series["values"]:
                rows.append({**tags, **dict(zip(series["columns"], values, strict=True))})
        return rows

    def count(self, measurement: str, db: str) -> int:
        """Return the number of points in a measurement."""
        return len(self.rows(measurement, db))


def quote_ident(name: str) -> str:
    """Quote an InfluxQL identifier."""
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class MosquittoFactory(Protocol):
    """Creates private Mosquitto brokers that are stopped at test teardown."""

    def __call__(self, *, port: int | None = None, extra_conf: str = "", start: bool = True,
                 persistence: bool = True) -> Mosquitto:
        """Return a new broker, started unless start is False."""
        ...


class InfluxDFactory(Protocol):
    """Creates private influxd servers that are stopped at test teardown."""

    def __call__(self, *, start: bool = True) -> InfluxD:
        """Return a new influxd, started unless start is False."""
        ...


@atexit.register
def _kill_live_servers() -> None:
    """Kill every server still running when the interpreter exits."""
    for server in list(_live_servers):
        server.kill()


def make_certificates(where: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it: (ca.crt, server.crt, server.key)."""
    where.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = where / "ca.key", where / "ca.crt"
    key, csr, crt = where / "server.key", where / "server.csr", where / "server.crt"
    ext = where / "server.ext"
    ext.write_text(f"subjectAltName=IP:{LOOPBACK}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,"
                   "keyEncipherment\nextendedKeyUsage=serverAuth\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=cbrain test CA",
            "-keyout", str(ca_key), "-out", str(ca_crt))
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={LOOPBACK}", "-keyout", str(key), "-out", str(csr))
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
            "-days", "2", "-extfile", str(ext), "-out", str(crt))
    return ca_crt, crt, key
