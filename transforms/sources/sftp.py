"""SFTP source (paramiko): a folder on a server in the hospital's data center.

Connection (Airflow ``sftp``/``ssh`` connection): host, port, login,
password, and the SSH hook's extras: ``private_key`` (PEM/OpenSSH text),
``key_file``, ``private_key_passphrase``, ``host_key`` (``"<type> <base64>"``
or just the base64) and ``no_host_key_check``.

Host keys are checked by default (a pinned ``host_key``, else the system's
``known_hosts``): a hospital's server is identified by its key, not by a DNS
name anyone on the path could answer for. ``no_host_key_check: true`` must be
set explicitly to skip it.

SFTP offers no checksum, so integrity rests on the size, and "did the file
change while we read it" on a second ``lstat`` after the transfer
(:meth:`SFTPSource.confirm`). SFTP v3 mtimes have one-second resolution: a
same-size rewrite within the same second of the last pull is missed until the
next change. Reads are pipelined (``readv`` over a bounded window), so big files
stream at network speed in constant memory; a dropped connection reconnects and
resumes at the offset already written.
"""

from __future__ import annotations

import base64
import io
import posixpath
import socket
import stat as stat_mod
from collections.abc import Iterator
from datetime import UTC, datetime

import paramiko

from transforms.sources.base import (
    ChangedAtSource,
    ConnectionInfo,
    ConnectionNotFound,
    NotFoundAtSource,
    RemoteEntry,
    Source,
    SourceError,
    TransientError,
)

REQUEST = 32768  # paramiko's maximum SFTP read request
WINDOW = 64  # requests in flight per readv: 2 MiB buffered at most
_NET_ERRORS = (paramiko.SSHException, EOFError, OSError, socket.timeout)


def _truthy(v: object) -> bool:
    return str(v).lower() in ("1", "true", "yes", "on")


def _load_pkey(text: str, passphrase: str | None) -> paramiko.PKey:
    last: Exception | None = None
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text), password=passphrase)
        except (paramiko.SSHException, ValueError) as exc:
            last = exc
    raise ValueError(f"unreadable private key: {last}")


def _pinned_host_key(spec: str, key_type_hint: str | None = None) -> paramiko.PKey:
    parts = spec.split()
    if len(parts) >= 2:
        key_type, b64 = parts[0], parts[1]
    else:
        b64 = parts[0]
        raw = base64.b64decode(b64)
        key_type = raw[4 : 4 + int.from_bytes(raw[:4], "big")].decode()
    return paramiko.PKey.from_type_string(key_type, base64.b64decode(b64))


