"""The connector interface every partner source implements.

A partner hands STA its files through one of several services (a mounted
folder, SFTP, S3, Google Drive, Dropbox). The pull step must behave the same
for all of them, so each connector only answers two questions:

* ``list()``: what is there now (a stream of :class:`RemoteEntry`, paged by the
  connector so that 100,000 files never sit in one response), and
* ``open_stream(entry, offset)``: the bytes of one entry from ``offset`` on, in
  chunks (constant memory whatever the size; ``offset`` lets an interrupted
  download resume where the service allows it).

Everything that must be *safe* (remote names never used as paths, temp file
plus verify plus atomic rename, retries, dedup, sync state) lives once in
:mod:`transforms.pull`, not in each connector.

Checksums differ per service (Drive md5Checksum, Dropbox content_hash, S3
ETag, nothing for SFTP and folders); a connector says which one it offers via
``RemoteEntry.source_hash`` and provides a matching incremental hasher through
:meth:`Source.new_hasher`, so the pull step can verify what it wrote against
what the service advertised without reading the file twice.
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol


class SourceError(Exception):
    """A source cannot be used at all (bad config, unreachable, refused)."""


class ConnectionNotFound(SourceError):
    """The partner YAML names a connection that does not exist or is unusable.

    The message always names the ``conn_id`` so the operator knows which
    Airflow Connection to create or fix.
    """

    def __init__(self, conn_id: str, detail: str = "not defined") -> None:
        self.conn_id = conn_id
        super().__init__(f"connection {conn_id!r}: {detail}")


class TransientError(Exception):
    """A failure worth retrying (dropped connection, 5xx, timeout)."""


class CorruptTransfer(Exception):
    """The client library's own integrity check failed (e.g. a response CRC).

    Treated like a checksum mismatch: the bytes written so far are discarded
    and the file is fetched again from the start.
    """


class ChangedAtSource(Exception):
    """The entry changed between listing and fetching (or during the fetch).

    The pull step re-reads the entry's metadata (:meth:`Source.stat`) and
    fetches the new version instead.
    """


class NotFoundAtSource(Exception):
    """The entry vanished between listing and fetching."""


@dataclass(frozen=True)
class ConnectionInfo:
    """The fields of an Airflow Connection that connectors use.

    Deliberately a plain dataclass: the libraries must run without Airflow,
    so the Airflow side (an operator) converts its ``Connection`` with
    :meth:`from_airflow` and everything else builds one from the environment.
    """

    conn_id: str
    conn_type: str = ""
    host: str | None = None
    port: int | None = None
    login: str | None = None
    password: str | None = None
    schema: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_airflow(cls, conn: Any) -> "ConnectionInfo":
        """Convert an ``airflow.sdk.Connection`` (duck-typed, no import)."""
        extra = getattr(conn, "extra_dejson", None)
        if extra is None:
            raw = getattr(conn, "extra", None) or "{}"
            extra = json.loads(raw) if isinstance(raw, str) else dict(raw)
        return cls(
            conn_id=conn.conn_id,
            conn_type=getattr(conn, "conn_type", "") or "",
            host=conn.host or None,
            port=int(conn.port) if conn.port else None,
            login=conn.login or None,
            password=conn.password or None,
            schema=getattr(conn, "schema", None) or None,
            extra=dict(extra or {}),
        )

    def __repr__(self) -> str:  # never print a password into a log
        return (
            f"ConnectionInfo(conn_id={self.conn_id!r}, conn_type={self.conn_type!r}, "
            f"host={self.host!r}, port={self.port!r}, login={self.login!r}, "
            f"password={'***' if self.password else None}, extra_keys={sorted(self.extra)})"
        )


ConnectionResolver = Callable[[str], ConnectionInfo]


def resolver_from(get_connection: Callable[[str], Any]) -> ConnectionResolver:
    """Wrap any ``get_connection(conn_id)`` returning an Airflow-style Connection.

    The Airflow operator passes ``resolver_from(BaseHook.get_connection)``;
    whatever Airflow raises for an unknown id becomes :class:`ConnectionNotFound`
    naming the id, so the task fails with a message that says what to create.
    """

    def resolve(conn_id: str) -> ConnectionInfo:
        try:
            conn = get_connection(conn_id)
        except Exception as exc:  # noqa: BLE001 - Airflow's NotFound types vary by version
            raise ConnectionNotFound(conn_id, f"not found: {type(exc).__name__}: {exc}") from None
        if conn is None:
            raise ConnectionNotFound(conn_id)
        return ConnectionInfo.from_airflow(conn)

    return resolve


def _conn_from_uri(conn_id: str, uri: str) -> ConnectionInfo:
    """Parse Airflow's connection URI format (``type://login:pw@host:port/schema?extra``).

    Query parameters become ``extra``; a ``__extra__`` parameter holds JSON
    extra, as in Airflow's own ``Connection._parse_from_uri``.
    """
    parts = urllib.parse.urlsplit(uri)
    if not parts.scheme:
        raise ConnectionNotFound(conn_id, "environment value is neither JSON nor a connection URI")
    conn_type = parts.scheme.replace("-", "_")
    host = urllib.parse.unquote(parts.hostname) if parts.hostname else None
    schema = urllib.parse.unquote(parts.path[1:]) if parts.path and parts.path != "/" else None
    extra: dict[str, Any] = {}
    if parts.query:
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        if "__extra__" in query:
            extra = json.loads(query["__extra__"][0])
        else:
            extra = {k: v[0] if len(v) == 1 else v for k, v in query.items()}
    try:
        port = parts.port
    except ValueError as exc:
        raise ConnectionNotFound(conn_id, f"bad port in URI: {exc}") from None
    return ConnectionInfo(
        conn_id=conn_id,
        conn_type=conn_type,
        host=host,
        port=port,
        login=urllib.parse.unquote(parts.username) if parts.username else None,
        password=urllib.parse.unquote(parts.password) if parts.password else None,
        schema=schema,
        extra=extra,
    )


def env_connection_resolver(conn_id: str) -> ConnectionInfo:
    """Resolve ``conn_id`` from ``AIRFLOW_CONN_<CONN_ID>`` (URI or JSON), like Airflow does.

    This is what lets ``sta pull --partner ID`` run without a scheduler or a
    metadata database, with the same variables a deployment already sets.
    """
    var = f"AIRFLOW_CONN_{conn_id.upper()}"
    value = os.environ.get(var)
    if value is None or not value.strip():
        raise ConnectionNotFound(conn_id, f"not defined (set {var} or create the Airflow Connection)")
    value = value.strip()
    if value.startswith("{"):
        try:
            data = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConnectionNotFound(conn_id, f"{var} is not valid JSON: {exc.msg}") from None
        extra = data.get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra) if extra.strip() else {}
        return ConnectionInfo(
            conn_id=conn_id,
            conn_type=str(data.get("conn_type") or ""),
            host=data.get("host") or None,
            port=int(data["port"]) if data.get("port") else None,
            login=data.get("login") or None,
            password=data.get("password") or None,
            schema=data.get("schema") or None,
            extra=dict(extra),
        )
    return _conn_from_uri(conn_id, value)


@dataclass(frozen=True)
class RemoteEntry:
    """One file as the source lists it.

    ``path`` is the source's own relative name (POSIX separators, relative to
    the configured root); it is *data*, never used as a local path.
    ``version`` is whatever the service uses to say "this content" (mtime+size,
    S3 ETag, Drive version, Dropbox rev): a different version means fetch
    again. ``source_hash`` is ``"<kind>:<hex>"`` when the service offers a
    checksum (``md5``, ``dropbox``, ``s3etag``), else ``None``.
    """

    remote_id: str
    path: str
    size: int | None
    mtime: str | None
    version: str
    source_hash: str | None = None
    downloadable: bool = True
    skip_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


class DropboxContentHasher:
    """Dropbox ``content_hash``: SHA-256 of the concatenated SHA-256 of 4 MiB blocks.

    See https://www.dropbox.com/developers/reference/content-hash
    """

    BLOCK = 4 * 1024 * 1024

    def __init__(self) -> None:
        self._overall = hashlib.sha256()
        self._block = hashlib.sha256()
        self._block_pos = 0

    def update(self, data: bytes, /) -> None:
        view = memoryview(data)
        while view:
            take = min(self.BLOCK - self._block_pos, len(view))
            self._block.update(view[:take])
            self._block_pos += take
            view = view[take:]
            if self._block_pos == self.BLOCK:
                self._overall.update(self._block.digest())
                self._block = hashlib.sha256()
                self._block_pos = 0

    def hexdigest(self) -> str:
        overall = self._overall.copy()
        if self._block_pos > 0:
            overall.update(self._block.digest())
        return overall.hexdigest()


class S3EtagHasher:
    """Recompute an S3 ETag: MD5 for single-part objects, MD5-of-MD5s for multipart.

    A multipart ETag is ``md5(concat(md5(part_i)))-N``; the part size is not
    in the ETag, so the connector passes it (from ``HeadObject PartNumber=1``).
    """

    def __init__(self, part_size: int | None = None, parts: int | None = None) -> None:
        self._part_size = part_size
        self._parts = parts
        self._md5 = hashlib.md5()  # noqa: S324 - S3's ETag is MD5, not our security hash
        self._part_md5s: list[bytes] = []
        self._pos = 0

    def update(self, data: bytes, /) -> None:
        if not self._part_size:
            self._md5.update(data)
            return
        view = memoryview(data)
        while view:
            take = min(self._part_size - self._pos, len(view))
            self._md5.update(view[:take])
            self._pos += take
            view = view[take:]
            if self._pos == self._part_size:
                self._part_md5s.append(self._md5.digest())
                self._md5 = hashlib.md5()  # noqa: S324
                self._pos = 0

    def hexdigest(self) -> str:
        if not self._part_size:
            return self._md5.hexdigest()
        digests = list(self._part_md5s)
        if self._pos:
            digests.append(self._md5.digest())
        return hashlib.md5(b"".join(digests)).hexdigest() + f"-{len(digests)}"  # noqa: S324


class Source(abc.ABC):
    """A partner source: list entries, stream one entry's bytes."""

    #: short name used in reports and state (folder, sftp, s3, gdrive, dropbox)
    kind: str = "?"
    #: whether ``open_stream(entry, offset>0)`` really starts at ``offset``
    supports_resume: bool = True
    #: parallel downloads the pull step runs by default (each on :meth:`clone`)
    max_workers: int = 1

    @abc.abstractmethod
    def list(self) -> Iterator[RemoteEntry]:
        """Yield every entry under the configured root, paging through the service.

        Raises on any listing error: a partial listing must never be taken as
        complete (files missing from it would be recorded as deleted).
        """

    @abc.abstractmethod
    def open_stream(self, entry: RemoteEntry, offset: int = 0) -> Iterator[bytes]:
        """Yield the bytes of ``entry`` from ``offset`` in bounded chunks.

        Raise :class:`TransientError` for a dropped connection (the caller
        retries, resuming at the bytes already written), :class:`ChangedAtSource`
        when the service says the entry is no longer the listed version, and
        :class:`NotFoundAtSource` when it is gone.
        """

    def stat(self, entry: RemoteEntry) -> RemoteEntry | None:
        """Fresh metadata for one entry (``None`` if gone). Used after a change."""
        for e in self.list():
            if e.remote_id == entry.remote_id:
                return e
        return None

    def confirm(self, entry: RemoteEntry) -> None:
        """Check after a download that ``entry`` is still the version listed.

        Sources without a checksum (folder, SFTP) compare size and mtime
        again, so a file being written while we read it is caught; raise
        :class:`ChangedAtSource` if it changed. Default: nothing to check.
        """

    def new_hasher(self, entry: RemoteEntry) -> Hasher | None:
        """A hasher matching ``entry.source_hash``'s kind, or ``None``."""
        if not entry.source_hash:
            return None
        kind = entry.source_hash.split(":", 1)[0]
        if kind == "md5":
            return hashlib.md5()  # noqa: S324 - verifying the service's own checksum
        if kind == "sha256":
            return hashlib.sha256()
        if kind == "dropbox":
            return DropboxContentHasher()
        return None

    def clone(self) -> "Source":
        """A connector for another worker thread.

        Thread-safe connectors (boto3 clients, a folder) return ``self``;
        those holding one connection that is not (an SSH session, httplib2)
        open a new one with the same settings.
        """
        return self

    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
