"""Stage 2: sort landed files into DICOM and report batches; quarantine the rest."""

from __future__ import annotations

from typing import Any

from pipeline.context import RunContext, fetched, record_outcomes, timed, write_json
from transforms.classify import Kind, classify


@timed
def run(ctx: RunContext) -> dict[str, Any]:
    """Write one manifest per batch (``partner.batch_size`` files) and return the batch ids."""
    from pipeline.checkpoints import check

    work = ctx.work()
    check(ctx, "landing")  # the pull's manifest (pull -> classify boundary)
    groups: dict[str, list[str]] = {"dicom": [], "report": []}
    outcomes = []
    for rel in sorted(fetched(work)):
        src = ctx.landing(rel)
        kind = classify(src) if src.exists() else Kind.OTHER
        if kind in (Kind.DICOM, Kind.REPORT):
            groups[kind.value].append(rel)
            continue
        code = "empty_file" if kind == Kind.EMPTY else ("missing_in_landing" if not src.exists() else "unsupported_type")
        ctx.quarantine_file(src, rel, code, "classify")
        outcomes.append({"relpath": rel, "status": "quarantined", "reason": code, "kind": "other"})
    record_outcomes(work, "classify", outcomes)
    size = ctx.partner.batch_size
    batches: dict[str, list[int]] = {}
    for kind, files in groups.items():
        ids = []
        for i in range(0, len(files), size):
            bid = i // size
            write_json(work.batch(kind, bid), files[i : i + size])
            ids.append(bid)
        batches[kind] = ids
    return {
        "dicom": batches["dicom"],
        "report": batches["report"],
        "dicom_files": len(groups["dicom"]),
        "report_files": len(groups["report"]),
        "quarantined": len(outcomes),
    }
