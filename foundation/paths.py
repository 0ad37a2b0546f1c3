"""Where things live: the data root, a partner's enclave and a run's work folder.

Every path a partner's tasks touch is derived here from the data root, the
partner's region and its id, so that no task reaches another partner's or
another region's storage by accident (:meth:`PartnerRoot.ensure_inside`). The
layout of a run's work folder is a contract between stages; :class:`RunFolder`
is that contract, so no stage spells a file name of another stage.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INCLUDE_DIR = PROJECT_ROOT / "include"
PARTNERS_DIR = INCLUDE_DIR / "partners"
PROFILES_DIR = INCLUDE_DIR / "profiles"


def data_root() -> Path:
    """The data root: ``$STA_DATA_ROOT`` or ``./data`` (resolved once per call)."""
    return Path(os.environ.get("STA_DATA_ROOT") or "data").resolve()


def partners_dir() -> Path:
    """Partner YAML folder: ``$STA_PARTNERS_DIR`` or ``include/partners``."""
    return Path(os.environ.get("STA_PARTNERS_DIR") or PARTNERS_DIR)


def safe_run_id(run_id: str) -> str:
    """Airflow run ids contain ':' and '+'; keep them usable as folder names."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)[:120]


@dataclass(frozen=True)
class PartnerRoot:
    """A partner's storage enclave: ``<data>/<region>/partners/<id>/``.

    The raw zone (identifying data may exist only here; dirs 0700, files 0600):

    landing/     raw files pulled (deleted once a run has published them)
    work/<run>/  per-run intermediate files, incl. identity maps (see RunFolder)
    quarantine/  refused originals, named by landing id, each with a PHI-free ``.reason.json``
    state/       sync state of the source connector (remote paths), keyed accession links

    Everything else holds no identifying value (files named by UIDs, tokens or landing ids):

    parquet/     published tables (partitioned; ``_snapshot.json`` lists the live files, see transforms/parquet_store.py)
    dicom/       published de-identified DICOM
    thumbnails/  published series thumbnails
    ledger/      per run: ``<run>.json`` (every pulled file's outcome) and ``<run>.verification.jsonl``
    reports/     per run: Great Expectations Data Docs, review sheets
    """

    RAW_ZONE = ("landing", "work", "quarantine", "state")

    base: Path
    region: str
    partner_id: str

    @property
    def path(self) -> Path:
        return self.base / self.region / "partners" / self.partner_id

    def __truediv__(self, other: str) -> Path:
        return self.path / other

    @property
    def landing(self) -> Path:
        return self.path / "landing"

    @property
    def quarantine(self) -> Path:
        return self.path / "quarantine"

    @property
    def dicom(self) -> Path:
        return self.path / "dicom"

    @property
    def parquet(self) -> Path:
        return self.path / "parquet"

    @property
    def thumbnails(self) -> Path:
        return self.path / "thumbnails"

    @property
    def ledger(self) -> Path:
        return self.path / "ledger"

    @property
    def state(self) -> Path:
        return self.path / "state"

    @property
    def study_links(self) -> Path:
        """Keyed accession -> study of earlier runs (reports arriving after their images)."""
        return self.state / "study_links.parquet"

    def verification_file(self, run_id: str) -> Path:
        return self.ledger / f"{safe_run_id(run_id)}.verification.jsonl"

    @property
    def reports(self) -> Path:
        return self.path / "reports"

    def run_reports(self, run_id: str) -> Path:
        """Human-facing artefacts of a run (Data Docs, review sheets): no identifying value."""
        return self.reports / safe_run_id(run_id)

    def secure_raw_zone(self) -> None:
        """Create the raw-zone folders readable only by the pipeline's user (0700)."""
        self.path.mkdir(parents=True, exist_ok=True)
        for name in self.RAW_ZONE:
            d = self.path / name
            d.mkdir(mode=0o700, exist_ok=True)
            if d.stat().st_mode & 0o077:
                d.chmod(0o700)

    @property
    def work_root(self) -> Path:
        return self.path / "work"

    def work(self, run_id: str) -> Path:
        return self.work_root / safe_run_id(run_id)

    def run(self, run_id: str) -> "RunFolder":
        """The run's work folder as an object naming each of its paths."""
        return RunFolder(self.work(run_id), run_id)

    def ledger_file(self, run_id: str) -> Path:
        return self.ledger / f"{safe_run_id(run_id)}.json"

    def quarantine_run(self, run_id: str) -> Path:
        return self.quarantine / safe_run_id(run_id)

    def ensure_inside(self, p: Path) -> Path:
        """Refuse a path outside this partner's root (residency and tenancy)."""
        resolved = Path(p).resolve()
        root = self.path.resolve()
        if resolved != root and root not in resolved.parents:
            raise PermissionError(f"{p} is outside partner {self.partner_id}'s root {root}")
        return resolved


