"""De-identify many files: one Deidentifier per worker process, outcomes per file.

Used by ``sta deid`` (a whole tree, ``--workers N``) and by the partner DAG's
mapped task (one batch of files). Each input ends published, quarantined or
rejected; nothing is dropped silently, so callers can prove
published + quarantined + rejected = input, and ``sta deid --manifest``
writes one line per input.
"""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from anonymization.dicom import DeidResult, Deidentifier, Quarantine
from anonymization.keys import Keyring
from anonymization.profiles import ProfileSet
from foundation.quarantine import Reason, quarantine_file


@dataclass(frozen=True)
class DeidSettings:
    """Everything a worker needs to build its Deidentifier (picklable, no key inside)."""

    profile: str = "latam"
    overrides: dict[str, Any] = field(default_factory=dict)
    partner_id: str = "local"
    national_id_issuers: dict[str, str] = field(default_factory=dict)
    clean_pixels: bool = True
    checksum: bool = True  # SHA-256 of each output (the pipeline records it; ``sta deid`` does not)
    languages: tuple[str, ...] = ("es", "pt", "en")  # the partner's; the first picks the OCR model
    reader: Literal["fast", "pydicom"] = "fast"  # header reader (both give the same bytes)


@dataclass
class Outcome:
    relpath: str
    status: str  # "published" | "quarantined" | "rejected"
    reason: str | None = None
    detail: str | None = None
    result: DeidResult | None = None
    output: str | None = None  # relative to the output folder
    profile: str | None = None

    def manifest_line(self) -> dict[str, Any]:
        """The ``sta deid --manifest`` record (issue 10.5: these four keys, plus the chosen profile)."""
        return {"input": self.relpath, "status": self.status, "output": self.output, "reason": self.reason,
                "profile": self.profile}


def pixel_cleaner(languages: tuple[str, ...] = ("es", "pt", "en")) -> Callable[..., Any] | None:
    """The burned-in text cleaner, when the OCR stack is installed (else at-risk files quarantine)."""
    try:
        from anonymization.pixels import clean_burned_in
    except ImportError:
        return None

    def clean(ds: Any, known_phi: list[str]) -> Any:
        return clean_burned_in(ds, known_phi, languages=languages)

    return clean


def pixel_filter() -> Callable[..., Any] | None:
    """The pixel module's filter of pixel bytes (JPEG markers, trailing bytes), when it exists;
    imported on the first file that has pixel data."""
    from importlib.util import find_spec

    if find_spec("anonymization.encapsulated") is None:
        return None

    def filter_pixel_element(src: Any, span: Any, view: Any, dst: Any) -> Any:
        from anonymization.encapsulated import filter_pixel_element as real

        return real(src, span, view, dst)

    return filter_pixel_element


def build_deidentifier(settings: DeidSettings, key: bytes | None = None) -> Deidentifier:
    return Deidentifier(
        ProfileSet.load(settings.profile, settings.overrides, where=f"partner {settings.partner_id}"),
        Keyring(key) if key else Keyring.from_env(),
        partner_id=settings.partner_id,
        national_id_issuers=settings.national_id_issuers,
        pixel_cleaner=pixel_cleaner(tuple(settings.languages)) if settings.clean_pixels else None,
        pixel_filter=pixel_filter(),
        checksum=settings.checksum,
        reader=settings.reader,
        languages=tuple(settings.languages),
    )


def deidentify_one(
    deid: Deidentifier,
    src: Path,
    relpath: str,
    out_dir: Path,
    quarantine_dir: Path,
    *,
    keep_relpath: bool,
    stage: str = "deidentify",
    run_id: str = "",
) -> Outcome:
    """One file to ``out_dir`` (named ``<study>/<series>/<sop>.dcm`` by its new UIDs unless
    ``keep_relpath``) or to quarantine with a reason; any error quarantines (fail closed)."""
    try:
        result = deid.deidentify_file(src, out_dir, relpath if keep_relpath else None)
        return Outcome(relpath, "published", result=result, output=result.output.relative_to(out_dir).as_posix(),
                       profile=result.profile)
    except Quarantine as q:
        reason, detail = q.reason, q.detail
    except (ImportError, SyntaxError, NameError):
        # A broken installation or a code bug says nothing about this file: quarantining every file
        # of the batch for it would lose good data. The task fails instead (and is retried); the
        # files stay in landing for the next run.
        raise
    except MemoryError:
        reason, detail = "deid_error", "out of memory"
    except Exception as exc:  # noqa: BLE001 - fail closed: any error quarantines the file
        reason, detail = "deid_error", type(exc).__name__  # never str(exc): it may quote a value
    quarantine_file(src, quarantine_dir, relpath, Reason(reason, stage, detail, run_id))
    return Outcome(relpath, "quarantined", reason, detail)


_WORKER: Deidentifier | None = None


def _init_worker(settings: DeidSettings, key: bytes) -> None:
    global _WORKER
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    _WORKER = build_deidentifier(settings, key)


def _run_chunk(args: tuple[list[tuple[str, str]], str, str, bool]) -> list[Outcome]:
    items, out_dir, q_dir, keep = args
    assert _WORKER is not None
    outcomes = []
    for src, rel in items:
        o = deidentify_one(_WORKER, Path(src), rel, Path(out_dir), Path(q_dir), keep_relpath=keep)
        if o.result is not None:
            o.result.identity = None  # type: ignore[assignment]  # PHI stays in the worker
        outcomes.append(o)
    return outcomes


