"""The partner ingestion pipeline, stage by stage, with no Airflow in it.

Each ``stage_*`` function is what one task of ``ingest_<partner>`` runs (the
operators are one-line wrappers) and can be called from a shell for
debugging. Stages talk through files in the run's work folder inside the
partner's root, never through large XComs: a batch is a manifest file, a
result is a Parquet file. Identity maps (raw identifiers needed to link and
scrub reports) live in ``work/<run>/identity`` and are deleted with the run.

Accounting: every pulled file ends as exactly one outcome line (published,
quarantined or rejected) and the ledger refuses to publish if they don't add up.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sta.config import PartnerConfig, PartnerRoot, get_partner, safe_run_id
from transforms.classify import Kind, classify
from transforms.quarantine import Reason, quarantine_file

OUTCOME_DIR = "outcomes"
PULL_REPORT = "pull_report.json"  # written by transforms.pull.pull_partner into the run's work folder


class LedgerMismatch(RuntimeError):
    """Published + quarantined + rejected != pulled: something was lost; never publish."""


class GateFailed(RuntimeError):
    """The Great Expectations gate refused this run's tables."""


# -- helpers -------------------------------------------------------------------
def _ctx(partner_id: str) -> tuple[PartnerConfig, PartnerRoot]:
    partner = get_partner(partner_id)
    return partner, partner.root()


def _work(root: PartnerRoot, run_id: str) -> Path:
    work = root.work(run_id)
    work.mkdir(parents=True, exist_ok=True)
    root.ensure_inside(work)
    return work


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _record(work: Path, name: str, outcomes: list[dict[str, Any]]) -> None:
    path = work / OUTCOME_DIR / f"{name}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for o in outcomes:
            fh.write(json.dumps(o) + "\n")


def _timed(fn):  # noqa: ANN001, ANN202
    def wrapper(*args: Any, **kwargs: Any) -> dict[str, Any]:
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        out["seconds"] = round(time.perf_counter() - t0, 3)
        return out

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


# -- 1. pull ---------------------------------------------------------------------
@_timed
def stage_pull(partner_id: str, run_id: str, connections: Any = None) -> dict[str, Any]:
    """Fetch new/changed files from the partner's source into its landing area."""
    from transforms.pull import pull_partner

    partner, root = _ctx(partner_id)
    work = _work(root, run_id)
    data = pull_partner(partner, root, run_id, connections).to_dict()
    rejected = [
        {"relpath": f"source:{s['remote_path']}", "status": "rejected", "reason": s["reason"], "kind": "pull"}
        for s in data.get("skipped", [])
        if s.get("reason") != "unchanged"
    ] + [
        {"relpath": f"source:{f['remote_path']}", "status": "rejected", "reason": f["reason"], "kind": "pull"}
        for f in data.get("failed", [])
    ]
    _record(work, "pull", rejected)
    return {"fetched": len(data.get("fetched", [])), "rejected": len(rejected), "failed": len(data.get("failed", []))}


def _fetched(work: Path) -> list[str]:
    """Landing paths of the files this run pulled (empty when the pull never ran)."""
    path = work / PULL_REPORT
    return [f["landing_relpath"] for f in _read_json(path).get("fetched", [])] if path.exists() else []


# -- 2. classify -------------------------------------------------------------------
@_timed
def stage_classify(partner_id: str, run_id: str) -> dict[str, Any]:
    """Sort landed files into DICOM and report batches; quarantine the rest."""
    partner, root = _ctx(partner_id)
    work = _work(root, run_id)
    fetched = _fetched(work)
    groups: dict[str, list[str]] = {"dicom": [], "report": []}
    outcomes = []
    for rel in sorted(fetched):
        src = root.ensure_inside(root.landing / rel)
        kind = classify(src) if src.exists() else Kind.OTHER
        if kind in (Kind.DICOM, Kind.REPORT):
            groups[kind.value].append(rel)
            continue
        code = "empty_file" if kind == Kind.EMPTY else ("missing_in_landing" if not src.exists() else "unsupported_type")
        quarantine_file(src, root.quarantine / safe_run_id(run_id), rel, Reason(code, "classify", "", run_id))
        outcomes.append({"relpath": rel, "status": "quarantined", "reason": code, "kind": "other"})
    _record(work, "classify", outcomes)
    size = partner.batch_size
    batches: dict[str, list[int]] = {}
    for kind, files in groups.items():
        ids = []
        for i in range(0, len(files), size):
            bid = i // size
            _write_json(work / "batches" / f"{kind}-{bid:05d}.json", files[i : i + size])
            ids.append(bid)
        batches[kind] = ids
    return {
        "dicom": batches["dicom"],
        "report": batches["report"],
        "dicom_files": len(groups["dicom"]),
        "report_files": len(groups["report"]),
        "quarantined": len(outcomes),
    }


