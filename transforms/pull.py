"""The pull step: copy new and changed partner files into the landing area, safely.

One function, :func:`pull_partner`, serves the DAG's pull task and
``sta pull --partner ID``. For every entry a connector lists it decides
(against the partner's :class:`~transforms.sync_state.SyncState`) whether to
fetch, skip or re-report it, and fetches with these guarantees:

* **Remote names are never paths.** The landing path is
  :func:`~transforms.sources.safepath.safe_relpath` of the remote name,
  checked once more to be inside ``root.landing``; the original name is kept
  in the report and the state.
* **Nothing partial in landing.** Bytes stream into a hidden temp file in the
  destination folder (same file system, so the final ``os.replace`` is
  atomic), are verified (size; the service's checksum when it has one), and
  only then renamed. Temp files left by a killed run are swept at the start
  of the next pull and by the cleanup.
* **Dropped connections retry**, resuming at the bytes already written when
  the connector can (HTTP Range, SFTP/S3 offsets), with exponential backoff.
* **A file that changes while we list or read it** is detected (service
  precondition, checksum, or size/mtime re-stat) and its new version fetched.
* **Duplicates are processed once**: same bytes (SHA-256, or the service's
  checksum before downloading) as a file fetched this run or earlier.
* **Deletions are recorded** only after a *complete* listing: an interrupted
  listing must never mark unseen files as deleted.

Memory is bounded by the connector's chunk size whatever the file size.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import time
import threading
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foundation.landing import landing_id
from transforms.sources import open_source
from transforms.sources.base import (
    ChangedAtSource,
    ConnectionInfo,
    ConnectionNotFound,
    ConnectionResolver,
    CorruptTransfer,
    Hasher,
    NotFoundAtSource,
    RemoteEntry,
    Source,
    SourceError,
    TransientError,
    env_connection_resolver,
    resolver_from,
)
from transforms.sources.safepath import TEMP_PREFIX, safe_relpath
from transforms.sync_state import SyncState

if TYPE_CHECKING:
    from foundation.partners import PartnerConfig
    from foundation.paths import PartnerRoot

__all__ = [
    "PullOptions",
    "ConnectionInfo",
    "ConnectionNotFound",
    "ConnectionResolver",
    "Failed",
    "PullReport",
    "PulledFile",
    "Skipped",
    "SourceError",
    "cleanup_landing",
    "env_connection_resolver",
    "pull_partner",
    "pull_from_source",
    "resolver_from",
    "sync_state_path",
]

log = logging.getLogger(__name__)

_FSYNC_MIN_BYTES = 1024 * 1024
_FATAL_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT}  # fsync big files before the rename; tiny ones are cheap to refetch


@dataclass
class PulledFile:
    """A file now in landing. ``landing_relpath`` is relative to ``root.landing``."""

    landing_relpath: str
    remote_path: str
    remote_id: str
    size: int
    sha256: str
    source_hash: str | None = None
    mtime: str | None = None
    renamed: bool = False  # the remote name was not safe as-is
    carried_over: bool = False  # fetched by an earlier run whose processing did not finish


@dataclass
class Skipped:
    remote_path: str
    reason: str  # unchanged | duplicate_content | not_downloadable | symlink | not_regular_file | ...
    remote_id: str | None = None
    detail: str | None = None


@dataclass
class Failed:
    remote_path: str
    reason: str  # transfer_failed | hash_mismatch | size_mismatch | vanished | changed_repeatedly | listing_failed
    remote_id: str | None = None
    detail: str | None = None


@dataclass
class PullReport:
    partner_id: str
    run_id: str
    source: str
    landing: str
    started_at: str = ""
    finished_at: str = ""
    listing_complete: bool = False
    listed: int = 0
    bytes_fetched: int = 0
    fetched: list[PulledFile] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)
    deleted_at_source: list[str] = field(default_factory=list)
    # Unprocessed landing copies removed because the source withdrew or renamed them.
    removed_from_landing: list[str] = field(default_factory=list)
    report_path: str | None = None  # this report as JSON, under the run's work folder
    options: dict[str, Any] = field(default_factory=dict)  # PullOptions of an ad-hoc run
    would_fetch: int = 0  # dry run: files a real run would fetch

    @property
    def ok(self) -> bool:
        return self.listing_complete and not self.failed

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        d["counts"] = {
            "fetched": len(self.fetched),
            "skipped": len(self.skipped),
            "failed": len(self.failed),
            "deleted_at_source": len(self.deleted_at_source),
        }
        return d


@dataclass(frozen=True)
class PullOptions:
    """An ad-hoc run's choices (the DAG's Trigger form; ``sta pull`` flags).

    ``full``: fetch every file again, even unchanged ones (after a profile fix).
    ``subfolder``: only entries under this source-relative folder.
    ``since``: only entries modified at or after this ISO date/time.
    ``dry_run``: list and decide, fetch nothing, change no state: the report's
    ``would_fetch`` says how many files a real run would take.
    A narrowed listing (sub-folder, since) never marks unseen files deleted.
    """

    full: bool = False
    subfolder: str | None = None
    since: str | None = None
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.subfolder is not None:
            sub = self.subfolder.strip().strip("/")
            if not sub or ".." in sub.split("/"):
                raise ValueError(f"subfolder must be a relative folder of the source, got {self.subfolder!r}")
            object.__setattr__(self, "subfolder", sub)
        if self.since:
            object.__setattr__(self, "since", _parse_time(self.since).isoformat())

    @property
    def narrows(self) -> bool:
        return bool(self.subfolder or self.since)

    def selects(self, entry: RemoteEntry) -> bool:
        if self.subfolder and not entry.path.startswith(self.subfolder + "/"):
            return False
        if self.since and entry.mtime:
            return _parse_time(entry.mtime) >= _parse_time(self.since)
        return True

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> "PullOptions":
        """From a DAG run's params / conf (missing or empty values mean "not set")."""
        p = params or {}
        return cls(full=bool(p.get("full_resync")), subfolder=p.get("subfolder") or None,
                   since=p.get("since") or None, dry_run=bool(p.get("dry_run")))


