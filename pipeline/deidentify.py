"""Stage 3: de-identify one batch of DICOM files into the run's staging area.

Writes the batch's rows (``foundation.schema.DICOM_ROW``) and its identity
map: per accession (or study), the raw identifying values and the date
offset, which the reports stage needs to link and scrub reports. The identity
map is PHI and stays in the run folder, inside the partner's enclave.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from foundation.schema import DICOM_ROW, dicom_row
from pipeline.context import RunContext, read_json, record_outcomes, timed, write_json


@timed
def run(ctx: RunContext, batch: int) -> dict[str, Any]:
    from anonymization.batch import DeidSettings, build_deidentifier, deidentify_one
    from anonymization.phi_scan import normalise
    from foundation.landing import landing_id

    work = ctx.work()
    partner = ctx.partner
    files = read_json(work.batch("dicom", batch))
    deid = build_deidentifier(
        DeidSettings(partner.profile, partner.profile_overrides, partner.id, partner.identity.national_id_issuers,
                     languages=tuple(partner.report_languages))
    )
    staged = work.staged_dicom
    rows: list[dict[str, Any]] = []
    identities: dict[str, dict[str, Any]] = {}
    outcomes = []
    sources: dict[str, str] = {}
    for rel in files:
        src = ctx.landing(rel)
        # Quarantined under its landing id: the partner's path stays in the raw zone.
        o = deidentify_one(deid, src, landing_id(rel), staged, ctx.quarantine, keep_relpath=False, run_id=ctx.run_id)
        outcomes.append({"relpath": rel, "status": o.status, "reason": o.reason, "kind": "dicom"})
        if o.result is None:
            continue
        r = o.result
        staged_path = r.output.relative_to(staged).as_posix()
        rows.append(dicom_row(r, staged_path))
        sources[staged_path] = rel
        ident = r.identity
        key = ident.accession or f"study:{r.study_uid}"
        entry = identities.setdefault(
            key,
            {"study_uid": r.study_uid, "patient_token": r.patient_token, "offset_days": ident.offset.days,
             "phi": set(), "weak": set()},
        )
        entry["phi"].update(ident.phi.raw)
        # Institution/station names: identifying, but searched only where the de-identifier searches them.
        entry["weak"].update(v for v in ident.phi.raw if normalise(v) in ident.phi.weak)
    for entry in identities.values():
        entry["phi"] = sorted(entry["phi"])
        entry["weak"] = sorted(entry["weak"])
    record_outcomes(work, f"dicom-{batch:05d}", outcomes)
    if rows:
        work.rows.mkdir(exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=DICOM_ROW), work.rows_file("dicom", batch))
    write_json(work.identity_file(batch), identities)
    write_json(work.sources_file("dicom", batch), sources)
    published = sum(o["status"] == "published" for o in outcomes)
    return {"batch": batch, "files": len(files), "published": published, "quarantined": len(files) - published}


def load_identities(ctx: RunContext) -> dict[str, dict[str, Any]]:
    """Every batch's identity map of this run, merged by accession (PHI: raw zone only)."""
    merged: dict[str, dict[str, Any]] = {}
    for p in ctx.run.identity_files():
        for key, entry in read_json(p).items():
            cur = merged.setdefault(key, {**entry, "phi": [], "weak": []})
            cur["phi"] = sorted(set(cur["phi"]) | set(entry["phi"]))
            cur["weak"] = sorted(set(cur["weak"]) | set(entry.get("weak", [])))
    return merged
