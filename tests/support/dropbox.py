"""A local Dropbox API v2 server speaking the documented wire format of the endpoints used.

Implemented: ``POST /2/files/list_folder`` and ``/2/files/list_folder/continue``
(JSON in, ``entries`` / ``cursor`` / ``has_more`` out), ``/2/files/get_metadata``,
and the content endpoint ``/2/files/download`` (argument in the
``Dropbox-API-Arg`` header, metadata in ``Dropbox-API-Result``, body the
bytes, ``Range`` honoured with 206). Errors use Dropbox's ``error_summary`` /
``error`` JSON (409 route errors, 401 auth errors).

The SDK only talks HTTPS to api.dropboxapi.com / content.dropboxapi.com, so
this server is reached as an HTTPS proxy: it answers ``CONNECT``, then
terminates TLS with a certificate for those names signed by a test CA the
client trusts. The SDK itself is unmodified.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import socket
import ssl
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


from support.tls import make_ca_and_cert

TOKEN = "sl.test-dropbox-token"


def content_hash(data: bytes) -> str:
    """Dropbox content hash, written from the spec independently of the connector's."""
    blocks = [hashlib.sha256(data[i : i + 4 * 1024 * 1024]).digest() for i in range(0, len(data), 4 * 1024 * 1024)]
    return hashlib.sha256(b"".join(blocks)).hexdigest()


class DropboxFake:
    def __init__(self) -> None:
        self.files: dict[str, dict] = {}  # path_lower -> record
        self.lock = threading.Lock()
        self._ids = itertools.count(1)
        self._revs = itertools.count(0x100000000)
        self.cuts: dict[str, list[int]] = {}  # path_lower -> [after, times]
        self.corrupt: dict[str, int] = {}
        self.ranges: list[str] = []
        self.list_calls = 0
        self.token = TOKEN
        self.ca, cert, key = make_ca_and_cert(["api.dropboxapi.com", "content.dropboxapi.com"])
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(cert, key)
        api = type("Api", (_ApiHandler,), {"fake": self})
        proxy = type("Proxy", (_ConnectHandler,), {"fake": self, "api": api})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), proxy)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def connection(self, conn_id: str = "partner_dropbox", **extra):
        from transforms.sources.base import ConnectionInfo

        return ConnectionInfo(
            conn_id=conn_id, conn_type="dropbox", password=self.token,
            extra={"proxy": f"http://127.0.0.1:{self.port}", "ca_certs": str(self.ca), **extra},
        )  # fmt: skip

    # -- what a partner does in the Dropbox app --------------------------------
    def _now(self) -> str:
        return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _ensure_folders(self, path: str) -> None:
        parts = path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            p = "/" + "/".join(parts[:i])
            if p.lower() not in self.files:
                self.files[p.lower()] = {".tag": "folder", "name": parts[i - 1], "path_display": p,
                                         "path_lower": p.lower(), "id": f"id:f{next(self._ids):020d}"}  # fmt: skip

    def mkdir(self, path: str) -> None:
        with self.lock:
            self._ensure_folders(path.rstrip("/") + "/x")

    def put(self, path: str, data: bytes, downloadable: bool = True) -> dict:
        with self.lock:
            self._ensure_folders(path)
            old = self.files.get(path.lower())
            rec = {
                ".tag": "file", "name": path.rsplit("/", 1)[-1], "path_display": path, "path_lower": path.lower(),
                "id": old["id"] if old else f"id:{base64.urlsafe_b64encode(next(self._ids).to_bytes(12)).decode()}",
                "client_modified": self._now(), "server_modified": self._now(),
                "rev": f"{next(self._revs):x}", "size": len(data), "is_downloadable": downloadable,
                "content_hash": content_hash(data), "data": data,
            }  # fmt: skip
            self.files[path.lower()] = rec
            return rec

    def delete(self, path: str) -> None:
        with self.lock:
            self.files.pop(path.lower())

    def public(self, rec: dict) -> dict:
        return {k: v for k, v in rec.items() if k != "data"}

    def lookup(self, path: str) -> dict | None:
        if path.startswith("id:"):
            return next((r for r in self.files.values() if r["id"] == path), None)
        return self.files.get(path.lower())