def _special_kind(mode: int) -> str | None:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISSOCK(mode):
        return "socket"
    if not stat.S_ISREG(mode):
        return "not_a_regular_file"
    return None


def _preload() -> None:
    """Modules and tables every worker needs on its first file, loaded before the pool forks."""
    from anonymization.phi_scan import dicom_vocabulary
    from anonymization.recognizers import dates, ids, names  # noqa: F401

    dicom_vocabulary()
    from importlib.util import find_spec

    if find_spec("anonymization.encapsulated") is not None:
        import anonymization.encapsulated  # noqa: F401 - the pixel filter every file with pixels calls


def scan_inputs(root: Path) -> tuple[list[tuple[Path, str]], list[Outcome]]:
    """Every entry under ``root``: regular files to process, and the rest as rejected outcomes.

    Symbolic links (to files or folders), FIFOs, devices and sockets are never
    opened (a FIFO blocks a reader, a link may leave the input) and never
    skipped silently: each is a rejected line with its kind as the reason.
    """
    files: list[tuple[Path, str]] = []
    rejected: list[Outcome] = []
    def unreadable(err: OSError) -> None:  # a folder that cannot be listed is an input we could not read
        if err.filename and Path(err.filename) != root:
            rejected.append(Outcome(Path(err.filename).relative_to(root).as_posix(), "rejected", "unreadable"))

    for dirpath, dirs, names in os.walk(root, followlinks=False, onerror=unreadable):
        base = Path(dirpath)
        for d in list(dirs):
            if (base / d).is_symlink():
                rejected.append(Outcome((base / d).relative_to(root).as_posix(), "rejected", "symlink"))
        for name in sorted(names):
            p = base / name
            rel = p.relative_to(root).as_posix()
            try:
                kind = _special_kind(os.lstat(p).st_mode)
            except OSError:
                kind = "unreadable"
            if kind is None:
                files.append((p, rel))
            else:
                rejected.append(Outcome(rel, "rejected", kind))
    return files, rejected


def iter_files(root: Path) -> Iterator[tuple[Path, str]]:
    """Regular files under ``root`` (links and special files are reported by :func:`scan_inputs`)."""
    yield from scan_inputs(root)[0]


def deidentify_tree(
    input_dir: Path,
    output_dir: Path,
    quarantine_dir: Path,
    settings: DeidSettings,
    *,
    workers: int = 1,
    chunk_size: int = 64,
    manifest: Path | None = None,
) -> dict[str, Any]:
    """``sta deid``: every file of INPUT_DIR to OUTPUT_DIR (named by its new UIDs) or QUARANTINE."""
    key = Keyring.from_env().key  # refuse early, before any worker starts
    paths, rejected = scan_inputs(input_dir)
    files = [(str(p), rel) for p, rel in paths]
    outcomes: list[Outcome] = list(rejected)
    if workers <= 1:
        deid = build_deidentifier(settings, key)
        for src, rel in files:
            o = deidentify_one(deid, Path(src), rel, output_dir, quarantine_dir, keep_relpath=False)
            o.result = None  # nothing identifying kept across files
            outcomes.append(o)
    else:
        _preload()  # workers fork from here: what is loaded once is loaded for all of them
        # small enough chunks that no worker idles at the end, large enough to amortise the round trip
        chunk_size = max(1, min(chunk_size, len(files) // (workers * 8) or 1))
        chunks = [files[i : i + chunk_size] for i in range(0, len(files), chunk_size)]
        try:
            with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(settings, key)) as pool:
                for part in pool.map(_run_chunk, [(c, str(output_dir), str(quarantine_dir), False) for c in chunks]):
                    outcomes.extend(part)
        except BrokenProcessPool:
            # A worker died (killed, out of memory in a native library): the files it had not
            # reported are quarantined with that reason, so every input is still accounted for.
            done = {o.relpath for o in outcomes}
            for src, rel in files:
                if rel not in done:
                    quarantine_file(Path(src), quarantine_dir, rel, Reason("worker_crashed", "deidentify",
                                                                          "the worker process died", ""))
                    outcomes.append(Outcome(rel, "quarantined", "worker_crashed", "the worker process died"))
    if manifest is not None:
        write_manifest(manifest, outcomes)
    return summarise(outcomes, len(files) + len(rejected))


def write_manifest(path: Path, outcomes: Iterable[Outcome]) -> None:
    """One JSON line per input, sorted by input path; written whole, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    # It links raw input names (patients' names, IDs) to outputs: readable by its owner only.
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as fp:
        for o in sorted(outcomes, key=lambda o: o.relpath):
            # ASCII JSON: a file name that is not UTF-8 (surrogate-escaped bytes) stays representable
            fp.write(json.dumps(o.manifest_line(), ensure_ascii=True) + "\n")
    os.replace(tmp, path)


def summarise(outcomes: Iterable[Outcome], total: int) -> dict[str, Any]:
    outcomes = list(outcomes)
    reasons = Counter(o.reason for o in outcomes if o.status == "quarantined")
    rejected = Counter(o.reason for o in outcomes if o.status == "rejected")
    published = sum(o.status == "published" for o in outcomes)
    profiles = Counter(o.profile for o in outcomes if o.status == "published")
    return {
        "input": total,
        "published": published,
        "quarantined": sum(reasons.values()),
        "rejected": sum(rejected.values()),
        "by_reason": dict(sorted(reasons.items())),
        "rejected_by_reason": dict(sorted(rejected.items())),
        "by_profile": dict(sorted(profiles.items())),
    }
