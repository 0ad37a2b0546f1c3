"""The run ledger: every pulled file's outcome, and the refusal to publish when they don't add up."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from foundation.landing import landing_id
from foundation.partners import PartnerConfig
from foundation.paths import PartnerRoot
from pipeline.context import fetched, read_json


class LedgerMismatch(RuntimeError):
    """Published + quarantined + rejected != pulled: something was lost; never publish."""


def build_ledger(partner: PartnerConfig, root: PartnerRoot, run_id: str) -> dict[str, Any]:
    """Add up the run's outcome lines; raise :class:`LedgerMismatch` if a pulled file has none."""
    run = root.run(run_id)
    outcomes: dict[str, dict[str, Any]] = {}
    for path in run.outcome_files():
        for line in path.read_text(encoding="utf-8").splitlines():
            o = json.loads(line)
            outcomes[o["relpath"]] = o
    landed = set(fetched(run))
    pulled = len(landed) + sum(1 for o in outcomes.values() if o.get("kind") == "pull")
    missing = sorted(landed - set(outcomes))
    status = Counter(o["status"] for o in outcomes.values())
    ledger = {
        "partner_id": partner.id,
        "region": partner.region,
        "run_id": run_id,
        "pulled": pulled,
        "published": status.get("published", 0),
        "quarantined": status.get("quarantined", 0),
        "rejected": status.get("rejected", 0),
        "by_reason": dict(Counter(o["reason"] for o in outcomes.values() if o["status"] != "published")),
        # Files by landing id (keyed hash of the landing path): the ledger is shown on dashboards.
        "files": sorted(({"id": landing_id(o["relpath"]), **{k: o.get(k) for k in ("status", "reason", "kind")}}
                         for o in outcomes.values()), key=lambda f: f["id"]),
    }
    if run.review.exists():  # the researchers' decision (no values: counts, reasons, reviewer's name)
        ledger["review"] = {k: v for k, v in read_json(run.review).items() if k != "body"}
    if run.verification.exists():
        lines = [json.loads(x) for x in run.verification.read_text(encoding="utf-8").splitlines() if x]
        ledger["verification"] = {"files": len(lines), "ocr": sum("ocr" in x["checked"] for x in lines),
                                  "outcomes": dict(Counter(x["outcome"] for x in lines))}
    ledger["balanced"] = not missing and ledger["published"] + ledger["quarantined"] + ledger["rejected"] == pulled
    if not ledger["balanced"]:
        raise LedgerMismatch(f"{partner.id} run {run_id}: {len(missing)} pulled files have no outcome")
    return ledger


def latest_ledger(root: PartnerRoot) -> dict[str, Any]:
    """The newest ledger of a partner (for the demo and the CLI)."""
    ledgers = sorted(root.ledger.glob("*.json"), key=lambda p: p.stat().st_mtime)
    return read_json(ledgers[-1]) if ledgers else {}
