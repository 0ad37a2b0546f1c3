"""A local Google Drive v3 server speaking the documented wire format of the endpoints used.

Implemented: ``GET /drive/v3/files`` (files.list: ``q`` with ``'<id>' in
parents`` and ``trashed = false``, ``pageSize``, ``pageToken`` /
``nextPageToken``), ``GET /drive/v3/files/{id}`` (files.get metadata, and
``alt=media`` with ``Range`` → 206 + ``Content-Range``; Google Docs answer 403
``fileNotDownloadable``). Errors use Drive's JSON error shape. Bearer tokens
are checked. Faults: cut a download after n bytes, corrupt a byte.
The official client (googleapiclient) is pointed here through
``client_options={"api_endpoint": ...}``.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


TOKEN = "ya29.test-access-token"
FOLDER = "application/vnd.google-apps.folder"


class DriveFake:
    def __init__(self) -> None:
        self.files: dict[str, dict] = {}
        self.lock = threading.Lock()
        self._ids = itertools.count(1)
        self.cuts: dict[str, list[int]] = {}  # id -> [after bytes, times]
        self.corrupt: dict[str, int] = {}  # id -> times
        self.requests = 0
        self.list_calls = 0
        self.media_ranges: list[str] = []
        self.token = TOKEN
        self.extra_tokens: set[str] = set()  # issued by /token to service accounts
        self.token_grants: list[dict] = []
        self.root_id = self.add_folder("partner-root", None)
        handler = type("H", (_Handler,), {"drive": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def api_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/drive/v3/"

    def connection(self, conn_id: str = "partner_gdrive", **extra):
        from transforms.sources.base import ConnectionInfo

        return ConnectionInfo(
            conn_id=conn_id, conn_type="google_cloud_platform", password=self.token,
            extra={"api_endpoint": self.api_endpoint, **extra},
        )  # fmt: skip

    # -- content management (what a partner does in the Drive UI) ----------
    def _new_id(self) -> str:
        return "1" + base64.urlsafe_b64encode(hashlib.sha256(str(next(self._ids)).encode()).digest()).decode()[:32]

    def _now(self) -> str:
        return datetime.now(tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def add_folder(self, name: str, parent: str | None) -> str:
        fid = self._new_id()
        with self.lock:
            self.files[fid] = {"id": fid, "name": name, "mimeType": FOLDER, "parents": [parent] if parent else [],
                               "modifiedTime": self._now(), "version": "1", "trashed": False}  # fmt: skip
        return fid

    def add_file(self, name: str, parent: str, data: bytes, mime: str = "application/dicom") -> str:
        fid = self._new_id()
        with self.lock:
            self.files[fid] = {"id": fid, "name": name, "mimeType": mime, "parents": [parent], "trashed": False,
                               "version": "1"}  # fmt: skip
            self._set_content(fid, data)
        return fid

    def add_google_doc(self, name: str, parent: str) -> str:
        fid = self._new_id()
        with self.lock:
            self.files[fid] = {"id": fid, "name": name, "mimeType": "application/vnd.google-apps.document",
                               "parents": [parent], "trashed": False, "version": "3", "modifiedTime": self._now()}  # fmt: skip
        return fid

    def _set_content(self, fid: str, data: bytes) -> None:
        f = self.files[fid]
        f["content"] = data
        f["size"] = str(len(data))
        f["md5Checksum"] = hashlib.md5(data).hexdigest()  # noqa: S324 - Drive's checksum is MD5
        f["modifiedTime"] = self._now()
        f["version"] = str(int(f.get("version", "0")) + 1)

    def update(self, fid: str, data: bytes) -> None:
        with self.lock:
            self._set_content(fid, data)

    def trash(self, fid: str) -> None:
        with self.lock:
            self.files[fid]["trashed"] = True

    # -- API views -----------------------------------------------------------
    def public(self, f: dict) -> dict:
        out = {k: v for k, v in f.items() if k not in ("content", "parents")}
        out["kind"] = "drive#file"
        out["parents"] = f["parents"]
        out["capabilities"] = {"canDownload": True}
        return out


_PARENT_RE = re.compile(r"'([^']+)'\s+in\s+parents")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    drive: DriveFake

    def log_message(self, *args) -> None:  # quiet
        pass

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, reason: str, message: str) -> None:
        self._json(status, {"error": {"code": status, "message": message,
                                      "errors": [{"domain": "global", "reason": reason, "message": message}]}})  # fmt: skip

    def do_POST(self) -> None:  # noqa: N802
        """OAuth 2.0 token endpoint for service accounts (JWT bearer grant, RFC 7523)."""
        d = self.drive
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if self.path != "/token" or form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self._json(400, {"error": "unsupported_grant_type"})
        header_b64, payload_b64, _sig = form["assertion"].split(".")
        payload = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
        d.token_grants.append(payload)
        if "drive.readonly" not in payload.get("scope", ""):
            return self._json(400, {"error": "invalid_scope"})
        token = f"ya29.sa-{len(d.token_grants)}"
        d.extra_tokens.add(token)
        self._json(200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    def do_GET(self) -> None:  # noqa: N802
        d = self.drive
        d.requests += 1
        auth = self.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") in d.extra_tokens:
            auth = f"Bearer {d.token}"
        if auth != f"Bearer {d.token}":
            return self._error(401, "authError", "Invalid Credentials")
        url = urlsplit(self.path)
        qs = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/drive/v3/files":
            return self._list(qs)
        m = re.fullmatch(r"/drive/v3/files/([^/]+)", url.path)
        if not m:
            return self._error(404, "notFound", "Not Found")
        with d.lock:
            f = d.files.get(m.group(1))
            f = dict(f) if f else None
        if f is None:
            return self._error(404, "notFound", f"File not found: {m.group(1)}.")
        if qs.get("alt") == "media":
            return self._media(f)
        return self._json(200, d.public(f))

    def _list(self, qs: dict) -> None:
        d = self.drive
        d.list_calls += 1
        m = _PARENT_RE.search(qs.get("q", ""))
        if not m:
            return self._error(400, "invalid", "Invalid Value")
        parent = m.group(1)
        want_trashed = "trashed = true" in qs.get("q", "")
        with d.lock:
            items = [d.public(f) for f in d.files.values()
                     if parent in f["parents"] and bool(f["trashed"]) == want_trashed]  # fmt: skip
        items.sort(key=lambda f: (f["name"], f["id"]))
        size = min(int(qs.get("pageSize", 100)), 1000)
        start = int(base64.urlsafe_b64decode(qs["pageToken"]).decode()) if qs.get("pageToken") else 0
        page = items[start : start + size]
        body: dict = {"kind": "drive#fileList", "incompleteSearch": False, "files": page}
        if start + size < len(items):
            body["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        self._json(200, body)

    def _media(self, f: dict) -> None:
        d = self.drive
        if f["mimeType"].startswith("application/vnd.google-apps."):
            return self._error(403, "fileNotDownloadable",
                               "Only files with binary content can be downloaded. Use Export with Docs Editors files.")  # fmt: skip
        data: bytes = f["content"]
        total = len(data)
        rng = self.headers.get("Range")
        status, start, end = 200, 0, total - 1
        if rng:
            d.media_ranges.append(rng)
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
            if not m:
                return self._error(400, "badRange", "bad range")
            start = int(m.group(1))
            end = min(int(m.group(2)) if m.group(2) else total - 1, total - 1)
            if start >= total:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{total}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start : end + 1]
        with d.lock:
            cut = d.cuts.get(f["id"])
            cut_at = None
            if cut and cut[1] > 0 and start <= cut[0] <= end:
                cut[1] -= 1
                cut_at = cut[0] - start
            if d.corrupt.get(f["id"], 0) > 0 and body:
                d.corrupt[f["id"]] -= 1
                body = bytes([body[0] ^ 0xFF]) + body[1:]
        self.send_response(status)
        self.send_header("Content-Type", f["mimeType"])
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{total}")
        self.end_headers()
        if cut_at is not None:
            self.wfile.write(body[:cut_at])
            self.wfile.flush()
            self.close_connection = True
            import socket

            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def close(self) -> None:
        pass


def start_drive() -> DriveFake:
    return DriveFake()
