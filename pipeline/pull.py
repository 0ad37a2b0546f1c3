"""Stage 1: fetch new/changed files from the partner's source into its landing area."""

from __future__ import annotations

import logging
from typing import Any

from pipeline.context import RunContext, record_outcomes, timed

_log = logging.getLogger("sta.outcomes")


@timed
def run(ctx: RunContext, connections: Any = None, options: Any = None) -> dict[str, Any]:
    """Pull, and record a ``rejected`` outcome for each file the source refused or failed.

    ``options``: a :class:`transforms.pull.PullOptions` (an ad-hoc run's Trigger form).
    """
    from transforms.pull import pull_partner

    from pipeline.repair import repair

    repaired = repair(ctx.root, ctx.run_id)  # dead runs first: identity maps swept, half-publications undone
    work = ctx.work()
    data = pull_partner(ctx.partner, ctx.root, ctx.run_id, connections, options=options).to_dict()
    rejected = [
        {"relpath": f"source:{s['remote_path']}", "status": "rejected", "reason": s["reason"], "kind": "pull"}
        for s in data.get("skipped", [])
        if s.get("reason") != "unchanged"
    ] + [
        {"relpath": f"source:{f['remote_path']}", "status": "rejected", "reason": f["reason"], "kind": "pull"}
        for f in data.get("failed", [])
    ]
    record_outcomes(work, "pull", rejected)
    from foundation.landing import landing_id

    for f in data.get("fetched", []):  # one log line per landed file, by landing id (never the partner's path)
        _log.info("file %s pulled %s", landing_id(f["landing_relpath"]), "carried_over" if f.get("carried_over") else "-")
    if data.get("options"):
        _log.info("ad-hoc pull options: %s; dry run would fetch %d", ", ".join(sorted(data["options"])),
                  data.get("would_fetch", 0))
    return {"fetched": len(data.get("fetched", [])), "rejected": len(rejected), "failed": len(data.get("failed", [])),
            "would_fetch": data.get("would_fetch", 0), "options": data.get("options", {}),
            "repaired": {k: v for k, v in repaired.items() if v}}