def _parse_time(value: str) -> datetime:
    t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class _VerifyError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


@dataclass
class _Job:
    entry: RemoteEntry
    prev: Any  # FileState | None
    rel: str
    final: Path
    tmp: Path


@dataclass
class _Downloaded:
    sha256: str
    size: int
    entry: RemoteEntry  # the version actually fetched (may differ from the listed one)


def _now() -> str:
    return datetime.now(tz=UTC).isoformat(timespec="seconds")


def _source_fingerprint(partner: "PartnerConfig") -> str:
    """Name of the state file: a different source config starts a fresh state."""
    s = partner.source
    key = "|".join(str(x) for x in (s.type, s.path, s.conn_id, s.bucket, s.prefix, s.folder_id))
    return f"sync-{s.type}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.sqlite"


def sync_state_path(partner: "PartnerConfig", root: "PartnerRoot") -> Path:
    """The partner's sync-state database for its current source config (read by the reactive watch too)."""
    return root.state / _source_fingerprint(partner)


def sweep_temp_files(landing: Path) -> list[str]:
    """Delete temp files a killed pull left behind; return their relative paths."""
    removed: list[str] = []
    if not landing.is_dir():
        return removed
    for dirpath, _dirs, files in os.walk(landing):
        for name in files:
            if name.startswith(TEMP_PREFIX):
                p = Path(dirpath) / name
                p.unlink(missing_ok=True)
                removed.append(p.relative_to(landing).as_posix())
    return removed