# -- 3. de-identify DICOM --------------------------------------------------------------
@_timed
def stage_deidentify(partner_id: str, run_id: str, batch: int) -> dict[str, Any]:
    """De-identify one batch of DICOM files into the run's staging area."""
    from anonymization.batch import DeidSettings, build_deidentifier, deidentify_one

    partner, root = _ctx(partner_id)
    work = _work(root, run_id)
    files = _read_json(work / "batches" / f"dicom-{batch:05d}.json")
    deid = build_deidentifier(
        DeidSettings(partner.profile, partner.profile_overrides, partner.id, partner.identity.national_id_issuers,
                     languages=tuple(partner.report_languages))
    )
    staged = work / "staged_dicom"
    rows: list[dict[str, Any]] = []
    identities: dict[str, dict[str, Any]] = {}
    outcomes = []
    for rel in files:
        src = root.ensure_inside(root.landing / rel)
        o = deidentify_one(deid, src, rel, staged, root.quarantine / safe_run_id(run_id), keep_relpath=False, run_id=run_id)
        outcomes.append({"relpath": rel, "status": o.status, "reason": o.reason, "kind": "dicom"})
        if o.result is None:
            continue
        r = o.result
        ident = r.identity
        rows.append(
            {
                "sop_uid": r.sop_uid, "series_uid": r.series_uid, "study_uid": r.study_uid,
                "sop_class_uid": r.sop_class_uid, "transfer_syntax": r.transfer_syntax,
                "path": r.output.relative_to(staged).as_posix(), "rows": r.rows, "cols": r.cols,
                "frames": r.frames, "size_bytes": r.size_bytes, "sha256": r.sha256,
                "pixels_modified": r.pixels_modified, "patient_token": r.patient_token,
                "modality": r.modality, "body_part": r.body_part, "study_date_shifted": r.study_date_shifted,
                "study_description": r.study_description, "series_description": r.series_description,
                "series_number": r.series_number, "age": r.age, "sex": r.sex, "birth_year": r.birth_year,
                "manufacturer": r.manufacturer, "manufacturer_model": r.manufacturer_model,
            }
        )
        key = ident.accession or f"study:{r.study_uid}"
        entry = identities.setdefault(
            key,
            {"study_uid": r.study_uid, "patient_token": r.patient_token, "offset_days": ident.offset.days,
             "phi": set()},
        )
        entry["phi"].update(ident.phi.raw)
    for entry in identities.values():
        entry["phi"] = sorted(entry["phi"])
    _record(work, f"dicom-{batch:05d}", outcomes)
    if rows:
        (work / "rows").mkdir(exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), work / "rows" / f"dicom-{batch:05d}.parquet")
    _write_json(work / "identity" / f"dicom-{batch:05d}.json", identities)
    published = sum(o["status"] == "published" for o in outcomes)
    return {"batch": batch, "files": len(files), "published": published, "quarantined": len(files) - published}


# -- 4. reports --------------------------------------------------------------------------
def _load_identities(work: Path) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for p in sorted((work / "identity").glob("dicom-*.json")):
        for key, entry in _read_json(p).items():
            cur = merged.setdefault(key, {**entry, "phi": []})
            cur["phi"] = sorted(set(cur["phi"]) | set(entry["phi"]))
    return merged


