"""Per-partner sync state: what was fetched from the source, and when.

The pull step is incremental: a scheduled run fetches only files that are new
or changed since the last run. That needs a record per remote file (remote id,
path, size, modification time, the service's version and checksum, our
SHA-256) that survives between runs and partial failures, so it is a small
SQLite database under the partner's ``state/`` folder, inside its enclave.

Why SQLite and not a JSON file: a partner holds ~325,000 files; SQLite
updates one row at a time, commits atomically (a crash mid-run leaves the
last committed state, never a truncated file) and answers "is this content
already known?" through an index instead of a scan.

Row life cycle (``status``):

``landed``     fetched into landing by some run, not yet processed. A later
               pull re-reports it (its landing copy is still there) so a failed
               run's files are processed by the next one, not lost.
``done``       processed by a successful run; landing copy deleted.
``duplicate``  same bytes as another file already fetched (processed once).
``deleted``    gone from the source; kept, with the run that noticed, so a
               deletion is recorded rather than silently forgotten.

A ``contents`` table remembers every content ever fetched (SHA-256 and the
service's checksum), so the same file uploaded twice under two names, in
one run or months apart, is processed once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from transforms.sources.base import RemoteEntry

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    remote_id       TEXT PRIMARY KEY,
    path            TEXT NOT NULL,
    size            INTEGER,
    mtime           TEXT,
    version         TEXT NOT NULL,
    source_hash     TEXT,
    sha256          TEXT,
    landing_relpath TEXT,
    status          TEXT NOT NULL,
    duplicate_of    TEXT,
    first_run       TEXT,
    fetched_run     TEXT,
    deleted_run     TEXT,
    updated_at      REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_relpath ON files(landing_relpath);
CREATE TABLE IF NOT EXISTS contents (
    sha256          TEXT PRIMARY KEY,
    source_hash     TEXT,
    first_remote_id TEXT NOT NULL,
    first_path      TEXT NOT NULL,
    first_run       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS contents_source_hash ON contents(source_hash);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""

LIVE_STATUSES = ("landed", "done", "duplicate")


@dataclass(frozen=True)
class FileState:
    remote_id: str
    path: str
    size: int | None
    mtime: str | None
    version: str
    source_hash: str | None
    sha256: str | None
    landing_relpath: str | None
    status: str
    duplicate_of: str | None
    first_run: str | None
    fetched_run: str | None
    deleted_run: str | None


@dataclass(frozen=True)
class ContentState:
    sha256: str
    source_hash: str | None
    first_remote_id: str
    first_path: str
    first_run: str


class SyncState:
    """The sync state of one partner source (one SQLite file).

    Writes are batched (:meth:`maybe_commit`) so 10,000 small files do not
    cost 10,000 fsyncs; :meth:`close` commits the rest.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level="DEFERRED")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.commit()
        self._pending = 0
        self._last_commit = time.monotonic()

    # -- reads ---------------------------------------------------------------
    def get(self, remote_id: str) -> FileState | None:
        row = self._db.execute(
            "SELECT remote_id, path, size, mtime, version, source_hash, sha256, landing_relpath, "
            "status, duplicate_of, first_run, fetched_run, deleted_run FROM files WHERE remote_id=?",
            (remote_id,),
        ).fetchone()
        return FileState(*row) if row else None

    def content(self, sha256: str) -> ContentState | None:
        row = self._db.execute(
            "SELECT sha256, source_hash, first_remote_id, first_path, first_run FROM contents WHERE sha256=?",
            (sha256,),
        ).fetchone()
        return ContentState(*row) if row else None

    def content_by_source_hash(self, source_hash: str) -> ContentState | None:
        row = self._db.execute(
            "SELECT sha256, source_hash, first_remote_id, first_path, first_run FROM contents "
            "WHERE source_hash=? LIMIT 1",
            (source_hash,),
        ).fetchone()
        return ContentState(*row) if row else None

    def relpath_owner(self, relpath: str) -> str | None:
        row = self._db.execute(
            "SELECT remote_id FROM files WHERE landing_relpath=? AND status != 'deleted' LIMIT 1",
            (relpath,),
        ).fetchone()
        return row[0] if row else None

    def live_ids(self) -> set[str]:
        q = f"SELECT remote_id FROM files WHERE status IN ({','.join('?' * len(LIVE_STATUSES))})"
        return {r[0] for r in self._db.execute(q, LIVE_STATUSES)}

    def counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT status, COUNT(*) FROM files GROUP BY status").fetchall())

    # -- writes --------------------------------------------------------------
    def record_fetched(self, entry: RemoteEntry, sha256: str, relpath: str, run_id: str) -> None:
        """A new version of ``entry`` is in landing at ``relpath``."""
        self._upsert(entry, sha256=sha256, relpath=relpath, status="landed", run_id=run_id)
        self._db.execute(
            "INSERT OR IGNORE INTO contents(sha256, source_hash, first_remote_id, first_path, first_run) "
            "VALUES (?,?,?,?,?)",
            (sha256, entry.source_hash, entry.remote_id, entry.path, run_id),
        )
        self._touch()

    def record_duplicate(self, entry: RemoteEntry, sha256: str | None, duplicate_of: str, run_id: str) -> None:
        self._upsert(entry, sha256=sha256, relpath=None, status="duplicate", run_id=run_id, duplicate_of=duplicate_of)
        self._touch()

    def record_same_content(self, entry: RemoteEntry, previous: FileState) -> None:
        """New version metadata (e.g. only mtime changed) but the same bytes: keep status."""
        self._db.execute(
            "UPDATE files SET path=?, size=?, mtime=?, version=?, source_hash=?, updated_at=? WHERE remote_id=?",
            (entry.path, entry.size, entry.mtime, entry.version, entry.source_hash, time.time(), entry.remote_id),
        )
        self._touch()

    def adopt(self, remote_id: str, landing_relpath: str, sha256: str) -> None:
        """A file recorded as a duplicate becomes the owner of an unprocessed landing copy."""
        self._db.execute(
            "UPDATE files SET status='landed', landing_relpath=?, sha256=?, duplicate_of=NULL, updated_at=? "
            "WHERE remote_id=?",
            (landing_relpath, sha256, time.time(), remote_id),
        )
        self._touch()

    def mark_deleted(self, remote_ids: Iterable[str], run_id: str) -> None:
        self._db.executemany(
            "UPDATE files SET status='deleted', deleted_run=?, updated_at=? WHERE remote_id=?",
            [(run_id, time.time(), rid) for rid in remote_ids],
        )
        self._touch()

    def mark_done(self, relpaths: Iterable[str]) -> int:
        """The run that used these landing copies succeeded (called by cleanup)."""
        cur = self._db.executemany(
            "UPDATE files SET status='done', updated_at=? WHERE landing_relpath=? AND status='landed'",
            [(time.time(), rp) for rp in relpaths],
        )
        self._db.commit()
        return cur.rowcount

    def _upsert(
        self,
        entry: RemoteEntry,
        *,
        sha256: str | None,
        relpath: str | None,
        status: str,
        run_id: str,
        duplicate_of: str | None = None,
    ) -> None:
        self._db.execute(
            """
            INSERT INTO files(remote_id, path, size, mtime, version, source_hash, sha256, landing_relpath,
                              status, duplicate_of, first_run, fetched_run, deleted_run, updated_at)
            VALUES (?,?,?,?,?,?,?,?,?,?,?,?,NULL,?)
            ON CONFLICT(remote_id) DO UPDATE SET
                path=excluded.path, size=excluded.size, mtime=excluded.mtime, version=excluded.version,
                source_hash=excluded.source_hash, sha256=excluded.sha256,
                landing_relpath=excluded.landing_relpath, status=excluded.status,
                duplicate_of=excluded.duplicate_of, fetched_run=excluded.fetched_run,
                deleted_run=NULL, updated_at=excluded.updated_at
            """,
            (
                entry.remote_id, entry.path, entry.size, entry.mtime, entry.version, entry.source_hash,
                sha256, relpath, status, duplicate_of, run_id, run_id, time.time(),
            ),
        )  # fmt: skip

    def _touch(self) -> None:
        self._pending += 1
        self.maybe_commit()

    def maybe_commit(self, every: int = 500, seconds: float = 2.0) -> None:
        if self._pending >= every or time.monotonic() - self._last_commit > seconds:
            self.commit()

    def commit(self) -> None:
        self._db.commit()
        self._pending = 0
        self._last_commit = time.monotonic()

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self._db.close()

    def __enter__(self) -> "SyncState":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
