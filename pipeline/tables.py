"""Stage 5: assemble the run's patients/studies/series/instances/reports/labels tables."""

from __future__ import annotations

from typing import Any

import pyarrow.parquet as pq

from pipeline.context import RunContext, timed


@timed
def run(ctx: RunContext) -> dict[str, Any]:
    from transforms.tables import build_tables

    from pipeline.checkpoints import check

    work = ctx.work()
    check(ctx, "report_text")  # the scrubbed reports (reports -> tables boundary)
    tables = build_tables(ctx.partner, ctx.profile, work)
    work.tables.mkdir(exist_ok=True)
    for name, table in tables.items():
        pq.write_table(table, work.table(name))
    return {name: t.num_rows for name, t in tables.items()}