class _Puller:
    def __init__(
        self,
        source: Source,
        state: SyncState,
        landing: Path,
        report: PullReport,
        *,
        retries: int,
        backoff: float,
        full: bool = False,
    ) -> None:
        self.full = full
        self.source = source
        self.state = state
        self.landing = landing
        self.landing_resolved = landing.resolve()
        self.report = report
        self.retries = retries
        self.backoff = backoff
        self.run_relpaths: dict[str, str] = {}  # relpath -> remote_id, this run
        self.run_contents: dict[str, tuple[str, str]] = {}  # sha256 -> (remote id, path), this run
        self.run_source_hashes: dict[str, tuple[str, str]] = {}  # service checksum -> (remote id, path)
        self._dirs_ok: set[str] = set()
        self.run_duplicates: dict[str, list[RemoteEntry]] = {}  # sha256 -> entries skipped as its copies

    # -- decisions (main thread) -------------------------------------------------
    def decide(self, entry: RemoteEntry) -> _Job | None:
        """Skip, re-report, or return a download job for ``entry``."""
        rep = self.report
        if not entry.downloadable:
            rep.skipped.append(Skipped(entry.path, entry.skip_reason or "not_downloadable", entry.remote_id))
            return None
        prev = self.state.get(entry.remote_id)
        if prev is not None and prev.version == entry.version and prev.status != "deleted" and not self.full:
            if prev.status == "landed" and prev.landing_relpath and prev.sha256:
                p = self.landing / prev.landing_relpath
                if p.is_file() and p.stat().st_size == prev.size:
                    self._claim(prev.landing_relpath, entry.remote_id)
                    self.run_contents.setdefault(prev.sha256, (entry.remote_id, entry.path))
                    rep.fetched.append(
                        PulledFile(prev.landing_relpath, entry.path, entry.remote_id, prev.size or 0,
                                   prev.sha256, entry.source_hash, entry.mtime,
                                   prev.landing_relpath != entry.path, carried_over=True)
                    )  # fmt: skip
                    return None
                # landing copy gone (e.g. wiped by hand): fetch it again below
            else:
                rep.skipped.append(Skipped(entry.path, "unchanged", entry.remote_id))
                return None
        # Known content by the service's checksum: no need to download at all.
        if entry.source_hash:
            seen = self.run_source_hashes.get(entry.source_hash)
            known = self.state.content_by_source_hash(entry.source_hash)
            if seen is None and known is not None:
                seen = (known.first_remote_id, known.first_path)
            if seen is not None and seen[0] != entry.remote_id:
                if prev is not None and prev.status == "landed" and prev.landing_relpath:
                    self.remove_landed(prev.landing_relpath)  # its older, unprocessed version
                self.state.record_duplicate(entry, known.sha256 if known else None, seen[1], rep.run_id)
                if known is not None:
                    self.run_duplicates.setdefault(known.sha256, []).append(entry)
                rep.skipped.append(Skipped(entry.path, "duplicate_content", entry.remote_id, f"same as {seen[1]}"))
                return None
            self.run_source_hashes.setdefault(entry.source_hash, (entry.remote_id, entry.path))
        rel = self._relpath_for(entry)
        final = self.landing / rel
        if not self._parent_ok(final.parent):
            rep.failed.append(Failed(entry.path, "unsafe_path", entry.remote_id, rel))
            return None
        self._claim(rel, entry.remote_id)
        tmp = final.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}.part"
        return _Job(entry, prev, rel, final, tmp)

    def adopt(self, entry: RemoteEntry, old: Any) -> None:
        """``entry`` (skipped as a copy of ``old``'s bytes) takes over ``old``'s unprocessed landing file."""
        self.state.adopt(entry.remote_id, old.landing_relpath, old.sha256)
        self.report.skipped = [
            s for s in self.report.skipped if not (s.remote_id == entry.remote_id and s.reason == "duplicate_content")
        ]
        self.report.fetched.append(
            PulledFile(old.landing_relpath, entry.path, entry.remote_id, old.size or 0, old.sha256,
                       entry.source_hash, entry.mtime, old.landing_relpath != entry.path, carried_over=True)
        )  # fmt: skip

    def remove_landed(self, relpath: str, owner: str | None = None) -> None:
        """Delete an unprocessed landing copy nothing will process any more."""
        if self.run_relpaths.get(relpath, owner) != owner:
            return  # claimed by another file of this run
        p = self.landing / relpath
        if ".." in Path(relpath).parts or not p.parent.resolve().is_relative_to(self.landing_resolved):
            return
        try:
            p.unlink()
        except FileNotFoundError:
            return
        self.report.removed_from_landing.append(relpath)

    def _parent_ok(self, parent: Path) -> bool:
        """Create ``parent`` and check it resolves inside landing (no symlinked escape)."""
        key = str(parent)
        if key in self._dirs_ok:
            return True
        if parent.exists() and not parent.resolve().is_relative_to(self.landing_resolved):
            return False
        parent.mkdir(parents=True, exist_ok=True)
        if not parent.resolve().is_relative_to(self.landing_resolved):
            return False
        self._dirs_ok.add(key)
        return True

    def _claim(self, relpath: str, remote_id: str) -> None:
        self.run_relpaths[relpath] = remote_id

    def _relpath_for(self, entry: RemoteEntry) -> str:
        rel = safe_relpath(entry.path)
        owner = self.run_relpaths.get(rel) or self.state.relpath_owner(rel)
        if owner is not None and owner != entry.remote_id:
            # Two remote names map to one landing name (e.g. case or sanitising);
            # disambiguate by the remote id, deterministically.
            tag = hashlib.sha256(entry.remote_id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
            head, _, last = rel.rpartition("/")
            stem, dot, ext = last.rpartition(".")
            last = f"{stem}~{tag}.{ext}" if dot and stem else f"{last}~{tag}"
            rel = f"{head}/{last}" if head else last
        return rel

    # -- download (worker threads) ----------------------------------------------
    def run_job(self, job: _Job, source: Source) -> _Downloaded:
        try:
            return self._download(job.entry, job.tmp, source)
        except BaseException:
            job.tmp.unlink(missing_ok=True)
            raise

    # -- results (main thread) ----------------------------------------------------
    def finish(self, job: _Job, got: _Downloaded | None, exc: BaseException | None) -> None:
        rep = self.report
        entry, prev = job.entry, job.prev
        if exc is not None:
            job.tmp.unlink(missing_ok=True)
            if isinstance(exc, _VerifyError):
                rep.failed.append(Failed(entry.path, exc.reason, entry.remote_id, exc.detail))
                return
            if isinstance(exc, OSError) and exc.errno in _FATAL_ERRNOS:
                raise exc  # local disk full / read-only: every next file would fail too
            if not isinstance(exc, Exception):
                raise exc
            log.error("fetch of %s failed: %s", landing_id("source:" + entry.path), type(exc).__name__)
            rep.failed.append(Failed(entry.path, "error", entry.remote_id, f"{type(exc).__name__}: {exc}"))
            return
        assert got is not None
        fetched_entry = got.entry
        # Same bytes as something already fetched (this run or an earlier one)?
        dup = self.run_contents.get(got.sha256)
        if dup is None:
            known = self.state.content(got.sha256)
            if known is not None:
                dup = (known.first_remote_id, known.first_path)
        if dup is not None and dup[0] != entry.remote_id:
            job.tmp.unlink(missing_ok=True)
            if prev is not None and prev.status == "landed" and prev.landing_relpath:
                self.remove_landed(prev.landing_relpath, entry.remote_id)  # its older, unprocessed version
            self.state.record_duplicate(fetched_entry, got.sha256, dup[1], rep.run_id)
            self.run_duplicates.setdefault(got.sha256, []).append(fetched_entry)
            rep.skipped.append(Skipped(entry.path, "duplicate_content", entry.remote_id, f"same as {dup[1]}"))
            return
        if not self.full and prev is not None and prev.sha256 == got.sha256 and prev.status in ("done", "duplicate"):
            # Only metadata changed (touched, re-uploaded identical bytes).
            job.tmp.unlink(missing_ok=True)
            self.state.record_same_content(fetched_entry, prev)
            rep.skipped.append(Skipped(entry.path, "unchanged", entry.remote_id, "same content, new metadata"))
            return
        os.replace(job.tmp, job.final)
        if prev is not None and prev.status == "landed" and prev.landing_relpath not in (None, job.rel):
            # An unprocessed older copy under another name (renamed at the source).
            self.remove_landed(prev.landing_relpath)
        self.run_contents[got.sha256] = (entry.remote_id, entry.path)
        self.state.record_fetched(fetched_entry, got.sha256, job.rel, rep.run_id)
        rep.bytes_fetched += got.size
        rep.fetched.append(
            PulledFile(job.rel, entry.path, entry.remote_id, got.size, got.sha256, fetched_entry.source_hash,
                       fetched_entry.mtime, job.rel != entry.path)
        )  # fmt: skip

    # -- transfer --------------------------------------------------------------
    def _download(self, entry: RemoteEntry, tmp: Path, source: Source) -> _Downloaded:
        """Stream ``entry`` into ``tmp`` with retries, resume and verification."""
        current = entry
        attempt = 0
        changes = 0
        sha = hashlib.sha256()
        src_hasher: Hasher | None = source.new_hasher(current)
        written = 0
        last_error = ""
        with open(tmp, "wb") as out:
            while True:
                attempt += 1
                offset = written if source.supports_resume else 0
                if offset == 0 and written:
                    out.seek(0)
                    out.truncate()
                    written = 0
                    sha = hashlib.sha256()
                    src_hasher = source.new_hasher(current)
                try:
                    try:
                        for chunk in source.open_stream(current, offset):
                            out.write(chunk)
                            sha.update(chunk)
                            if src_hasher is not None:
                                src_hasher.update(chunk)
                            written += len(chunk)
                    except CorruptTransfer as exc:
                        raise _VerifyError("hash_mismatch", str(exc)) from None
                    out.flush()
                    self._verify(current, written, src_hasher)
                    source.confirm(current)
                    if written >= _FSYNC_MIN_BYTES:
                        os.fsync(out.fileno())
                    return _Downloaded(sha.hexdigest(), written, current)
                except (TransientError, ConnectionError, TimeoutError, _VerifyError, ChangedAtSource) as exc:
                    changed = isinstance(exc, ChangedAtSource)
                    fresh: RemoteEntry | None = current
                    if isinstance(exc, (_VerifyError, ChangedAtSource)):
                        # A checksum or size mismatch is either corruption or a change
                        # that happened after the listing; the service's fresh metadata tells.
                        fresh = self._stat(source, current)
                        if fresh is not None and fresh.version != current.version:
                            changed = True
                    if fresh is None:
                        raise _VerifyError("vanished", f"{current.path} disappeared during the fetch") from None
                    if changed:
                        changes += 1
                        if changes > self.retries + 1:
                            raise _VerifyError("changed_repeatedly", f"{current.path} kept changing") from None
                        if fresh is None:
                            raise _VerifyError("vanished", f"{current.path} disappeared during the fetch") from None
                        log.info("%s changed at the source during the fetch; fetching the new version", landing_id("source:" + current.path))
                        current = fresh
                        out.seek(0)
                        out.truncate()
                        written = 0
                        sha = hashlib.sha256()
                        src_hasher = source.new_hasher(current)
                        attempt -= 1  # a change is not a failed attempt
                        continue
                    if isinstance(exc, _VerifyError):
                        # Corrupt transfer: start again from zero, not from the bad bytes.
                        out.seek(0)
                        out.truncate()
                        written = 0
                        sha = hashlib.sha256()
                        src_hasher = source.new_hasher(current)
                        if attempt > self.retries:
                            raise exc from None
                    else:
                        last_error = f"{type(exc).__name__}: {exc}"
                        if attempt > self.retries:
                            raise _VerifyError("transfer_failed", last_error) from None
                    log.warning("fetch of %s failed (attempt %d): %s; retrying", landing_id("source:" + current.path), attempt,
                                type(exc).__name__)
                    time.sleep(self.backoff * (2 ** (attempt - 1)))
                except NotFoundAtSource:
                    raise _VerifyError("vanished", f"{current.path} disappeared before the fetch") from None

    @staticmethod
    def _stat(source: Source, entry: RemoteEntry) -> RemoteEntry | None:
        """Fresh metadata; if the service cannot say right now, assume unchanged (then retry)."""
        try:
            return source.stat(entry)
        except (TransientError, ConnectionError, TimeoutError):
            return entry

    @staticmethod
    def _verify(entry: RemoteEntry, written: int, src_hasher: Hasher | None) -> None:
        if entry.size is not None and written != entry.size:
            raise _VerifyError("size_mismatch", f"expected {entry.size} bytes, got {written}")
        if src_hasher is not None and entry.source_hash:
            expected = entry.source_hash.split(":", 1)[1]
            got = src_hasher.hexdigest()
            if got != expected:
                raise _VerifyError("hash_mismatch", f"{entry.source_hash.split(':', 1)[0]} expected {expected}, got {got}")


class _SourcePool:
    """One connector per worker thread (``Source.clone``), closed at the end."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._local = threading.local()
        self._lock = threading.Lock()
        self._clones: list[Source] = []

    def get(self) -> Source:
        src = getattr(self._local, "src", None)
        if src is None:
            src = self.source.clone()
            if src is not self.source:
                with self._lock:
                    self._clones.append(src)
            self._local.src = src
        return src

    def close(self) -> None:
        for c in self._clones:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                log.debug("closing a %s clone failed", c.kind, exc_info=True)


def pull_from_source(
    source: Source,
    state_path: Path,
    landing: Path,
    *,
    partner_id: str,
    run_id: str,
    retries: int = 3,
    backoff: float = 1.0,
    workers: int | None = None,
    options: PullOptions | None = None,
) -> PullReport:
    """Pull from an already-open connector (the engine under :func:`pull_partner`).

    Decisions, renames and state updates happen on this thread, in listing
    order; only downloads run on ``workers`` threads (default: the
    connector's ``max_workers``), each with its own connection, at most
    ``2 * workers`` in flight so memory stays bounded.
    """
    landing.mkdir(parents=True, exist_ok=True)
    options = options or PullOptions()
    report = PullReport(partner_id=partner_id, run_id=run_id, source=source.kind, landing=str(landing))
    report.options = {k: v for k, v in asdict(options).items() if v}
    report.started_at = _now()
    swept = sweep_temp_files(landing)
    if swept:
        log.warning("removed %d temp files left by an interrupted pull", len(swept))
    n_workers = max(1, workers or source.max_workers)
    with SyncState(state_path) as state:
        puller = _Puller(source, state, landing, report, retries=retries, backoff=backoff, full=options.full)
        pool = _SourcePool(source)
        executor = ThreadPoolExecutor(n_workers, thread_name_prefix=f"pull-{source.kind}") if n_workers > 1 else None
        inflight: dict[Future[_Downloaded], _Job] = {}

        def work(job: _Job) -> _Downloaded:
            return puller.run_job(job, pool.get())

        def drain(limit: int) -> None:
            while len(inflight) > limit:
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=lambda f: inflight[f].entry.path):
                    job = inflight.pop(fut)
                    exc = fut.exception()
                    puller.finish(job, None if exc else fut.result(), exc)

        seen: set[str] = set()
        try:
            try:
                for entry in source.list():
                    report.listed += 1
                    seen.add(entry.remote_id)
                    if not options.selects(entry):
                        continue
                    try:
                        job = puller.decide(entry)
                    except Exception as exc:  # noqa: BLE001 - one bad entry must not stop the others
                        log.exception("deciding about %s failed", landing_id("source:" + entry.path))
                        report.failed.append(
                            Failed(entry.path, "error", entry.remote_id, f"{type(exc).__name__}: {exc}")
                        )
                        continue
                    if job is None:
                        continue
                    if options.dry_run:
                        report.would_fetch += 1
                        continue
                    if executor is None:
                        try:
                            got, err = puller.run_job(job, source), None
                        except Exception as exc:  # noqa: BLE001 - sorted out by finish()
                            got, err = None, exc
                        puller.finish(job, got, err)
                    else:
                        inflight[executor.submit(work, job)] = job
                        drain(2 * n_workers)
                report.listing_complete = True
            except (ConnectionNotFound, SourceError):
                raise
            except Exception as exc:  # noqa: BLE001 - recorded; the run must not mark deletions
                log.exception("listing of %s failed", source.kind)
                report.failed.append(Failed("<listing>", "listing_failed", None, f"{type(exc).__name__}: {exc}"))
            drain(0)
        finally:
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
            for job in inflight.values():  # only when raising: no partial file stays behind
                job.tmp.unlink(missing_ok=True)
            pool.close()
        if report.listing_complete and not options.narrows:
            gone = sorted(state.live_ids() - seen)
            if gone:
                rows = [r for r in (state.get(rid) for rid in gone) if r is not None]
                state.mark_deleted(gone, run_id)
                report.deleted_at_source = sorted(r.path for r in rows)
                for r in rows:
                    if r.status != "landed" or not r.landing_relpath:
                        continue
                    heirs = puller.run_duplicates.get(r.sha256 or "")
                    if heirs:
                        # Renamed (or re-uploaded) at the source before a run processed it:
                        # the live copy, skipped above as a duplicate, inherits the landing file.
                        puller.adopt(heirs[0], r)
                    else:
                        # Withdrawn by the partner before a run processed it: must not be processed.
                        puller.remove_landed(r.landing_relpath)
    for items in (report.fetched, report.skipped, report.failed):
        items.sort(key=lambda x: x.remote_path)  # type: ignore[attr-defined]
    report.finished_at = _now()
    return report


def pull_partner(
    partner: "PartnerConfig",
    root: "PartnerRoot",
    run_id: str,
    connections: ConnectionResolver | None = None,
    *,
    retries: int = 3,
    backoff: float = 1.0,
    source: Source | None = None,
    workers: int | None = None,
    options: PullOptions | None = None,
) -> PullReport:
    """Fetch the partner's new and changed files into ``root.landing``.

    ``connections`` resolves the ``conn_id`` named in the partner YAML (the
    Airflow operator passes one built on ``BaseHook.get_connection``; the
    default reads ``AIRFLOW_CONN_*`` variables). A missing or unusable
    connection raises :class:`ConnectionNotFound` naming it. Per-file problems
    do not raise: they are in ``report.failed`` with a reason.
    """
    if root.partner_id != partner.id:
        raise PermissionError(f"root of partner {root.partner_id} used for partner {partner.id}")
    landing = root.ensure_inside(root.landing)
    state_path = root.ensure_inside(root.state) / _source_fingerprint(partner)
    state_path.parent.mkdir(parents=True, exist_ok=True)
    options = options or PullOptions()
    with _exclusive(state_path.parent / ".pull.lock", partner.id), contextlib.ExitStack() as stack:
        own = source is None
        src = source or open_source(partner, connections or env_connection_resolver, base=root.base)
        if options.dry_run:  # decide on copies: a dry run changes neither the state nor landing
            import shutil
            import tempfile

            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=".dry-run-", dir=state_path.parent)))
            if state_path.exists():
                shutil.copy2(state_path, scratch / state_path.name)
            state_path, landing = scratch / state_path.name, scratch / "landing"
        try:
            report = pull_from_source(
                src, state_path, landing, partner_id=partner.id, run_id=run_id, retries=retries, backoff=backoff,
                workers=workers, options=options,
            )
        finally:
            if own:
                src.close()
    if options.dry_run:
        report.landing = str(root.landing)
    # The full report beside the run's work files: a partner with 300,000 files
    # makes a report too big for an XCom, so the DAG can pass this path instead.
    work = root.work(run_id)
    work.mkdir(parents=True, exist_ok=True)
    report.report_path = str(work / "pull_report.json")
    tmp = work / ".pull_report.json.tmp"
    tmp.write_text(json.dumps(report.to_dict(), indent=1, default=str), encoding="utf-8")
    os.replace(tmp, report.report_path)
    return report


@contextlib.contextmanager
def _exclusive(lock_path: Path, partner_id: str) -> Iterator[None]:
    """One pull per partner at a time: a second one would sweep the first one's temp files."""
    with open(lock_path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SourceError(f"another pull of partner {partner_id} is running (lock {lock_path})") from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def cleanup_landing(root: "PartnerRoot", fetched_relpaths: Iterable[str]) -> dict[str, Any]:
    """Delete the landing copies a successful run used; report what was deleted.

    Called at the end of a successful run: raw partner data must not outlive
    the run that processed it. The state rows of these files become ``done``
    so the next pull skips them as unchanged. Paths are checked to be inside
    ``root.landing`` (a relpath is data from an XCom, not trusted either).
    """
    landing = root.landing.resolve()
    deleted: list[str] = []
    missing: list[str] = []
    refused: list[str] = []
    freed = 0
    relpaths = list(dict.fromkeys(fetched_relpaths))
    for rel in relpaths:
        p = landing / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts or not p.parent.resolve().is_relative_to(landing):
            refused.append(rel)
            continue
        try:
            size = p.stat().st_size
            p.unlink()
        except FileNotFoundError:
            missing.append(rel)
            continue
        freed += size
        deleted.append(rel)
    temp = sweep_temp_files(landing)
    # Remove folders left empty (deepest first), never landing itself.
    removed_dirs = 0
    if landing.is_dir():
        for dirpath, _dirs, _files in sorted(os.walk(landing), key=lambda t: -len(t[0])):
            d = Path(dirpath)
            if d != landing:
                try:
                    d.rmdir()
                    removed_dirs += 1
                except OSError:
                    pass
    marked = 0
    if root.state.is_dir():
        done = [r for r in relpaths if r not in refused]
        for db in sorted(root.state.glob("sync-*.sqlite")):
            with SyncState(db) as st:
                marked += st.mark_done(done)
    remaining = sum(1 for _ in landing.rglob("*") if _.is_file()) if landing.is_dir() else 0
    return {
        "landing": str(landing),
        "deleted": deleted,
        "deleted_count": len(deleted),
        "bytes_freed": freed,
        "missing": missing,
        "refused": refused,
        "temp_files_removed": temp,
        "empty_dirs_removed": removed_dirs,
        "state_rows_marked_done": marked,
        "files_remaining_in_landing": remaining,
    }
