"""Stage 6: the Great Expectations checkpoint on the run's tables; nothing is published unless it passes."""

from __future__ import annotations

from typing import Any

from pipeline.context import RunContext, timed, write_json


class GateFailed(RuntimeError):
    """The Great Expectations gate refused this run's tables (a verdict: never retried)."""


@timed
def run(ctx: RunContext) -> dict[str, Any]:
    from expectations.gate import validate_parquet_dir

    from pipeline.checkpoints import check

    work = ctx.work()
    partner = ctx.partner
    check(ctx, "labels")  # the run's labels (labels -> publish boundary); then every table
    # published_dir: reports of this run may land on studies published by earlier runs
    result = validate_parquet_dir(work.tables, partner_id=partner.id, region=partner.region, run_id=ctx.run_id,
                                  published_dir=ctx.root.parquet, max_age=ctx.profile.age_cap)
    write_json(work.gate, result.to_dict())
    if not result.success:
        raise GateFailed(f"{partner.id}: validation failed: " + "; ".join(result.failures[:10]))
    return {"success": True, "failures": 0}
