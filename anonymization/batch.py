"""De-identify many files: one Deidentifier per worker process, outcomes per file.

Used by ``sta deid`` (a whole tree, ``--workers N``) and by the partner DAG's
mapped task (one batch of files). Each outcome says published or quarantined;
nothing is dropped silently, so callers can prove published + quarantined =
input.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anonymization.dicom_deid import DeidResult, Deidentifier, Quarantine
from anonymization.keys import Keyring
from anonymization.profiles import load_profile
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


@dataclass
class Outcome:
    relpath: str
    status: str  # "published" | "quarantined"
    reason: str | None = None
    detail: str | None = None
    result: DeidResult | None = None


def pixel_cleaner(languages: tuple[str, ...] = ("es", "pt", "en")) -> Callable[..., Any] | None:
    """The burned-in text cleaner, when the OCR stack is installed (else at-risk files quarantine)."""
    try:
        from anonymization.pixels import clean_burned_in
    except ImportError:
        return None

    def clean(ds: Any, known_phi: list[str]) -> Any:
        return clean_burned_in(ds, known_phi, languages=languages)

    return clean


def build_deidentifier(settings: DeidSettings, key: bytes | None = None) -> Deidentifier:
    return Deidentifier(
        load_profile(settings.profile, settings.overrides, where=f"partner {settings.partner_id}"),
        Keyring(key) if key else Keyring.from_env(),
        partner_id=settings.partner_id,
        national_id_issuers=settings.national_id_issuers,
        pixel_cleaner=pixel_cleaner(tuple(settings.languages)) if settings.clean_pixels else None,
        checksum=settings.checksum,
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
    try:
        result = deid.deidentify_file(src, out_dir, relpath if keep_relpath else None)
        return Outcome(relpath, "published", result=result)
    except Quarantine as q:
        reason, detail = q.reason, q.detail
    except MemoryError:
        reason, detail = "deid_error", "out of memory"
    except Exception as exc:  # noqa: BLE001 - fail closed: any error quarantines the file
        reason, detail = "deid_error", f"{type(exc).__name__}: {exc}"[:300]
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


def iter_files(root: Path) -> Iterator[tuple[Path, str]]:
    for dirpath, _dirs, files in os.walk(root):
        for name in sorted(files):
            p = Path(dirpath) / name
            if p.is_file() and not p.is_symlink():
                yield p, p.relative_to(root).as_posix()


def deidentify_tree(
    input_dir: Path,
    output_dir: Path,
    quarantine_dir: Path,
    settings: DeidSettings,
    *,
    workers: int = 1,
    chunk_size: int = 64,
) -> dict[str, Any]:
    """``sta deid``: every file of INPUT_DIR to OUTPUT_DIR or QUARANTINE, same relative paths."""
    key = Keyring.from_env().key  # refuse early, before any worker starts
    files = [(str(p), rel) for p, rel in iter_files(input_dir)]
    outcomes: list[Outcome] = []
    if workers <= 1:
        deid = build_deidentifier(settings, key)
        for src, rel in files:
            outcomes.append(deidentify_one(deid, Path(src), rel, output_dir, quarantine_dir, keep_relpath=True))
    else:
        # small enough chunks that no worker idles at the end, large enough to amortise the round trip
        chunk_size = max(1, min(chunk_size, len(files) // (workers * 8) or 1))
        chunks = [files[i : i + chunk_size] for i in range(0, len(files), chunk_size)]
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(settings, key)) as pool:
            for part in pool.map(_run_chunk, [(c, str(output_dir), str(quarantine_dir), True) for c in chunks]):
                outcomes.extend(part)
    return summarise(outcomes, len(files))


def summarise(outcomes: Iterable[Outcome], total: int) -> dict[str, Any]:
    outcomes = list(outcomes)
    reasons = Counter(o.reason for o in outcomes if o.status == "quarantined")
    published = sum(o.status == "published" for o in outcomes)
    return {
        "input": total,
        "published": published,
        "quarantined": total - published,
        "by_reason": dict(sorted(reasons.items())),
    }
