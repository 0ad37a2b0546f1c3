"""Stage 8: delete the landing copies and the run's work folder (identity maps included)."""

from __future__ import annotations

import shutil
from typing import Any

from pipeline.context import RunContext, fetched, timed


@timed
def run(ctx: RunContext) -> dict[str, Any]:
    from transforms.pull import cleanup_landing

    work = ctx.run
    done = cleanup_landing(ctx.root, fetched(work))  # already done by publish's finish; idempotent
    shutil.rmtree(work.path, ignore_errors=True)
    # Counts only: this return value is an XCom, readable by every Airflow user; paths are PHI.
    return {"landing_deleted": done["deleted_count"], "landing_remaining": done["files_remaining_in_landing"],
            "work_removed": not work.exists()}


@timed
def sweep(ctx: RunContext) -> dict[str, Any]:
    """Whatever happened upstream, delete this run's identity maps (they must not outlive the run's need)."""
    from pipeline.repair import sweep_identity

    return {"identity_maps_removed": sweep_identity(ctx.run)}