class SFTPSource(Source):
    kind = "sftp"
    max_workers = 4  # one SSH connection per worker (clone)

    def __init__(self, conn: ConnectionInfo, root: str = ".", timeout: float = 30.0) -> None:
        if not conn.host:
            raise ConnectionNotFound(conn.conn_id, "has no host")
        self.conn = conn
        self.root = root.rstrip("/") or "/"
        self.timeout = timeout
        self._transport: paramiko.Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._connect()

    # -- connection ------------------------------------------------------------
    def _connect(self) -> paramiko.SFTPClient:
        conn, extra = self.conn, self.conn.extra
        port = conn.port or 22
        try:
            sock = socket.create_connection((conn.host, port), timeout=self.timeout)
        except OSError as exc:
            raise TransientError(f"sftp {conn.host}:{port} unreachable: {exc}") from exc
        t = paramiko.Transport(sock)
        t.set_keepalive(30)
        try:
            t.start_client(timeout=self.timeout)
            self._check_host_key(t.get_remote_server_key(), port)
            pkey = None
            if extra.get("private_key"):
                pkey = _load_pkey(str(extra["private_key"]), extra.get("private_key_passphrase"))
            elif extra.get("key_file"):
                with open(extra["key_file"], encoding="utf-8") as f:
                    pkey = _load_pkey(f.read(), extra.get("private_key_passphrase"))
            if pkey is not None:
                t.auth_publickey(conn.login or "", pkey)
            elif conn.password is not None:
                t.auth_password(conn.login or "", conn.password)
            else:
                raise ConnectionNotFound(conn.conn_id, "has neither a password nor a private key")
            sftp = paramiko.SFTPClient.from_transport(t)
            assert sftp is not None
            sftp.get_channel().settimeout(self.timeout)
        except paramiko.AuthenticationException as exc:
            t.close()
            raise ConnectionNotFound(conn.conn_id, f"authentication refused by {conn.host}: {exc}") from None
        except (ConnectionNotFound, SourceError):
            t.close()
            raise
        except _NET_ERRORS as exc:
            t.close()
            raise TransientError(f"sftp {conn.host}:{port}: {exc}") from exc
        self._transport, self._sftp = t, sftp
        return sftp

    def _check_host_key(self, key: paramiko.PKey, port: int) -> None:
        extra = self.conn.extra
        if _truthy(extra.get("no_host_key_check", False)):
            return
        if extra.get("host_key"):
            expected = _pinned_host_key(str(extra["host_key"]))
            if expected.get_name() != key.get_name() or expected.asbytes() != key.asbytes():
                raise ConnectionNotFound(
                    self.conn.conn_id, f"host key of {self.conn.host} does not match the pinned host_key"
                )
            return
        known = paramiko.HostKeys()
        try:
            known.load(posixpath.expanduser("~/.ssh/known_hosts"))
        except OSError:
            pass
        name = self.conn.host if port == 22 else f"[{self.conn.host}]:{port}"
        if not known.check(name, key):
            raise ConnectionNotFound(
                self.conn.conn_id,
                f"unknown host key for {name}: pin it in extra 'host_key' "
                "(or set 'no_host_key_check': true knowingly)",
            )

    def clone(self) -> "SFTPSource":
        return type(self)(self.conn, self.root, self.timeout)

    @property
    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None or self._transport is None or not self._transport.is_active():
            self.close()
            return self._connect()
        return self._sftp

    # -- listing ---------------------------------------------------------------
    def _abs(self, rel: str) -> str:
        return posixpath.join(self.root, rel)

    def _entry(self, rel: str, a: paramiko.SFTPAttributes) -> RemoteEntry:
        mode = a.st_mode or 0
        if stat_mod.S_ISLNK(mode):
            return RemoteEntry(rel, rel, None, None, "symlink", downloadable=False, skip_reason="symlink")
        if not stat_mod.S_ISREG(mode):
            return RemoteEntry(rel, rel, None, None, "special", downloadable=False, skip_reason="not_regular_file")
        mtime = int(a.st_mtime or 0)
        return RemoteEntry(
            remote_id=rel,
            path=rel,
            size=int(a.st_size or 0),
            mtime=datetime.fromtimestamp(mtime, tz=UTC).isoformat(),
            version=f"{a.st_size}:{mtime}",
        )

    def list(self) -> Iterator[RemoteEntry]:
        stack = [""]
        sftp = self.sftp
        while stack:
            rel_dir = stack.pop()
            # listdir_iter pages through READDIR responses instead of one big list.
            children = sorted(sftp.listdir_iter(self._abs(rel_dir) if rel_dir else self.root), key=lambda a: a.filename)
            for a in children:
                rel = f"{rel_dir}/{a.filename}" if rel_dir else a.filename
                if stat_mod.S_ISDIR(a.st_mode or 0):
                    stack.append(rel)
                else:
                    yield self._entry(rel, a)

    def stat(self, entry: RemoteEntry) -> RemoteEntry | None:
        try:
            a = self.sftp.lstat(self._abs(entry.remote_id))
        except FileNotFoundError:
            return None
        except _NET_ERRORS as exc:
            self.close()
            raise TransientError(str(exc)) from exc
        return self._entry(entry.remote_id, a)

    def confirm(self, entry: RemoteEntry) -> None:
        fresh = self.stat(entry)
        if fresh is None:
            raise NotFoundAtSource(entry.path)
        if fresh.version != entry.version:
            raise ChangedAtSource(entry.path)

    # -- transfer --------------------------------------------------------------
    def open_stream(self, entry: RemoteEntry, offset: int = 0) -> Iterator[bytes]:
        size = entry.size or 0
        try:
            f = self.sftp.open(self._abs(entry.remote_id), "rb")
        except FileNotFoundError:
            raise NotFoundAtSource(entry.path) from None
        except TransientError:
            raise
        except _NET_ERRORS as exc:
            self.close()
            raise TransientError(str(exc)) from exc
        try:
            pos = offset
            while pos < size:
                window = []
                p = pos
                while p < size and len(window) < WINDOW:
                    n = min(REQUEST, size - p)
                    window.append((p, n))
                    p += n
                for data in f.readv(window):
                    pos += len(data)
                    yield data
            # Anything beyond the listed size means the file grew: confirm() catches it.
        except _NET_ERRORS as exc:
            self.close()
            raise TransientError(f"sftp read of {entry.path}: {exc}") from exc
        finally:
            try:
                f.close()
            except _NET_ERRORS:
                pass

    def close(self) -> None:
        for obj in (self._sftp, self._transport):
            if obj is not None:
                try:
                    obj.close()
                except Exception:  # noqa: BLE001, S110 - closing a dead connection
                    pass
        self._sftp = self._transport = None
