"""A stand-in for Grafana's HTTP API (no Grafana server can be installed here): a real HTTP server on
loopback that checks and answers requests as Grafana 11's documented API does, for the endpoints
`cbrain dashboards push` uses, and records every request.

Documented behaviour it follows (grafana.com/docs/grafana/latest/developers/http_api/):
  GET  /api/health                          200 {"database": "ok", "version": ...}, no authentication
  every other /api call                     Authorization: Bearer <token>; unknown token → 401
  GET  /api/datasources/uid/:uid            200 the data source, 404 {"message": "Data source not found"}
  POST /api/datasources                     name, type, access required (400); same name or uid → 409
  PUT  /api/datasources/uid/:uid            404 when missing; 200 {"message": "Datasource updated", ...}
  GET  /api/folders/:uid                    200 the folder, 404 {"message": "folder not found"}
  POST /api/folders                         title required (400); an existing uid → 409
  PUT  /api/folders/:uid                    needs version or overwrite: true (else 412)
  POST /api/dashboards/db                   {"dashboard": {...title, uid...}, "folderUid", "overwrite"}: an
                                            existing uid without overwrite → 412; an "id" Grafana does not
                                            know → 404; 200 {"id", "uid", "url", "status": "success", "version"}
A viewer's token may read but every write answers 403 {"message": "Permission denied"}.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.servers import LOOPBACK


@dataclass
class Call:
    """One request as it arrived."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class GrafanaState:
    """What the stand-in holds, as Grafana's database would."""

    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_id: int = 1


class GrafanaApiStandIn:
    """Answers as Grafana's HTTP API for tokens `admin_token` (Admin) and `viewer_token` (Viewer)."""

    def __init__(self, admin_token: str = "glsa_admin_token", viewer_token: str = "glsa_viewer_token") -> None:
        self.admin_token, self.viewer_token = admin_token, viewer_token
        self.state = GrafanaState()
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    self._send(400, {"message": "bad request data"})
                    return
                with standin.lock:
                    standin.calls.append(Call(self.command, self.path, dict(self.headers.items()), body))
                    status, answer = standin.answer(self.command, self.path.split("?")[0],
                                                    self.headers.get("Authorization"), body,
                                                    self.headers.get("Content-Type", ""))
                self._send(status, answer)

            def _send(self, status: int, answer: Any) -> None:
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.url = f"http://{LOOPBACK}:{self.server.server_address[1]}"

    def start(self) -> GrafanaApiStandIn:
        """Serve in a thread."""
        threading.Thread(target=self.server.serve_forever, daemon=True, name="grafana-standin").start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()

    # ---- the API ---------------------------------------------------------------------------------

    def answer(self, method: str, path: str, auth: str | None, body: Any, content_type: str) -> tuple[int, Any]:
        """Status and JSON body, as Grafana would answer."""
        if method == "GET" and path == "/api/health":
            return 200, {"commit": "standin", "database": "ok", "version": "11.6.0"}
        token = auth.removeprefix("Bearer ") if auth and auth.startswith("Bearer ") else None
        if token not in (self.admin_token, self.viewer_token):
            return 401, {"message": "Unauthorized"}
        if method in ("POST", "PUT", "DELETE"):
            if token == self.viewer_token:
                return 403, {"message": "Permission denied"}
            if not content_type.startswith("application/json") or not isinstance(body, dict):
                return 400, {"message": "bad request data"}
        s = self.state
        m = re.fullmatch(r"/api/datasources/uid/([^/]+)", path)
        if m and method == "GET":
            ds = s.datasources.get(m[1])
            return (200, ds) if ds else (404, {"message": "Data source not found"})
        if path == "/api/datasources" and method == "POST":
            if not all(isinstance(body.get(k), str) and body[k] for k in ("name", "type", "access")):
                return 400, {"message": "bad request data"}
            if any(d["name"] == body["name"] for d in s.datasources.values()) or body.get("uid") in s.datasources:
                return 409, {"message": "data source with the same name already exists"}
            ds = {**body, "id": s.next_id, "uid": body.get("uid") or f"uid{s.next_id}", "readOnly": False}
            s.next_id += 1
            s.datasources[ds["uid"]] = ds
            return 200, {"datasource": ds, "id": ds["id"], "message": "Datasource added", "name": ds["name"]}
        if m and method == "PUT":
            old = s.datasources.get(m[1])
            if old is None:
                return 404, {"message": "Data source not found"}
            ds = {**body, "id": old["id"], "uid": m[1]}
            s.datasources[m[1]] = ds
            return 200, {"datasource": ds, "id": ds["id"], "message": "Datasource updated", "name": ds["name"]}
        m = re.fullmatch(r"/api/folders/([^/]+)", path)
        if m and method == "GET":
            f = s.folders.get(m[1])
            return (200, f) if f else (404, {"message": "folder not found", "status": "not-found"})
        if path == "/api/folders" and method == "POST":
            if not isinstance(body.get("title"), str) or not body["title"]:
                return 400, {"message": "folder title cannot be empty"}
            uid = body.get("uid") or f"f{s.next_id}"
            if uid in s.folders:
                return 409, {"message": "a folder with the same uid already exists"}
            f = {"id": s.next_id, "uid": uid, "title": body["title"], "version": 1, "url": f"/dashboards/f/{uid}/"}
            s.next_id += 1
            s.folders[uid] = f
            return 200, f
        if m and method == "PUT":
            f = s.folders.get(m[1])
            if f is None:
                return 404, {"message": "folder not found"}
            if not body.get("overwrite") and body.get("version") != f["version"]:
                return 412, {"message": "the folder has been changed by someone else", "status": "version-mismatch"}
            f = {**f, "title": body.get("title", f["title"]), "version": f["version"] + 1}
            s.folders[m[1]] = f
            return 200, f
        if path == "/api/dashboards/db" and method == "POST":
            d = body.get("dashboard")
            if not isinstance(d, dict) or not d.get("title"):
                return 400, {"message": "Dashboard title cannot be empty"}
            folder = body.get("folderUid")
            if folder is not None and folder not in s.folders:
                return 400, {"message": "folder not found"}
            uid = d.get("uid") or f"d{s.next_id}"
            old = s.dashboards.get(uid)
            if d.get("id") is not None and (old is None or old["dashboard"]["id"] != d["id"]):
                return 404, {"message": "Dashboard not found", "status": "not-found"}
            if old is not None and not body.get("overwrite"):
                return 412, {"message": "A dashboard with the same uid already exists", "status": "name-exists"}
            did = old["dashboard"]["id"] if old else s.next_id
            s.next_id += 0 if old else 1
            version = old["dashboard"]["version"] + 1 if old else 1
            s.dashboards[uid] = {"dashboard": {**d, "id": did, "uid": uid, "version": version}, "folderUid": folder}
            return 200, {"id": did, "uid": uid, "url": f"/d/{uid}/", "status": "success", "version": version,
                         "slug": uid}
        return 404, {"message": "Not found"}