@dataclass(frozen=True)
class RunFolder:
    """``work/<run>/``: everything a run stages before it publishes.

    pull_report.json          the puller's report (fetched, skipped, failed)
    batches/<kind>-NNNNN.json manifest of one batch (landing paths)
    rows/<kind>-NNNNN.parquet per-file rows of one batch
    identity/dicom-NNNNN.json identity map of one batch (PHI: raw zone only)
    outcomes/<name>.jsonl     one outcome line per file
    staged_dicom/             de-identified DICOM awaiting publication
    thumbnails/               series thumbnails awaiting publication
    sources/<kind>-NNNNN.json output name -> landing path (raw zone: for verify's and review's look at originals)
    tables/<name>.parquet     the run's tables
    tables_links.parquet      keyed accession -> study rows for the partner's state
    gate.json                 the Great Expectations gate's result; checkpoints/<boundary>.json the others'
    verification/dicom-NNNNN.json  one DICOM batch's verification (mapped verify_batch task)
    verification.jsonl        the leak ledger in progress (published as ledger/<run>.verification.jsonl)
    review.json               the review sample's summary and the researcher's decision
    ledger.json, commit_intent.json, publish_journal.json   publish's staged ledger and commit bookkeeping

    The whole folder is in the raw zone and is deleted when the run is done (or by the next run's repair).
    """

    path: Path
    run_id: str

    def create(self) -> "RunFolder":
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def exists(self) -> bool:
        return self.path.exists()

    @property
    def pull_report(self) -> Path:
        return self.path / "pull_report.json"

    @property
    def batches(self) -> Path:
        return self.path / "batches"

    def batch(self, kind: str, batch: int) -> Path:
        return self.batches / f"{kind}-{batch:05d}.json"

    @property
    def rows(self) -> Path:
        return self.path / "rows"

    def rows_file(self, kind: str, batch: int) -> Path:
        return self.rows / f"{kind}-{batch:05d}.parquet"

    def rows_files(self, kind: str) -> list[Path]:
        return sorted(self.rows.glob(f"{kind}-*.parquet")) if self.rows.exists() else []

    @property
    def identity(self) -> Path:
        return self.path / "identity"

    def identity_file(self, batch: int) -> Path:
        return self.identity / f"dicom-{batch:05d}.json"

    def identity_files(self) -> list[Path]:
        return sorted(self.identity.glob("dicom-*.json")) if self.identity.exists() else []

    @property
    def sources(self) -> Path:
        """Per batch: output name (staged path or report id) -> landing path. Raw zone: swept with the run."""
        return self.path / "sources"

    def sources_file(self, kind: str, batch: int) -> Path:
        return self.sources / f"{kind}-{batch:05d}.json"

    def sources_map(self, kind: str) -> dict[str, str]:
        import json

        out: dict[str, str] = {}
        for p in sorted(self.sources.glob(f"{kind}-*.json")) if self.sources.exists() else []:
            out.update(json.loads(p.read_text(encoding="utf-8")))
        return out

    @property
    def outcomes(self) -> Path:
        return self.path / "outcomes"

    def outcome_file(self, name: str) -> Path:
        return self.outcomes / f"{name}.jsonl"

    def outcome_files(self) -> list[Path]:
        return sorted(self.outcomes.glob("*.jsonl")) if self.outcomes.exists() else []

    @property
    def staged_dicom(self) -> Path:
        return self.path / "staged_dicom"

    @property
    def thumbnails(self) -> Path:
        return self.path / "thumbnails"

    def thumbnail(self, series_uid: str) -> Path:
        return self.thumbnails / f"{series_uid}.png"

    @property
    def tables(self) -> Path:
        return self.path / "tables"

    def table(self, name: str) -> Path:
        return self.tables / f"{name}.parquet"

    def table_files(self) -> list[Path]:
        return sorted(self.tables.glob("*.parquet")) if self.tables.exists() else []

    @property
    def tables_links(self) -> Path:
        return self.path / "tables_links.parquet"

    @property
    def gate(self) -> Path:
        return self.path / "gate.json"

    @property
    def checkpoints(self) -> Path:
        """One JSON result per Great Expectations stage boundary (``<boundary>.json``)."""
        return self.path / "checkpoints"

    @property
    def verification(self) -> Path:
        """The leak ledger in progress: one line per output file (classes checked, outcome; never values)."""
        return self.path / "verification.jsonl"

    def verification_batch(self, batch: int) -> Path:
        """One DICOM batch's verification (leak-ledger lines and hits), written by its mapped verify task."""
        return self.path / "verification" / f"dicom-{batch:05d}.json"

    @property
    def review(self) -> Path:
        """The review sample and its decision."""
        return self.path / "review.json"

    @property
    def staged_ledger(self) -> Path:
        """The run's ledger, written before the commit and published right after it."""
        return self.path / "ledger.json"

    @property
    def commit_intent(self) -> Path:
        """The Parquet snapshot number just before publish committed (tells a later run whether it did)."""
        return self.path / "commit_intent.json"

    @property
    def publish_journal(self) -> Path:
        """What publish moved into the published folders before its commit (for a rollback)."""
        return self.path / "publish_journal.json"