@_timed
def stage_reports(partner_id: str, run_id: str, batch: int) -> dict[str, Any]:
    """Extract, link to a study, scrub and verify one batch of diagnosis reports."""
    from anonymization.keys import Keyring
    from anonymization.phi_scan import PhiSet, scan_texts
    from anonymization.text_phi import TextScrubber, link_keys
    from transforms.text_extract import ExtractionError, extract_text

    partner, root = _ctx(partner_id)
    work = _work(root, run_id)
    files = _read_json(work / "batches" / f"report-{batch:05d}.json")
    identities = _load_identities(work)
    links = _load_links(root)
    keyring = Keyring.from_env()
    scrubber = TextScrubber(partner.report_languages)
    hint = partner.report_languages[0] if len(partner.report_languages) == 1 else None
    rows, outcomes = [], []
    qdir = root.quarantine / safe_run_id(run_id)

    def refuse(rel: str, src: Path, code: str, detail: str = "") -> None:
        quarantine_file(src, qdir, rel, Reason(code, "reports", detail, run_id))
        outcomes.append({"relpath": rel, "status": "quarantined", "reason": code, "kind": "report"})

    for rel in files:
        src = root.ensure_inside(root.landing / rel)
        try:
            extracted = extract_text(src, hint)
        except ExtractionError as exc:
            refuse(rel, src, exc.reason_code, str(exc)[:200])
            continue
        except Exception as exc:  # noqa: BLE001 - fail closed
            refuse(rel, src, "extract_error", f"{type(exc).__name__}")
            continue
        try:
            keys = link_keys(extracted.text)
            accession = str(keys.get("accession_number") or keys.get("accession") or "").strip()
            ident = identities.get(accession) if accession else None
            link = links.get(keyring.content_id(accession.encode())) if accession and ident is None else None
            if ident is None and link is None:
                refuse(rel, src, "report_unlinked", "no study with this report's accession number")
                continue
            study_uid = (ident or link)["study_uid"]
            token = (ident or link)["patient_token"]
            offset_days = ident["offset_days"] if ident else keyring.time_offset(token).days
            known = list(ident["phi"]) if ident else []
            for k, v in keys.items():
                if k != "study_date" and v:
                    known.extend(str(x) for x in (v if isinstance(v, list) else [v]))
            result = scrubber.scrub(extracted.text, extracted.language, known_phi=known, date_shift_days=offset_days)
            phi = PhiSet()
            for value in known:
                (phi.add_name if "^" in value else phi.add_text)(value)
            if result.residual or scan_texts(phi, [("text", result.text)]):
                refuse(rel, src, "residual_phi", "an original identifying value survived scrubbing")
                continue
        except Exception as exc:  # noqa: BLE001
            refuse(rel, src, "scrub_error", f"{type(exc).__name__}")
            continue
        rows.append(
            {
                "report_id": keyring.content_id(src.read_bytes()), "study_uid": study_uid,
                "patient_token": token, "partner_id": partner.id, "language": extracted.language,
                "source_format": extracted.source_format, "pages": extracted.pages,
                "ocr_pages": len(extracted.ocr_pages), "text_scrubbed": result.text,
            }
        )
        outcomes.append({"relpath": rel, "status": "published", "reason": None, "kind": "report"})
    _record(work, f"report-{batch:05d}", outcomes)
    if rows:
        (work / "rows").mkdir(exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), work / "rows" / f"report-{batch:05d}.parquet")
    published = sum(o["status"] == "published" for o in outcomes)
    return {"batch": batch, "files": len(files), "published": published, "quarantined": len(files) - published}


def _load_links(root: PartnerRoot) -> dict[str, dict[str, str]]:
    """Studies of earlier runs by keyed accession, for reports that arrive after their images."""
    path = root.state / "study_links.parquet"
    if not path.exists():
        return {}
    return {r["accession_key"]: r for r in pq.read_table(path).to_pylist()}


# -- 5. tables ---------------------------------------------------------------------------
@_timed
def stage_build_tables(partner_id: str, run_id: str) -> dict[str, Any]:
    """Assemble the run's patients/studies/series/instances/reports/labels tables."""
    from transforms.tables import build_tables

    partner, root = _ctx(partner_id)
    work = _work(root, run_id)
    tables = build_tables(partner, work)
    out = work / "tables"
    out.mkdir(exist_ok=True)
    for name, table in tables.items():
        pq.write_table(table, out / f"{name}.parquet")
    return {name: t.num_rows for name, t in tables.items()}


