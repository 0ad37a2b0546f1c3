"""Stage 7: move staged DICOM and thumbnails, merge tables into the partner's store, write the ledger."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipeline.context import RunContext, timed, write_json
from pipeline.ledger import build_ledger


@timed
def run(ctx: RunContext) -> dict[str, Any]:
    from foundation.schema import PRIMARY_KEYS
    from transforms.parquet_store import merge_table

    work = ctx.work()
    root = ctx.root
    ledger = build_ledger(ctx.partner, root, ctx.run_id)  # refuses before anything moves
    moved = 0
    if work.staged_dicom.exists():
        for dirpath, _dirs, names in os.walk(work.staged_dicom):
            for name in names:
                src = Path(dirpath) / name
                dst = root.dicom / src.relative_to(work.staged_dicom)
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
                moved += 1
    if work.thumbnails.exists():
        for src in work.thumbnails.iterdir():
            dst = root.thumbnails / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
    counts = {}
    for table_file in work.table_files():
        name = table_file.stem
        counts[name] = merge_table(root.parquet / f"{name}.parquet", pq.read_table(table_file), PRIMARY_KEYS[name])
    if work.tables_links.exists():
        merge_table(root.study_links, pq.read_table(work.tables_links), ("accession_key",))
    ledger["published_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    ledger["tables"] = counts
    ledger_file = root.ledger_file(ctx.run_id)
    write_json(ledger_file, ledger)
    return {"moved_dicom": moved, "tables": counts, "ledger": str(ledger_file), "parquet": str(root.parquet),
            **{k: ledger[k] for k in ("pulled", "published", "quarantined", "rejected")}}
