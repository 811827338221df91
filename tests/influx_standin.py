"""A stand-in for InfluxDB 2.x and InfluxDB 3 Core (neither server can be installed here): a real HTTP
server on loopback that checks requests as each version does and answers as its source does, then
hands what it accepts to the real Debian influxd 1.x of the test run, so points are stored and InfluxQL
answered for real. Each bucket (2.x) or database (3) is a database of its own on that influxd.

What it follows (influxdata/influxdb: 2.7 http/legacy/*.go, http/write_handler.go, http/health.go,
dbrp/service.go; 3 Core influxdb3_server/src/http.rs):

  2.x  /ping      204, X-Influxdb-Version: v2.7.12, X-Influxdb-Build: OSS; no token needed
       /health    200 {"name": "influxdb", "status": "pass", "version": "v2.7.12", ...}; no token needed
       the rest   `Authorization: Token <token>` (v1 API also Basic, or u=&p=); else 401
                  {"code": "unauthorized", "message": "unauthorized access"}
       /write     (v1) db required; db/rp found through a DBRP mapping (rp empty: the default one),
                  explicit or virtual (every bucket: db = its name, rp autogen; "db/rp" buckets); none:
                  404 {"code": "not found", "message": "no dbrp mapping found"}
       /api/v2/write  org (400 "Please provide either orgID or org"), bucket (404 "bucket not found",
                  or `bucket "x" not found`), precision ns, us, ms or s (400)
       /query     InfluxQL with db and rp mapped as /write does; CREATE DATABASE "not implemented";
                  an unmapped database is a statement error "database not found: x" (HTTP 200)
       /api/v2/buckets, /api/v2/dbrps, /api/v2/orgs  as 2.x documents them (influxdb-client uses them)
  3    /ping, /health (200 "OK")  and everything else need the token (`Bearer`, `Token` or Basic)
                  unless started without one; 401 {"error": "the request was not authenticated"}
       /write, /api/v2/write  make the database at its first point; /query on a database with none
                  yet: 404 {"error": "database not found: x"}; CREATE DATABASE is not InfluxQL it runs
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from tests.servers import LOOPBACK, InfluxD, free_port

Mode = Literal["v2", "v3"]
PRECISIONS = ("ns", "us", "ms", "s")


@dataclass
class Call:
    """One request as it arrived (its Authorization header left out)."""

    method: str
    path: str
    params: dict[str, str]
    status: int = 0


@dataclass
class StandInState:
    """What the server holds: 2.x's organization, buckets and explicit DBRP mappings, 3's databases."""

    org_id: str = field(default_factory=lambda: secrets.token_hex(8))
    buckets: dict[str, dict[str, Any]] = field(default_factory=dict)  # by name
    dbrps: list[dict[str, Any]] = field(default_factory=list)
    databases: set[str] = field(default_factory=set)  # 3


class InfluxStandIn:
    """InfluxDB 2.x (`mode="v2"`) or 3 Core (`mode="v3"`) in front of a real influxd 1.x."""

    def __init__(self, backend: InfluxD, mode: Mode, *, token: str | None = "cbt-token", org: str = "cbt-org") -> None:
        self.backend, self.mode, self.token, self.org = backend, mode, token, org
        self.state = StandInState()
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        self.prefix = f"cbt_si_{secrets.token_hex(4)}"
        self.made: list[str] = []  # the influxd databases behind buckets and databases
        self.port = free_port()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                standin._serve(self, "GET")

            def do_HEAD(self) -> None:
                standin._serve(self, "HEAD")

            def do_POST(self) -> None:
                standin._serve(self, "POST")

        self.server = ThreadingHTTPServer((LOOPBACK, self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """Where the stand-in listens."""
        return f"http://{LOOPBACK}:{self.port}"

    def close(self) -> None:
        """Stop listening and drop the influxd databases behind it."""
        self.server.shutdown()
        self.server.server_close()
        for name in self.made:
            self.backend.drop_database(name)

    # -- what a test (or an operator's `influx` CLI) does on the server ------------------------------

    def create_bucket(self, name: str) -> dict[str, Any]:
        """`influx bucket create --name NAME` (2.x); returns the bucket."""
        with self.lock:
            return self._create_bucket(name)

    def create_dbrp(self, db: str, rp: str, bucket_id: str, default: bool = True) -> dict[str, Any]:
        """`influx v1 dbrp create --db DB --rp RP --bucket-id ID [--default]` (2.x)."""
        with self.lock:
            return self._create_dbrp({"database": db, "retention_policy": rp, "bucketID": bucket_id,
                                      "default": default})

    def backend_db(self, name: str) -> str:
        """The influxd database holding a bucket's (2.x) or a database's (3) points."""
        if self.mode == "v2":
            return f"{self.prefix}_{self.state.buckets[name]['id']}"
        return f"{self.prefix}_{re.sub(r'[^A-Za-z0-9_]', '_', name)}"

    def requests_to(self, path: str) -> list[Call]:
        """The requests that came for a path."""
        with self.lock:
            return [c for c in self.calls if c.path == path]

    # -- serving ------------------------------------------------------------------------------------

    def _serve(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urllib.parse.urlsplit(h.path)
        params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        if method == "POST" and h.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            params |= dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
        call = Call(method, url.path, {k: v for k, v in params.items() if k != "p"})
        with self.lock:
            self.calls.append(call)
            status, headers, out = (self._v2 if self.mode == "v2" else self._v3)(method, url.path, params,
                                                                                   h.headers, body)
        call.status = status
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(out)))
        h.end_headers()
        if method != "HEAD":
            h.wfile.write(out)

    def _authorized(self, path: str, params: dict[str, str], headers: Any, schemes: tuple[str, ...]) -> bool:
        if self.token is None:
            return True
        if path in ("/write", "/query") and params.get("p") == self.token:
            return True
        scheme, _, value = (headers.get("Authorization") or "").partition(" ")
        if scheme in schemes and value.split(":")[-1] == self.token:
            return True
        if scheme == "Basic":
            try:
                return base64.b64decode(value).decode().rpartition(":")[2] == self.token
            except ValueError:
                return False
        return False

    # -- InfluxDB 2.x -------------------------------------------------------------------------------

    def _v2(self, method: str, path: str, params: dict[str, str], headers: Any,
            body: bytes) -> tuple[int, dict[str, str], bytes]:
        build = {"X-Influxdb-Build": "OSS", "X-Influxdb-Version": "v2.7.12"}
        if path == "/ping":
            return 204, build, b""
        if path == "/health":
            return 200, build | {"Content-Type": "application/json; charset=utf-8"}, json.dumps(
                {"name": "influxdb", "message": "ready for queries and writes", "status": "pass", "checks": [],
                 "version": "v2.7.12", "commit": "ca7a3b8"}).encode()
        if not self._authorized(path, params, headers, ("Token",)):
            return _v2_error(401, "unauthorized", "unauthorized access", build)
        if path == "/write" and method == "POST":
            if not params.get("db"):
                return _v2_error(400, "invalid", "missing db", build)
            bucket = self._mapped(params["db"], params.get("rp", ""))
            if bucket is None:
                return _v2_error(404, "not found", "no dbrp mapping found", build)
            return self._forward_write(self.backend_db(bucket["name"]), params.get("precision") or "ns", body, build)
        if path == "/api/v2/write" and method == "POST":
            return self._v2_write(params, body, build)
        if path == "/query":
            return self._v2_query(params, build)
        return self._v2_api(method, path, params, body, build)

    def _v2_write(self, params: dict[str, str], body: bytes,
                  build: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        precision = params.get("precision") or "ns"
        if precision not in PRECISIONS:
            return _v2_error(400, "invalid", "invalid precision; valid precision units are ns, us, ms, and s", build)
        if not params.get("bucket"):
            return _v2_error(404, "not found", "bucket not found", build)
        if not (params.get("org") or params.get("orgID")):
            return _v2_error(400, "invalid", "Please provide either orgID or org", build)
        if params.get("org", self.org) != self.org or params.get("orgID", self.state.org_id) != self.state.org_id:
            return _v2_error(404, "not found", f"organization name \"{params.get('org')}\" not found", build)
        name = params["bucket"]
        if name not in self.state.buckets:
            return _v2_error(404, "not found", f'bucket "{name}" not found', build)
        return self._forward_write(self.backend_db(name), precision, body, build)

    def _v2_query(self, params: dict[str, str], build: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        q = params.get("q", "")
        if re.match(r"\s*CREATE\s+DATABASE", q, re.I):
            return _results(build, "not implemented: CREATE DATABASE")
        db, rp = params.get("db", ""), params.get("rp", "")
        bucket = self._mapped(db, rp) if db else None
        if bucket is None:
            return _results(build, f"database not found: {db}")
        return self._forward_query(self.backend_db(bucket["name"]), params, build)

    def _v2_api(self, method: str, path: str, params: dict[str, str], body: bytes,
                build: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        doc = json.loads(body) if body else {}
        if path == "/api/v2/orgs" and method == "GET":
            orgs = [{"id": self.state.org_id, "name": self.org}]
            if params.get("org") not in (None, self.org):
                return _v2_error(404, "not found", f"organization name \"{params['org']}\" not found", build)
            return _json(200, build, {"orgs": orgs})
        if path == "/api/v2/buckets" and method == "GET":
            found = [b for b in self.state.buckets.values() if params.get("name") in (None, b["name"])]
            return _json(200, build, {"buckets": found})
        if path == "/api/v2/buckets" and method == "POST":
            if doc.get("orgID") != self.state.org_id or not doc.get("name"):
                return _v2_error(400, "invalid", "bucket requires orgID and name", build)
            if doc["name"] in self.state.buckets:
                return _v2_error(422, "conflict", f"bucket with name {doc['name']} already exists", build)
            return _json(201, build, self._create_bucket(doc["name"]))
        if path == "/api/v2/dbrps" and method == "GET":
            if params.get("org") != self.org and params.get("orgID") != self.state.org_id:
                return _v2_error(400, "invalid", "Please provide either orgID or org", build)
            return _json(200, build, {"content": self._dbrps(params)})
        if path == "/api/v2/dbrps" and method == "POST":
            return _json(201, build, self._create_dbrp(doc))
        return _v2_error(404, "not found", "path not found", build)

    def _create_bucket(self, name: str) -> dict[str, Any]:
        bucket = {"id": secrets.token_hex(8), "name": name, "orgID": self.state.org_id, "type": "user",
                  "retentionRules": []}
        self.state.buckets[name] = bucket
        self._make(self.backend_db(name))
        return bucket

    def _create_dbrp(self, doc: dict[str, Any]) -> dict[str, Any]:
        mapping = {"id": secrets.token_hex(8), "orgID": self.state.org_id, "bucketID": doc["bucketID"],
                   "database": doc["database"], "retention_policy": doc["retention_policy"],
                   "default": bool(doc.get("default")), "virtual": False}
        self.state.dbrps.append(mapping)
        return mapping

    def _dbrps(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """Explicit mappings, then each bucket's virtual one (dbrp/service.go's FindMany)."""
        out = list(self.state.dbrps)
        for b in self.state.buckets.values():
            db, _, rp = b["name"].partition("/")
            rp = rp or "autogen"
            if any(m["database"] == db and m["retention_policy"] == rp for m in out):
                continue
            default = b["name"] == db and not any(m["database"] == db and m["default"] for m in out)
            out.append({"id": b["id"], "orgID": b["orgID"], "bucketID": b["id"], "database": db,
                        "retention_policy": rp, "default": default, "virtual": True})
        want = {"database": params.get("db"), "retention_policy": params.get("rp")}
        out = [m for m in out if all(v is None or m[k] == v for k, v in want.items())]
        if params.get("default") is not None:
            out = [m for m in out if m["default"] == (params["default"] == "true")]
        return out

    def _mapped(self, db: str, rp: str) -> dict[str, Any] | None:
        """The bucket a v1 db/rp writes to (rp empty: the default mapping's), or None."""
        found = self._dbrps({"db": db, "rp": rp} if rp else {"db": db, "default": "true"})
        if not found:
            return None
        return next((b for b in self.state.buckets.values() if b["id"] == found[0]["bucketID"]), None)

    # -- InfluxDB 3 Core ----------------------------------------------------------------------------

    def _v3(self, method: str, path: str, params: dict[str, str], headers: Any,
            body: bytes) -> tuple[int, dict[str, str], bytes]:
        build = {"X-Influxdb-Build": "Core", "X-Influxdb-Version": "3.10.1"}
        scheme = (headers.get("Authorization") or "").partition(" ")[0]
        if scheme and scheme not in ("Bearer", "Token", "Basic"):
            return 400, {}, (b"Authorization header was malformed, the request was not in the form of 'Authorization:"
                             b" <auth-scheme> <token>', supported auth-schemes are Bearer, Token and Basic")
        if not self._authorized(path, params, headers, ("Bearer", "Token")):
            return 401, {}, b'{"error": "the request was not authenticated"}'
        if path == "/ping":
            return 200, build | {"Content-Type": "application/json"}, json.dumps(
                {"version": "3.10.1", "revision": "a1b2c3d", "process_id": "0195f3c2-0000-7000-8000-000000000000",
                 "product_name": "InfluxDB 3 Core"}).encode()
        if path in ("/health", "/api/v1/health"):
            return 200, {"Content-Type": "text/plain; charset=utf-8"}, b"OK"
        if path in ("/write", "/api/v2/write") and method == "POST":
            db = params.get("db") if path == "/write" else params.get("bucket")
            if not db:
                return 400, {}, b"missing query parameter 'db'"
            if db not in self.state.databases:
                self._make(self.backend_db(db))
                self.state.databases.add(db)
            return self._forward_write(self.backend_db(db), params.get("precision") or "ns", body, {})
        if path == "/query":
            db = params.get("db", "")
            if re.match(r"\s*CREATE\s+DATABASE", params.get("q", ""), re.I):
                return 400, {}, b"error in InfluxQL statement: CREATE DATABASE is not supported"
            if db not in self.state.databases:
                return 404, {"Content-Type": "application/json"}, json.dumps(
                    {"error": f"database not found: {db}"}).encode()
            return self._forward_query(self.backend_db(db), params, {})
        return 404, {}, b"not found"

    # -- the real influxd behind it -----------------------------------------------------------------

    def _make(self, name: str) -> None:
        self.backend.create_database(name)
        self.made.append(name)

    def _backend(self, path: str, params: dict[str, str], body: bytes) -> tuple[int, bytes]:
        url = f"{self.backend.url}{path}?{urllib.parse.urlencode(params)}"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(urllib.request.Request(url, data=body, method="POST"), timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def _forward_write(self, db: str, precision: str, body: bytes,
                       build: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        status, out = self._backend("/write", {"db": db, "precision": precision}, body)
        if status == 400 and self.mode == "v2":
            return _v2_error(400, "invalid", json.loads(out).get("error", "unable to parse points"), build)
        return status, build, out

    def _forward_query(self, db: str, params: dict[str, str],
                       build: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        fwd = {"db": db, "q": params.get("q", "")} | ({"epoch": params["epoch"]} if "epoch" in params else {})
        status, out = self._backend("/query", fwd, b"")
        return status, build | {"Content-Type": "application/json"}, out


def _json(status: int, headers: dict[str, str], doc: Any) -> tuple[int, dict[str, str], bytes]:
    return status, headers | {"Content-Type": "application/json; charset=utf-8"}, json.dumps(doc).encode()


def _v2_error(status: int, code: str, message: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """2.x's error: JSON {"code", "message"} and the code in X-Platform-Error-Code."""
    return _json(status, headers | {"X-Platform-Error-Code": code}, {"code": code, "message": message})


def _results(headers: dict[str, str], error: str) -> tuple[int, dict[str, str], bytes]:
    """A /query answer whose one statement failed (HTTP 200, as 1.x and 2.x's v1 API answer)."""
    return _json(200, headers, {"results": [{"statement_id": 0, "error": error}]})
