"""Stage 1: fetch new/changed files from the partner's source into its landing area."""

from __future__ import annotations

from typing import Any

from pipeline.context import RunContext, record_outcomes, timed


@timed
def run(ctx: RunContext, connections: Any = None) -> dict[str, Any]:
    """Pull, and record a ``rejected`` outcome for each file the source refused or failed."""
    from transforms.pull import pull_partner

    work = ctx.work()
    data = pull_partner(ctx.partner, ctx.root, ctx.run_id, connections).to_dict()
    rejected = [
        {"relpath": f"source:{s['remote_path']}", "status": "rejected", "reason": s["reason"], "kind": "pull"}
        for s in data.get("skipped", [])
        if s.get("reason") != "unchanged"
    ] + [
        {"relpath": f"source:{f['remote_path']}", "status": "rejected", "reason": f["reason"], "kind": "pull"}
        for f in data.get("failed", [])
    ]
    record_outcomes(work, "pull", rejected)
    return {"fetched": len(data.get("fetched", [])), "rejected": len(rejected), "failed": len(data.get("failed", []))}
