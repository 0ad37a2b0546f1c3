"""Stage 5b: labelling. Route each study to its cluster, label and characterize per cluster, merge.

Seed 000, flujo 2-3: after de-identification the studies are mapped into
clusters (modality x body region, include/labelling/clusters/*.yaml) and
each cluster's pipeline runs on its studies. Three steps, three tasks:

- ``route``: infer each study's body region with a confidence (BodyPartExamined,
  protocol, descriptions, report: labelling.regions), pick its cluster, and
  write one work list per cluster (``work/labelling/route-<cluster>.json``);
  returns the clusters that have studies (what the DAG maps over).
- ``label_cluster``: label the reports of one cluster's studies with that
  cluster's concepts and models (``labels-<cluster>.parquet``);
- ``characterize_cluster``: demographics, image attributes and clinical
  context of those studies (``characteristics-<cluster>.parquet``);
- ``merge``: the run's ``labels`` and ``characteristics`` tables, and the
  studies' inferred ``body_region``, written into the run's tables before
  the gate validates them.

Reads only the run folder (tables, DICOM rows, the de-identified staged
files); writes nothing identifying (study UIDs are already keyed).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from foundation.schema import CHARACTERISTICS, LABELS, TABLES
from pipeline.context import RunContext, read_json, timed, write_json

_log = logging.getLogger("sta.run")

# DICOM attributes read from one de-identified file per series (no pixels).
HEADER_TAGS = ("PatientAge", "EthnicGroup", "PixelSpacing", "ImagerPixelSpacing", "SliceThickness",
               "ContrastBolusAgent", "ProtocolName", "MRAcquisitionType", "NumberOfFrames",
               "RequestedProcedureDescription", "PerformedProcedureStepDescription", "BodyPartExamined")


def _dir(ctx: RunContext) -> Path:
    d = ctx.work().path / "labelling"
    d.mkdir(exist_ok=True)
    return d


def _table(ctx: RunContext, name: str) -> list[dict[str, Any]]:
    path = ctx.work().table(name)
    return pq.read_table(path).to_pylist() if path.exists() else []


def _header(path: Path) -> dict[str, Any]:
    """A few attributes of a de-identified file (empty when it cannot be read)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(HEADER_TAGS))
    except Exception:  # noqa: BLE001 - characterization is best effort; the file was already verified
        return {}
    out: dict[str, Any] = {}
    for tag in HEADER_TAGS:
        v = ds.get(tag)
        if v is None or v == "":
            continue
        if tag in ("PixelSpacing", "ImagerPixelSpacing"):
            try:
                out[tag] = float(v[0])
            except (TypeError, ValueError, IndexError):
                continue
        elif tag in ("SliceThickness",):
            try:
                out[tag] = float(v)
            except (TypeError, ValueError):
                continue
        elif tag == "NumberOfFrames":
            try:
                out[tag] = int(v)
            except (TypeError, ValueError):
                continue
        else:
            out[tag] = str(v)
    return out


def _study_facts(ctx: RunContext) -> dict[str, dict[str, Any]]:
    """Per study of this run: modality, descriptions and the representative series' header values."""
    work = ctx.work()
    rows: list[dict[str, Any]] = []
    for f in work.rows_files("dicom"):
        rows.extend(pq.read_table(f).to_pylist())
    by_series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_series[r["series_uid"]].append(r)
    facts: dict[str, dict[str, Any]] = {}
    for s in _table(ctx, "studies"):
        facts[s["study_uid"]] = {"modality": s["modality"], "age_years": s["age_at_study"], "sex": s["sex"],
                                 "study_description": s["study_description"], "series": [], "body_parts": []}
    for uid, members in by_series.items():
        study = members[0]["study_uid"]
        if study not in facts:
            continue
        f = facts[study]
        f["series"].append((len(members), members[0]))
        f["body_parts"].extend(m["body_part"] for m in members if m["body_part"])
    for f in facts.values():
        if not f["series"]:
            continue
        imaging = [s for s in f["series"] if s[1]["modality"] == f["modality"]] or f["series"]
        n, rep = max(imaging, key=lambda t: t[0])
        staged = work.staged_dicom / rep["path"]
        h = _header(staged) if staged.exists() else {}
        f.update(n_slices=n, rows=rep["rows"], cols=rep["cols"], frames=rep["frames"], header=h,
                 series_descriptions=[s[1]["series_description"] for s in f["series"] if s[1]["series_description"]])
        del f["series"]
    for f in facts.values():
        f.pop("series", None)
    return facts


