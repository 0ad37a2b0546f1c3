"""Repair after a run that died: the first thing every run does (and ``sta quarantine purge``).

A run that was killed or failed leaves its work folder behind. Its identity
maps hold PHI and must not outlive it; its half-publication (if publish died
before the commit) must disappear; a run that died after its commit must be
finished. ``max_active_runs=1`` makes every other work folder of the partner a
dead run when a new run starts:

* **committed** (the Parquet snapshot lists its files, or its ledger exists):
  roll forward: the ledger file, the keyed accession links, the landing copies
  deleted (their sync-state rows marked done), exactly as ``publish`` would;
* **not committed**: roll back: Parquet files no snapshot lists collected,
  every file its publish journal moved into ``dicom/``/``thumbnails/`` that
  the committed tables do not reference removed, its quarantine folder removed (the
  originals are still in landing: the pull carries them over and this run
  processes them again).

Either way the work folder goes, identity maps first. Nothing here names a
file: the summary is counts.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from foundation.paths import PartnerRoot, RunFolder
from pipeline.context import fetched, read_json


def sweep_identity(run: RunFolder) -> int:
    """Delete a run's identity maps; return how many there were."""
    files = run.identity_files()
    shutil.rmtree(run.identity, ignore_errors=True)
    return len(files)


def run_tag(run_id: str) -> str:
    """The tag of a run's Parquet files (``part-<tag>-*.parquet``): which run wrote them, for people."""
    from foundation.paths import safe_run_id

    return "r" + safe_run_id(run_id).replace("-", "_")


def is_committed(root: PartnerRoot, run: RunFolder) -> bool:
    """True once the run's commit happened.

    Its ledger exists, or the snapshot moved past the number publish recorded
    just before committing (no other run commits in between: one run per
    partner at a time, and repair runs before the next run publishes).
    """
    if root.ledger_file(run.run_id).exists():
        return True
    if not run.commit_intent.exists():
        return False
    from transforms.parquet_store import PartnerTables

    return PartnerTables(root.parquet).snapshot().number > read_json(run.commit_intent)["snapshot"]


def repair(root: PartnerRoot, current_run_id: str) -> dict[str, Any]:
    """Sweep every work folder of ``root`` except the current run's; return counts."""
    from foundation.paths import safe_run_id

    out = {"dead_runs": 0, "rolled_back": 0, "rolled_forward": 0, "identity_maps_removed": 0, "orphans_removed": 0}
    if not root.work_root.is_dir():
        return out
    current = safe_run_id(current_run_id)
    for folder in sorted(p for p in root.work_root.iterdir() if p.is_dir() and p.name != current):
        run = RunFolder(folder, folder.name)
        out["dead_runs"] += 1
        out["identity_maps_removed"] += sweep_identity(run)
        if is_committed(root, run):
            finish_commit(root, run)
            out["rolled_forward"] += 1
        else:
            out["orphans_removed"] += rollback(root, run)
            out["rolled_back"] += 1
        shutil.rmtree(folder, ignore_errors=True)
    return out


def finish_commit(root: PartnerRoot, run: RunFolder) -> None:
    """The steps after a run's commit, idempotent: ledgers, keyed accession links, landing copies."""
    from pipeline.context import write_json
    from transforms.parquet_store import merge_table
    from transforms.pull import cleanup_landing

    ledger_file = root.ledger_file(run.run_id)
    if run.verification.exists():
        target = root.verification_file(run.run_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(run.verification, tmp)
        tmp.replace(target)
    if run.staged_ledger.exists() and not ledger_file.exists():
        write_json(ledger_file, read_json(run.staged_ledger))
    if run.tables_links.exists():
        import pyarrow.parquet as pq

        merge_table(root.study_links, pq.read_table(run.tables_links), ("accession_key",))
        run.tables_links.unlink()
    landed = fetched(run)
    if landed:
        cleanup_landing(root, landed)


def rollback(root: PartnerRoot, run: RunFolder) -> int:
    """Undo an uncommitted publication; return how many orphan files were removed."""
    from transforms.parquet_store import PartnerTables

    removed = 0
    if root.parquet.is_dir():
        removed += PartnerTables(root.parquet).collect()  # Parquet files written, never committed
    if run.publish_journal.exists():
        journal = read_json(run.publish_journal)
        referenced = _referenced(root)
        for rel in journal.get("files", []):
            if rel in referenced:
                continue  # the committed tables publish the same file (a re-run of the same input)
            p = root.path / rel
            if p.is_file() and root.ensure_inside(p):
                p.unlink()
                removed += 1
    shutil.rmtree(root.quarantine_run(run.run_id), ignore_errors=True)
    return removed


def _referenced(root: PartnerRoot) -> set[str]:
    """Paths (relative to the partner root) the committed tables point at."""
    from transforms.parquet_store import PartnerTables

    tables = PartnerTables(root.parquet)
    out: set[str] = set()
    for table, column in (("instances", "path"), ("series", "thumbnail")):
        if tables.has(table):
            out.update(v for v in tables.read(table, columns=[column]).column(column).to_pylist() if v)
    return out


def orphan_files(root: PartnerRoot) -> list[Path]:
    """Files under dicom/ and thumbnails/ that the committed tables do not reference (for tests/tools)."""
    referenced = _referenced(root)
    out = []
    for folder in (root.dicom, root.thumbnails):
        if folder.is_dir():
            out.extend(p for p in folder.rglob("*") if p.is_file() and p.relative_to(root.path).as_posix() not in referenced)
    return out