class _ConnectHandler(BaseHTTPRequestHandler):
    """HTTPS proxy front: CONNECT api/content.dropboxapi.com:443, then serve the API over TLS."""

    protocol_version = "HTTP/1.1"
    fake: DropboxFake
    api: type

    def log_message(self, *args) -> None:
        pass

    def do_CONNECT(self) -> None:  # noqa: N802
        host = self.path.split(":")[0]
        if host not in ("api.dropboxapi.com", "content.dropboxapi.com"):
            self.send_error(403, "only Dropbox hosts")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        try:
            tls_sock = self.fake.tls.wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError):
            self.close_connection = True
            return
        try:
            self.api(tls_sock, self.client_address, self.server)
        except (ssl.SSLError, OSError):
            pass
        finally:
            self.close_connection = True
            try:
                tls_sock.close()
            except OSError:
                pass


class _ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: DropboxFake

    def setup(self) -> None:
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, *args) -> None:
        pass

    def _send_json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route_error(self, summary: str, error: dict) -> None:
        self._send_json(409, {"error_summary": summary, "error": error})

    def do_POST(self) -> None:  # noqa: N802
        f = self.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Authorization") != f"Bearer {f.token}":
            return self._send_json(401, {"error_summary": "invalid_access_token/..",
                                         "error": {".tag": "invalid_access_token"}})  # fmt: skip
        route = self.path
        if route == "/2/files/download":
            return self._download(json.loads(self.headers["Dropbox-API-Arg"]))
        arg = json.loads(body or b"null")
        if route == "/2/files/list_folder":
            return self._list(arg["path"], bool(arg.get("recursive")), int(arg.get("limit") or 2000), 0)
        if route == "/2/files/list_folder/continue":
            c = json.loads(base64.urlsafe_b64decode(arg["cursor"]))
            return self._list(c["path"], c["recursive"], c["limit"], c["offset"])
        if route == "/2/files/get_metadata":
            with f.lock:
                rec = f.lookup(arg["path"])
            if rec is None:
                return self._route_error("path/not_found/..", {".tag": "path", "path": {".tag": "not_found"}})
            return self._send_json(200, f.public(rec))
        self._send_json(404, {"error_summary": "unknown route"})

    def _list(self, path: str, recursive: bool, limit: int, offset: int) -> None:
        f = self.fake
        f.list_calls += 1
        base = path.lower().rstrip("/")
        with f.lock:
            if base and (base not in f.files or f.files[base][".tag"] != "folder"):
                return self._route_error("path/not_found/..", {".tag": "path", "path": {".tag": "not_found"}})
            items = sorted(
                (r for p, r in f.files.items()
                 if p.startswith(base + "/") and (recursive or "/" not in p[len(base) + 1 :])),
                key=lambda r: r["path_lower"],
            )  # fmt: skip
            page = [f.public(r) for r in items[offset : offset + limit]]
        more = offset + limit < len(items)
        cursor = base64.urlsafe_b64encode(json.dumps(
            {"path": path, "recursive": recursive, "limit": limit, "offset": offset + len(page)}).encode()).decode()  # fmt: skip
        self._send_json(200, {"entries": page, "cursor": cursor, "has_more": more})

    def _download(self, arg: dict) -> None:
        f = self.fake
        with f.lock:
            rec = f.lookup(arg["path"])
        if rec is None or rec[".tag"] != "file":
            return self._route_error("path/not_found/..", {".tag": "path", "path": {".tag": "not_found"}})
        data: bytes = rec["data"]
        start, status = 0, 200
        rng = self.headers.get("Range")
        if rng:
            f.ranges.append(rng)
            start = int(rng.split("=")[1].split("-")[0])
            status = 206
        body = data[start:]
        key = rec["path_lower"]
        with f.lock:
            cut = f.cuts.get(key)
            cut_at = None
            if cut and cut[1] > 0 and start <= cut[0] < len(data):
                cut[1] -= 1
                cut_at = cut[0] - start
            if f.corrupt.get(key, 0) > 0 and body:
                f.corrupt[key] -= 1
                body = bytes([body[-1] ^ 0xFF]) if len(body) == 1 else body[:-1] + bytes([body[-1] ^ 0xFF])
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Dropbox-API-Result", json.dumps(f.public(rec)))
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if cut_at is not None:
            self.wfile.write(body[:cut_at])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(body)



__all__ = ["DropboxFake", "content_hash"]
