"""Dropbox source (official ``dropbox`` SDK): a folder shared with STA.

Connection: the access token in the password (or extra
``oauth2_access_token``), or a long-lived ``refresh_token`` with ``app_key``
(and ``app_secret``) in extra; optional extra ``proxy`` (an HTTPS proxy URL)
and ``ca_certs`` (a CA bundle path) for networks that route egress through a
proxy, which is also how the tests reach their loopback server.

Listing is ``files/list_folder`` (recursive) then
``files/list_folder/continue`` while ``has_more``: the API pages for us.
Items with ``is_downloadable: false`` (Paper docs, cloud-only formats) are
skipped with the reason. Downloads are ``files/download`` by file id,
streamed, resumed with ``Range`` after a drop, and verified against the
listed ``content_hash``; a mismatch re-reads the metadata to tell an edit
(fetch the new revision) from corruption (retry).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import dropbox
import requests
from dropbox import exceptions as dbx_exc
from dropbox import files as dbx_files

from transforms.sources.base import (
    ConnectionInfo,
    ConnectionNotFound,
    NotFoundAtSource,
    RemoteEntry,
    Source,
    SourceError,
    TransientError,
)

CHUNK = 1024 * 1024
_NET = (requests.exceptions.RequestException, ConnectionError, TimeoutError)


def _client(conn: ConnectionInfo) -> dropbox.Dropbox:
    extra = conn.extra
    proxies = {"https": extra["proxy"]} if extra.get("proxy") else None
    session = dropbox.create_session(max_connections=8, proxies=proxies, ca_certs=extra.get("ca_certs"))
    if extra.get("ca_certs"):
        # requests lets REQUESTS_CA_BUNDLE override a session's CA bundle; the
        # connection's explicit bundle must win, so environment settings are
        # ignored (except the proxy, taken over when the connection sets none).
        session.trust_env = False
        if not proxies:
            session.proxies = {k: v for k, v in urllib.request.getproxies().items() if k in ("http", "https")}
    token = extra.get("oauth2_access_token") or conn.password
    refresh = extra.get("refresh_token") or extra.get("oauth2_refresh_token")
    if not token and not refresh:
        raise ConnectionNotFound(conn.conn_id, "has no Dropbox access token or refresh token")
    return dropbox.Dropbox(
        oauth2_access_token=token or None,
        oauth2_refresh_token=refresh or None,
        app_key=extra.get("app_key") or conn.login or None,
        app_secret=extra.get("app_secret") or None,
        session=session,
        max_retries_on_error=2,
        max_retries_on_rate_limit=3,
        timeout=float(extra.get("timeout", 60)),
        user_agent="sta-pull/1",
    )


class DropboxSource(Source):
    kind = "dropbox"
    max_workers = 4

    def __init__(self, conn: ConnectionInfo, root: str = "", chunk_size: int = CHUNK, page_size: int = 2000) -> None:
        self.conn = conn
        root = root.strip()
        self.root = "" if root in ("", "/") else "/" + root.strip("/")
        self.chunk_size = chunk_size
        self.page_size = page_size
        self.dbx = _client(conn)
        if self.root:
            try:
                md = self.dbx.files_get_metadata(self.root)
            except dbx_exc.AuthError as exc:
                raise ConnectionNotFound(conn.conn_id, f"refused by Dropbox: {exc.error}") from None
            except dbx_exc.ApiError as exc:
                raise SourceError(f"dropbox folder {self.root!r} (connection {conn.conn_id!r}): {exc.error}") from None
            except _NET as exc:
                raise SourceError(f"dropbox unreachable via connection {conn.conn_id!r}: {exc}") from None
            if not isinstance(md, dbx_files.FolderMetadata):
                raise SourceError(f"dropbox path {self.root!r} is not a folder")

    def clone(self) -> "DropboxSource":
        return type(self)(self.conn, self.root, self.chunk_size, self.page_size)

    def _rel(self, md: Any) -> str:
        shown = md.path_display or md.name
        if self.root and shown.lower().startswith(self.root.lower() + "/"):
            shown = shown[len(self.root) + 1 :]
        return shown.lstrip("/")

    def _entry(self, md: dbx_files.FileMetadata) -> RemoteEntry:
        path = self._rel(md)
        mtime = md.server_modified.isoformat() + "Z" if md.server_modified else None
        if md.is_downloadable is False:
            return RemoteEntry(md.id, path, md.size, mtime, md.rev, downloadable=False, skip_reason="not_downloadable")
        if md.symlink_info is not None:
            return RemoteEntry(md.id, path, md.size, mtime, md.rev, downloadable=False, skip_reason="symlink")
        return RemoteEntry(
            remote_id=md.id,
            path=path,
            size=md.size,
            mtime=mtime,
            version=md.rev,
            source_hash=f"dropbox:{md.content_hash}" if md.content_hash else None,
        )

    def _call(self, fn: Any, *args: Any, what: str, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except dbx_exc.AuthError as exc:
            raise ConnectionNotFound(self.conn.conn_id, f"refused by Dropbox while {what}: {exc.error}") from None
        except (dbx_exc.InternalServerError, dbx_exc.RateLimitError) as exc:
            raise TransientError(f"dropbox {what}: {exc}") from None
        except _NET as exc:
            raise TransientError(f"dropbox {what}: {exc}") from None

    def list(self) -> Iterator[RemoteEntry]:
        res = self._call(
            self.dbx.files_list_folder, self.root, recursive=True, limit=self.page_size, what="listing"
        )
        while True:
            for md in res.entries:
                if isinstance(md, dbx_files.FileMetadata):
                    yield self._entry(md)
            if not res.has_more:
                return
            res = self._call(self.dbx.files_list_folder_continue, res.cursor, what="listing (continue)")

    def stat(self, entry: RemoteEntry) -> RemoteEntry | None:
        try:
            md = self._call(self.dbx.files_get_metadata, entry.remote_id, what=f"stat {entry.path}")
        except dbx_exc.ApiError:
            return None
        if not isinstance(md, dbx_files.FileMetadata):
            return None
        return self._entry(md)

    def open_stream(self, entry: RemoteEntry, offset: int = 0) -> Iterator[bytes]:
        if entry.size is not None and offset >= entry.size > 0:
            return
        headers = {"Range": f"bytes={offset}-"} if offset else None
        try:
            _md, resp = self._call(
                self.dbx.files_download, entry.remote_id, extra_headers=headers, what=f"download {entry.path}"
            )
        except dbx_exc.ApiError as exc:
            err = exc.error
            if isinstance(err, dbx_files.DownloadError) and err.is_path() and err.get_path().is_not_found():
                raise NotFoundAtSource(entry.path) from None
            raise SourceError(f"dropbox download of {entry.path}: {err}") from None
        try:
            skip = offset if (offset and resp.status_code != 206) else 0  # Range ignored: drop the head
            for chunk in resp.iter_content(self.chunk_size):
                if skip:
                    if len(chunk) <= skip:
                        skip -= len(chunk)
                        continue
                    chunk, skip = chunk[skip:], 0
                if chunk:
                    yield chunk
        except _NET as exc:
            raise TransientError(f"dropbox download of {entry.path}: {exc}") from None
        finally:
            resp.close()

    def close(self) -> None:
        try:
            self.dbx.close()
        except Exception:  # noqa: BLE001, S110
            pass
