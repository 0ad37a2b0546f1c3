"""Stage 8: delete the landing copies and the run's work folder (identity maps included)."""

from __future__ import annotations

import shutil
from typing import Any

from pipeline.context import RunContext, fetched, timed


@timed
def run(ctx: RunContext) -> dict[str, Any]:
    from transforms.pull import cleanup_landing

    work = ctx.run
    deleted = cleanup_landing(ctx.root, fetched(work))
    shutil.rmtree(work.path, ignore_errors=True)
    return {"landing": deleted, "work_removed": not work.exists()}
