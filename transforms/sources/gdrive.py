"""Google Drive source (google-api-python-client, Drive API v3): a shared folder.

Connection (Airflow ``google_cloud_platform`` style): extra ``keyfile_dict``
(service-account JSON, as text or mapping) or ``key_path`` (file), scoped to
``drive.readonly``; or an OAuth access token in the password / extra
``access_token``. Extra ``api_endpoint`` points the official client at another
endpoint (a private gateway; the tests' loopback server).

Listing walks the folder tree with ``files.list`` (``'<id>' in parents``),
1,000 items a page, following ``nextPageToken``. Google Docs/Sheets/Slides,
shortcuts and files whose ``capabilities.canDownload`` is false are not
files: they are skipped with the reason. Downloads are ``files.get
alt=media`` in ``Range`` chunks (bounded memory, resumable at any offset),
verified against ``md5Checksum``; a mismatch re-reads the metadata to tell a
file edited meanwhile (fetch again) from a corrupted transfer (retry).
Drive allows two files with the same name in one folder: the remote id, not
the name, identifies a file, and the landing name is made unique.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import httplib2
from google.auth.exceptions import GoogleAuthError
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from transforms.sources.base import (
    ConnectionInfo,
    ConnectionNotFound,
    NotFoundAtSource,
    RemoteEntry,
    Source,
    SourceError,
    TransientError,
)

SCOPES = ["https://www.googleapis.com/auth/drive.readonly"]
FOLDER = "application/vnd.google-apps.folder"
SHORTCUT = "application/vnd.google-apps.shortcut"
FIELDS = "id, name, mimeType, size, md5Checksum, modifiedTime, version, trashed, capabilities/canDownload"
CHUNK = 8 * 1024 * 1024
_NET = (httplib2.HttpLib2Error, http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError, OSError)


def _credentials(conn: ConnectionInfo) -> Any:
    extra = conn.extra
    keyfile = extra.get("keyfile_dict") or extra.get("extra__google_cloud_platform__keyfile_dict")
    key_path = extra.get("key_path") or extra.get("extra__google_cloud_platform__key_path")
    try:
        if keyfile or key_path:
            from google.oauth2 import service_account

            if key_path:
                return service_account.Credentials.from_service_account_file(key_path, scopes=SCOPES)
            info = json.loads(keyfile) if isinstance(keyfile, str) else dict(keyfile)
            return service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
    except (ValueError, KeyError, OSError) as exc:
        raise ConnectionNotFound(conn.conn_id, f"unusable service-account key: {exc}") from None
    token = extra.get("access_token") or conn.password
    if token:
        from google.oauth2.credentials import Credentials

        return Credentials(token=token)
    raise ConnectionNotFound(conn.conn_id, "has no keyfile_dict, key_path or access token")


def _http_error(exc: HttpError, conn_id: str, what: str) -> Exception:
    status = int(getattr(exc.resp, "status", 0) or 0)
    if status in (401,):
        return ConnectionNotFound(conn_id, f"refused by Google Drive ({status}) while {what}")
    if status == 404:
        return NotFoundAtSource(what)
    reason = ""
    try:
        reason = json.loads(exc.content or b"{}").get("error", {}).get("errors", [{}])[0].get("reason", "")
    except (ValueError, AttributeError, IndexError):
        pass
    if status == 429 or status >= 500 or reason in ("rateLimitExceeded", "userRateLimitExceeded"):
        return TransientError(f"drive {status} {reason} while {what}")
    return SourceError(f"drive {status} while {what}: {exc}")


class DriveSource(Source):
    kind = "gdrive"
    max_workers = 4  # httplib2 is not thread-safe: one client per worker (clone)

    def __init__(self, conn: ConnectionInfo, folder_id: str, chunk_size: int = CHUNK, page_size: int = 1000) -> None:
        self.conn = conn
        self.folder_id = folder_id
        self.chunk_size = chunk_size
        self.page_size = page_size
        creds = _credentials(conn)
        options = {"api_endpoint": conn.extra["api_endpoint"]} if conn.extra.get("api_endpoint") else None
        self._http = AuthorizedHttp(creds, http=httplib2.Http(timeout=float(conn.extra.get("timeout", 60))))
        self.service = build(
            "drive", "v3", http=self._http, client_options=options, static_discovery=True, cache_discovery=False
        )
        try:
            root = self.service.files().get(fileId=folder_id, fields="id, mimeType", supportsAllDrives=True).execute()
        except HttpError as exc:
            err = _http_error(exc, conn.conn_id, f"opening folder {folder_id}")
            if isinstance(err, NotFoundAtSource):
                raise SourceError(f"drive folder {folder_id!r} not found via connection {conn.conn_id!r}") from None
            raise err from None
        except GoogleAuthError as exc:
            raise ConnectionNotFound(conn.conn_id, f"Google refused the credentials: {exc}") from None
        except _NET as exc:
            raise SourceError(f"drive endpoint of connection {conn.conn_id!r} unreachable: {exc}") from None
        if root.get("mimeType") != FOLDER:
            raise SourceError(f"drive id {folder_id!r} is not a folder")

    def clone(self) -> "DriveSource":
        return type(self)(self.conn, self.folder_id, self.chunk_size, self.page_size)

    def _entry(self, f: dict[str, Any], path: str) -> RemoteEntry:
        mime = f.get("mimeType", "")
        md5 = f.get("md5Checksum")
        can = (f.get("capabilities") or {}).get("canDownload", True)
        base = dict(remote_id=f["id"], path=path, mtime=f.get("modifiedTime"))
        if mime == SHORTCUT:
            return RemoteEntry(**base, size=None, version="shortcut", downloadable=False, skip_reason="shortcut")
        if mime.startswith("application/vnd.google-apps."):
            return RemoteEntry(
                **base, size=None, version=str(f.get("version")), downloadable=False,
                skip_reason="not_downloadable", extra={"mimeType": mime},
            )  # fmt: skip
        if not can:
            return RemoteEntry(**base, size=None, version=str(f.get("version")), downloadable=False,
                               skip_reason="not_downloadable")  # fmt: skip
        return RemoteEntry(
            **base,
            size=int(f["size"]) if f.get("size") is not None else None,
            version=f"{f.get('version')}:{md5 or f.get('modifiedTime')}",
            source_hash=f"md5:{md5}" if md5 else None,
            extra={"mimeType": mime},
        )

    def _pages(self, folder_id: str) -> Iterator[dict[str, Any]]:
        token = None
        while True:
            try:
                resp = (
                    self.service.files()
                    .list(
                        q=f"'{folder_id}' in parents and trashed = false",
                        fields=f"nextPageToken, files({FIELDS})",
                        pageSize=self.page_size,
                        pageToken=token,
                        supportsAllDrives=True,
                        includeItemsFromAllDrives=True,
                        orderBy="name",
                    )
                    .execute(num_retries=3)
                )
            except HttpError as exc:
                raise _http_error(exc, self.conn.conn_id, f"listing folder {folder_id}") from None
            yield from resp.get("files", [])
            token = resp.get("nextPageToken")
            if not token:
                return

    def list(self) -> Iterator[RemoteEntry]:
        stack = [(self.folder_id, "")]
        seen_folders = {self.folder_id}  # a folder can have several parents: never loop
        while stack:
            fid, prefix = stack.pop()
            for f in self._pages(fid):
                path = f"{prefix}/{f['name']}" if prefix else f["name"]
                if f.get("mimeType") == FOLDER:
                    if f["id"] not in seen_folders:
                        seen_folders.add(f["id"])
                        stack.append((f["id"], path))
                    continue
                yield self._entry(f, path)

    def stat(self, entry: RemoteEntry) -> RemoteEntry | None:
        try:
            f = self.service.files().get(fileId=entry.remote_id, fields=FIELDS, supportsAllDrives=True).execute(
                num_retries=3
            )
        except HttpError as exc:
            err = _http_error(exc, self.conn.conn_id, entry.path)
            if isinstance(err, NotFoundAtSource):
                return None
            raise err from None
        except _NET as exc:
            raise TransientError(str(exc)) from exc
        if f.get("trashed"):
            return None
        return self._entry(f, entry.path)

    def open_stream(self, entry: RemoteEntry, offset: int = 0) -> Iterator[bytes]:
        size = entry.size
        pos = offset
        while size is None or pos < size:
            req = self.service.files().get_media(fileId=entry.remote_id, supportsAllDrives=True)
            # files.get alt=media honours Range: one bounded chunk per request.
            req.headers["range"] = f"bytes={pos}-{pos + self.chunk_size - 1}"
            try:
                # num_retries: the client's own backoff for 429/5xx/rate-limit 403s and
                # socket errors; a chunk that still fails is resumed by the pull step.
                data = req.execute(num_retries=2)
            except HttpError as exc:
                status = int(getattr(exc.resp, "status", 0) or 0)
                if status == 416:  # past the end (empty file, or it shrank)
                    return
                if status == 403 and b"fileNotDownloadable" in (exc.content or b""):
                    raise SourceError(f"{entry.path}: not downloadable") from None
                raise _http_error(exc, self.conn.conn_id, entry.path) from None
            except _NET as exc:
                raise TransientError(f"drive download of {entry.path}: {exc}") from exc
            if not data:
                return
            pos += len(data)
            yield data
            if size is None and len(data) < self.chunk_size:
                return

    def close(self) -> None:
        try:
            self.service.close()
        except Exception:  # noqa: BLE001, S110
            pass
