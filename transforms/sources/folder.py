"""On-premise folder source: a directory mounted on the worker (NFS, SMB, local disk).

The folder is the partner's, not ours: it may contain symlinks (possibly to
files outside it), device files, or files still being copied in. Symlinks and
non-regular files are skipped with a reason rather than followed; files are
opened with ``O_NOFOLLOW``; after a copy the file is stat-ed again and a
size or mtime change means it was being written while we read it (fetched
again on the next attempt, see :meth:`FolderSource.confirm`).
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from transforms.sources.base import (
    ChangedAtSource,
    NotFoundAtSource,
    RemoteEntry,
    Source,
    SourceError,
)

CHUNK = 1024 * 1024


def _display(name: str) -> str:
    """A name safe to store and print (undecodable bytes shown as ``\\xNN``)."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _iso(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, tz=UTC).isoformat(timespec="microseconds")


class FolderSource(Source):
    kind = "folder"
    max_workers = 2  # local/NFS copies: a little overlap of open/stat latency, no more

    def __init__(self, root: Path, chunk_size: int = CHUNK) -> None:
        self.root = Path(root)
        self.chunk_size = chunk_size
        if not self.root.is_dir():
            raise SourceError(f"folder source {self.root} does not exist or is not a directory")

    def _entry(self, rel: str, abs_path: str, st: os.stat_result) -> RemoteEntry:
        shown = _display(rel)
        if stat_mod.S_ISLNK(st.st_mode):
            return RemoteEntry(shown, shown, None, None, "symlink", downloadable=False, skip_reason="symlink")
        if not stat_mod.S_ISREG(st.st_mode):
            return RemoteEntry(shown, shown, None, None, "special", downloadable=False, skip_reason="not_regular_file")
        return RemoteEntry(
            remote_id=shown,
            path=shown,
            size=st.st_size,
            mtime=_iso(st.st_mtime_ns),
            version=f"{st.st_size}:{st.st_mtime_ns}",
            extra={"abs": abs_path},
        )

    def list(self) -> Iterator[RemoteEntry]:
        stack = [("", str(self.root))]
        while stack:
            rel_dir, abs_dir = stack.pop()
            with os.scandir(abs_dir) as it:
                children = sorted(it, key=lambda d: d.name)
            for d in children:
                rel = f"{rel_dir}/{d.name}" if rel_dir else d.name
                st = d.stat(follow_symlinks=False)
                if stat_mod.S_ISDIR(st.st_mode):
                    stack.append((rel, d.path))
                    continue
                yield self._entry(rel, d.path, st)

    def stat(self, entry: RemoteEntry) -> RemoteEntry | None:
        abs_path = entry.extra.get("abs") or str(self.root / entry.path)
        try:
            st = os.lstat(abs_path)
        except FileNotFoundError:
            return None
        e = self._entry(os.path.relpath(abs_path, self.root), abs_path, st)
        return RemoteEntry(entry.remote_id, entry.path, e.size, e.mtime, e.version, None,
                           e.downloadable, e.skip_reason, e.extra)  # fmt: skip

    def open_stream(self, entry: RemoteEntry, offset: int = 0) -> Iterator[bytes]:
        abs_path = entry.extra["abs"]
        try:
            fd = os.open(abs_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            raise NotFoundAtSource(entry.path) from None
        with os.fdopen(fd, "rb", buffering=0) as f:
            st = os.fstat(f.fileno())
            if f"{st.st_size}:{st.st_mtime_ns}" != entry.version:
                raise ChangedAtSource(entry.path)
            if offset:
                f.seek(offset)
            while True:
                chunk = f.read(self.chunk_size)
                if not chunk:
                    return
                yield chunk

    def confirm(self, entry: RemoteEntry) -> None:
        fresh = self.stat(entry)
        if fresh is None:
            raise NotFoundAtSource(entry.path)
        if fresh.version != entry.version:
            raise ChangedAtSource(entry.path)
