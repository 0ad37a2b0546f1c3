"""Stage: publish a run atomically: stage everything, then one commit step.

1. **Refuse** unless the ledger balances (published + quarantined + rejected = pulled).
2. **Journal, then move** the de-identified DICOM and thumbnails into
   ``dicom/`` and ``thumbnails/`` (files named by UIDs; no table references
   them before the commit, so no reader sees them).
3. **Commit**: the run's rows go into the partner's tables in one
   :meth:`transforms.parquet_store.PartnerTables.upsert`, whose snapshot file
   is replaced by one ``rename(2)``: before it readers see the old tables,
   after it the new ones, which reference the files of step 2. The run's
   snapshot number is recorded just before (``commit_intent.json``): a later
   run tells a committed run from an uncommitted one by the snapshot having
   moved past it.
4. **Finish** (idempotent; the next run repeats it if this one dies here):
   ``ledger/<run>.json`` and the leak ledger, keyed accession links, landing
   copies deleted.
5. **Replicate** to the region's object storage when ``include/regions.yaml``
   gives it one (:mod:`transforms.region_storage`: snapshot last, residency
   checked on every write).

A crash before 3 is rolled back by the next run (:mod:`pipeline.repair`:
journaled files no table references are removed, Parquet files no snapshot
lists are collected); a crash after 3 is rolled forward.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from foundation.paths import PartnerRoot
from pipeline.context import RunContext, read_json, stage, write_json
from pipeline.ledger import build_ledger
from pipeline.repair import finish_commit, is_committed, run_tag


@stage
def run(ctx: RunContext, connections: Any = None) -> dict[str, Any]:
    from foundation.schema import PRIMARY_KEYS
    from transforms.parquet_store import PartnerTables

    work = ctx.work()
    root = ctx.root
    if not is_committed(root, work):
        ledger = build_ledger(ctx.partner, root, ctx.run_id)  # refuses before anything moves
        moves = _planned_moves(root, ctx)
        write_json(work.publish_journal, {"files": [dst.relative_to(root.path).as_posix() for _s, dst in moves]})
        for src, dst in moves:
            if src.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
        changes = {f.stem: (pq.read_table(f), PRIMARY_KEYS[f.stem]) for f in work.table_files()}
        changes = {name: v for name, v in changes.items() if v[0].num_rows}
        ledger["published_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        ledger["tables"] = {name: t.num_rows for name, (t, _k) in changes.items()}
        write_json(work.staged_ledger, ledger)  # finish_commit publishes it after the commit
        tables = PartnerTables(root.parquet)
        write_json(work.commit_intent, {"snapshot": tables.snapshot().number})
        tables.upsert(changes, tag=run_tag(work.run_id))  # THE commit: one atomic snapshot replace
    finish_commit(root, work)
    summary = _summary(root, ctx.run_id)
    summary["replicated"] = _replicate(ctx, connections)
    return summary


def _replicate(ctx: RunContext, connections: Any) -> dict[str, int]:
    """Copy the committed publication to the region's object storage, if it has one (residency:
    only the partner's own region root, with the region's own connection)."""
    from transforms.region_storage import region_storage, replicate
    from transforms.sources.base import env_connection_resolver

    storage = region_storage(ctx.partner.region)
    if not storage.remote:
        return {"copied": 0, "removed": 0}
    return replicate(ctx.root.path, storage, ctx.partner.id, connections or env_connection_resolver)


def _planned_moves(root: PartnerRoot, ctx: RunContext) -> list[tuple[Path, Path]]:
    work = ctx.run
    moves: list[tuple[Path, Path]] = []
    if work.staged_dicom.exists():
        for dirpath, _dirs, names in os.walk(work.staged_dicom):
            for name in names:
                src = Path(dirpath) / name
                moves.append((src, root.dicom / src.relative_to(work.staged_dicom)))
    if work.thumbnails.exists():
        moves.extend((src, root.thumbnails / src.name) for src in sorted(work.thumbnails.iterdir()) if src.is_file())
    return moves


def _summary(root: PartnerRoot, run_id: str) -> dict[str, Any]:
    ledger = read_json(root.ledger_file(run_id))
    return {"tables": ledger.get("tables", {}), "ledger": str(root.ledger_file(run_id)), "parquet": str(root.parquet),
            **{k: ledger[k] for k in ("pulled", "published", "quarantined", "rejected")}}