@timed
def route(ctx: RunContext) -> dict[str, Any]:
    """Region and cluster of every study with a report or an image in this run; one work list per cluster."""
    from labelling.clusters import clusters
    from labelling.regions import infer_region

    facts = _study_facts(ctx)
    reports: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in _table(ctx, "reports"):
        reports[r["study_uid"]].append({"report_id": r["report_id"], "language": r["language"]})
    texts = {r["report_id"]: r["text_scrubbed"] or "" for r in _table(ctx, "reports")}
    work_lists: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for uid in sorted(set(facts) | set(reports)):
        f = facts.get(uid, {})
        h = f.get("header", {})
        report_text = "\n\n".join(texts[r["report_id"]] for r in reports.get(uid, []))
        parts = Counter(f.get("body_parts") or [])
        protocol = " ".join(x for x in (h.get("ProtocolName"), h.get("RequestedProcedureDescription"),
                                          h.get("PerformedProcedureStepDescription")) if x) or None
        guess = infer_region(f.get("modality"), parts.most_common(1)[0][0] if parts else None, protocol,
                             f.get("study_description"), f.get("series_descriptions") or [], report_text or None)
        title = "\n".join(report_text.strip().splitlines()[:2]) if report_text else None
        cluster = clusters().route(f.get("modality"), guess.region, f.get("study_description"), protocol,
                                   " ".join(f.get("series_descriptions") or []), title)
        work_lists[cluster.id].append({
            "study_uid": uid, "in_run": uid in facts, "region": guess.region, "region_confidence": guess.confidence,
            "region_source": guess.source, "reports": reports.get(uid, []), "facts": {
                k: f.get(k) for k in ("modality", "age_years", "sex", "study_description", "rows", "cols", "frames",
                                      "n_slices", "series_descriptions")} | {"header": h, "protocol": protocol},
        })
    d = _dir(ctx)
    for old in d.glob("route-*.json"):
        old.unlink()
    for cid, items in work_lists.items():
        write_json(d / f"route-{cid}.json", items)
    counts = {cid: len(items) for cid, items in sorted(work_lists.items())}
    return {"clusters": sorted(counts), "studies": counts}


def _items(ctx: RunContext, cluster_id: str) -> list[dict[str, Any]]:
    path = _dir(ctx) / f"route-{cluster_id}.json"
    return read_json(path) if path.exists() else []


@timed
def label_cluster(ctx: RunContext, cluster_id: str) -> dict[str, Any]:
    """Label the reports of one cluster's studies (its concepts, its models); one row per study and concept."""
    from labelling.clusters import clusters
    from labelling.labeller import RANK, default_labeller, table_row

    cluster = clusters().get(cluster_id)
    labeller = default_labeller()
    texts = {r["report_id"]: r["text_scrubbed"] or "" for r in _table(ctx, "reports")}
    rows: list[dict[str, Any]] = []
    certainty_counts: Counter[str] = Counter()
    errors = 0
    for item in _items(ctx, cluster_id):
        best: dict[str, tuple[Any, str]] = {}  # concept -> (label, report_id); several reports: the surest wins
        for rep in item["reports"]:
            try:
                result = labeller.label(texts.get(rep["report_id"], ""), rep["language"] if rep["language"] in
                                        ("es", "pt", "en") else None, cluster=cluster)
            except Exception as exc:  # noqa: BLE001 - one unreadable report must not hold back the partner's run
                errors += 1
                _log.warning("labelling failed on one report of cluster %s: %s", cluster_id, type(exc).__name__)
                continue
            for lab in result.labels:
                old = best.get(lab.concept)
                if old is None or (RANK[lab.certainty], -lab.confidence) < (RANK[old[0].certainty], -old[0].confidence):
                    best[lab.concept] = (lab, rep["report_id"])
        for _concept, (lab, report_id) in sorted(best.items()):
            certainty_counts[lab.certainty] += 1
            rows.append(table_row(lab, item["study_uid"], ctx.partner.id, cluster_id, report_id))
    pq.write_table(pa.Table.from_pylist(rows, schema=LABELS), _dir(ctx) / f"labels-{cluster_id}.parquet")
    return {"cluster": cluster_id, "studies": len(_items(ctx, cluster_id)), "labels": len(rows),
            "by_certainty": dict(certainty_counts), "errors": errors}


