"""All of a partner run's stages in the DAG's order, in one process, without Airflow.

For a shell (debugging a partner with ``python -m pipeline PARTNER``) and for
tests that kill a run at a given stage. The DAG (dags/ingest_partners.py) is
the production path: same stage functions, same order, same run folder.
``review`` answers the researchers' review when the policy selects something
(``{"chosen_options": ["Approve"]}``); without an answer the review times out
to Reject, as in Airflow.
"""

from __future__ import annotations

from typing import Any, Callable

from pipeline.context import RunContext

STAGES = ("pull", "classify", "deidentify", "dicom_done", "reports", "verify_batch", "verify", "sweep_identity", "tables",
          "validate", "review", "publish", "cleanup")


def run_all(ctx: RunContext, *, connections: Any = None,
            review: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None) -> dict[str, Any]:
    """Run every stage; an exception stops the run where it happened (like a failed task)."""
    from pipeline import (checkpoints, classify, cleanup, deidentify, publish, pull, reports, review as rev,
                          tables, validate, verify)

    out: dict[str, Any] = {"pull": pull.run(ctx, connections)}
    out["classify"] = classify.run(ctx)
    out["deidentify"] = [deidentify.run(ctx, b) for b in out["classify"]["dicom"]]
    out["dicom_done"] = checkpoints.check(ctx, "deid_metadata")
    out["reports"] = [reports.run(ctx, b) for b in out["classify"]["report"]]
    try:
        out["verify_batch"] = [verify.run_batch(ctx, b) for b in out["classify"]["dicom"]]
        out["verify"] = verify.run(ctx)
    finally:
        out["sweep_identity"] = cleanup.sweep(ctx)
    out["tables"] = tables.run(ctx)
    out["validate"] = validate.run(ctx)
    prepared = rev.prepare(ctx)
    out["review"] = rev.apply(ctx, review(prepared) if (review and prepared["required"]) else None)
    out["publish"] = publish.run(ctx)
    out["cleanup"] = cleanup.run(ctx)
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    from datetime import datetime, timezone

    p = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.splitlines()[0])
    p.add_argument("partner")
    p.add_argument("--run-id", default=None)
    p.add_argument("--approve", action="store_true", help="approve the review if one is required")
    args = p.parse_args(argv)
    run_id = args.run_id or "manual__" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    answer = (lambda _p: {"chosen_options": ["Approve"], "responded_by_user": {"name": "cli"}}) if args.approve else None
    out = run_all(RunContext.resolve(args.partner, run_id), review=answer)
    out["review"].pop("body", None)
    print(json.dumps({k: out[k] for k in ("pull", "verify", "review", "publish")}, indent=1, default=str))
    return 0