# -- 6. gate ------------------------------------------------------------------------------
@_timed
def stage_validate(partner_id: str, run_id: str) -> dict[str, Any]:
    """The Great Expectations checkpoint: nothing is published unless it passes."""
    from anonymization.profiles import load_profile
    from expectations.gate import validate_parquet_dir

    partner, root = _ctx(partner_id)
    work = _work(root, run_id)
    cap = load_profile(partner.profile, partner.profile_overrides).age_cap
    # published_dir: reports of this run may land on studies published by earlier runs
    result = validate_parquet_dir(work / "tables", partner_id=partner.id, region=partner.region, run_id=run_id,
                                  published_dir=root.parquet, max_age=cap)
    _write_json(work / "gate.json", result.to_dict())
    if not result.success:
        raise GateFailed(f"{partner.id}: validation failed: " + "; ".join(result.failures[:10]))
    return {"success": True, "failures": 0}


# -- 7. publish -----------------------------------------------------------------------------
@_timed
def stage_publish(partner_id: str, run_id: str) -> dict[str, Any]:
    """Move staged DICOM and merge tables into the partner's published store; write the ledger."""
    from transforms.parquet_store import merge_table
    from transforms.schema import PRIMARY_KEYS

    partner, root = _ctx(partner_id)
    work = _work(root, run_id)
    ledger = build_ledger(partner, root, run_id)  # refuses before anything moves
    staged = work / "staged_dicom"
    moved = 0
    if staged.exists():
        for dirpath, _dirs, names in os.walk(staged):
            for name in names:
                src = Path(dirpath) / name
                dst = root.dicom / src.relative_to(staged)
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
                moved += 1
    thumbs = work / "thumbnails"
    if thumbs.exists():
        for src in thumbs.iterdir():
            dst = root.path / "thumbnails" / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
    counts = {}
    for table_file in sorted((work / "tables").glob("*.parquet")):
        name = table_file.stem
        counts[name] = merge_table(root.parquet / f"{name}.parquet", pq.read_table(table_file), PRIMARY_KEYS[name])
    links = work / "tables_links.parquet"
    if links.exists():
        merge_table(root.state / "study_links.parquet", pq.read_table(links), ("accession_key",))
    ledger["published_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    ledger["tables"] = counts
    _write_json(root.ledger / f"{safe_run_id(run_id)}.json", ledger)
    return {"moved_dicom": moved, "tables": counts, "ledger": str(root.ledger / f"{safe_run_id(run_id)}.json"),
            "parquet": str(root.parquet), **{k: ledger[k] for k in ("pulled", "published", "quarantined", "rejected")}}


def build_ledger(partner: PartnerConfig, root: PartnerRoot, run_id: str) -> dict[str, Any]:
    work = root.work(run_id)
    outcomes: dict[str, dict[str, Any]] = {}
    for path in sorted((work / OUTCOME_DIR).glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            o = json.loads(line)
            outcomes[o["relpath"]] = o
    fetched = set(_fetched(work))
    pulled = len(fetched) + sum(1 for o in outcomes.values() if o.get("kind") == "pull")
    missing = sorted(fetched - set(outcomes))
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
        "files": sorted(outcomes.values(), key=lambda o: o["relpath"] or ""),
    }
    ledger["balanced"] = not missing and ledger["published"] + ledger["quarantined"] + ledger["rejected"] == pulled
    if not ledger["balanced"]:
        raise LedgerMismatch(f"{partner.id} run {run_id}: {len(missing)} pulled files have no outcome: {missing[:5]}")
    return ledger


# -- 8. cleanup ---------------------------------------------------------------------------------
@_timed
def stage_cleanup(partner_id: str, run_id: str) -> dict[str, Any]:
    """Delete the landing copies and the run's work folder (identity maps included)."""
    from transforms.pull import cleanup_landing

    partner, root = _ctx(partner_id)
    work = root.work(run_id)
    deleted = cleanup_landing(root, _fetched(work))
    shutil.rmtree(work, ignore_errors=True)
    return {"landing": deleted, "work_removed": not work.exists()}


def ledger_summary(partner_id: str) -> dict[str, Any]:
    """The newest ledger of a partner (for the demo and the CLI)."""
    partner, root = _ctx(partner_id)
    ledgers = sorted(root.ledger.glob("*.json"), key=lambda p: p.stat().st_mtime)
    return _read_json(ledgers[-1]) if ledgers else {}