@timed
def characterize_cluster(ctx: RunContext, cluster_id: str) -> dict[str, Any]:
    """Demographics, image attributes and clinical context of one cluster's studies."""
    from labelling.characterize import Characteristic, StudyFacts, characterize

    texts = {r["report_id"]: r["text_scrubbed"] or "" for r in _table(ctx, "reports")}
    labels_path = _dir(ctx) / f"labels-{cluster_id}.parquet"
    historical: dict[str, list[Any]] = defaultdict(list)
    if labels_path.exists():
        for r in pq.read_table(labels_path).to_pylist():
            if r["certainty"] == "historical":
                historical[r["study_uid"]].append(_LabelView(r))
    rows: list[dict[str, Any]] = []
    for item in _items(ctx, cluster_id):
        f, h = item["facts"], item["facts"].get("header") or {}
        reports = item["reports"]
        facts = StudyFacts(
            modality=f.get("modality"), age_years=f.get("age_years"), patient_age=h.get("PatientAge"),
            sex=f.get("sex"), ethnic_group=h.get("EthnicGroup"), rows=f.get("rows"), cols=f.get("cols"),
            frames=f.get("frames"), pixel_spacing=h.get("PixelSpacing") or h.get("ImagerPixelSpacing"),
            slice_thickness=h.get("SliceThickness"), n_slices=f.get("n_slices"),
            mr_acquisition_type=h.get("MRAcquisitionType"), contrast_agent=h.get("ContrastBolusAgent"),
            descriptions=[x for x in [f.get("study_description"), f.get("protocol"),
                                      *(f.get("series_descriptions") or [])] if x],
            report_text=texts.get(reports[0]["report_id"]) if reports else None,
            report_language=reports[0]["language"] if reports else None,
        )
        found = characterize(facts, historical.get(item["study_uid"], []))
        if item["region"] != "unknown":
            found.append(Characteristic("body_region", item["region"], item["region_source"],
                                        float(item["region_confidence"])))
        found.append(Characteristic("cluster", cluster_id, "rules", 1.0))
        seen = set()
        for c in found:
            if (c.field, c.value) in seen:
                continue
            seen.add((c.field, c.value))
            rows.append({"study_uid": item["study_uid"], "partner_id": ctx.partner.id} | c.as_row())
    pq.write_table(pa.Table.from_pylist(rows, schema=CHARACTERISTICS),
                   _dir(ctx) / f"characteristics-{cluster_id}.parquet")
    return {"cluster": cluster_id, "characteristics": len(rows)}


class _LabelView:
    """A labels-table row seen as a labeller label (concept, certainty, confidence, evidence)."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.concept, self.certainty, self.confidence = row["concept"], row["certainty"], row["confidence"]
        start, end = row["evidence_start"], row["evidence_end"]
        self.evidence = [type("E", (), {"start": start, "end": end})()] if start is not None else []


@timed
def merge(ctx: RunContext) -> dict[str, Any]:
    """The run's labels and characteristics tables, and each study's inferred body region."""
    work = ctx.work()
    d = _dir(ctx)
    out: dict[str, Any] = {}
    for name, schema in (("labels", LABELS), ("characteristics", CHARACTERISTICS)):
        parts = [pq.read_table(p) for p in sorted(d.glob(f"{name}-*.parquet"))]
        table = pa.concat_tables(parts) if parts else pa.Table.from_batches([], schema=schema)
        work.tables.mkdir(exist_ok=True)
        pq.write_table(table.cast(schema), work.table(name))
        out[name] = table.num_rows
    regions: dict[str, str] = {}
    for p in d.glob("route-*.json"):
        for item in read_json(p):
            if item["in_run"]:
                regions[item["study_uid"]] = item["region"]
    studies_path = work.table("studies")
    if studies_path.exists():
        studies = pq.read_table(studies_path).to_pylist()
        for s in studies:
            s["body_region"] = regions.get(s["study_uid"], s.get("body_region") or "unknown")
        pq.write_table(pa.Table.from_pylist(studies, schema=TABLES["studies"]), studies_path)
    out["clusters"] = {p.stem[len("labels-"):]: pq.read_metadata(p).num_rows for p in sorted(d.glob("labels-*.parquet"))}
    return out
