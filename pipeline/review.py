"""Stage: researchers' review (seed flujo 2): what the partner's policy selects, and the decision.

``prepare`` draws the sample the partner's ``review:`` policy asks for
(:class:`foundation.partners.ReviewPolicy`): a share of studies, every study
of a modality/manufacturer/protocol the partner never published, every file
whose pixels were redacted, every report read by OCR with low confidence.
For each selected study it renders what a researcher needs to judge it, with
nothing raw: the de-identified image (redaction boxes outlined in red, found
by comparing with the original in the raw zone, never showing it) and the
scrubbed report text. The review sheet goes to ``reports/<run>/review/`` and
into the Airflow task's body (Required Actions).

``apply`` takes the researcher's answer: Approve publishes; Reject (or no
answer before the timeout) quarantines every file of the run with the
reason ``review_rejected``, the reviewer's reason and name, and removes the
run's outputs so that publish commits only the ledger.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipeline.context import RunContext, fetched, read_json, record_outcomes, timed, write_json

THUMB = 256  # pixels, longest side
MAX_TEXT = 1500  # characters of each report shown
REASON = "review_rejected"


@timed
def prepare(ctx: RunContext) -> dict[str, Any]:
    """Select what must be reviewed; write the sheet; return whether a review is required (and its body)."""
    policy = ctx.partner.review
    work = ctx.work()
    items = select(ctx) if policy.enabled else []
    shown = items[: policy.max_items]
    sheet_dir = ctx.root.run_reports(ctx.run_id) / "review"
    body = render(ctx, shown, sheet_dir, total=len(items)) if shown else ""
    decision = {"required": bool(shown), "studies": len(items), "shown": len(shown),
                "reasons": sorted({r for it in items for r in it["reasons"]})}
    write_json(work.review, decision)
    return {**decision, "body": body}


def select(ctx: RunContext) -> list[dict[str, Any]]:
    """Studies of this run the policy selects, each with why (reasons) and which files to show."""
    policy = ctx.partner.review
    dicom = [r for f in ctx.run.rows_files("dicom") for r in pq.read_table(f).to_pylist()]
    reports = [r for f in ctx.run.rows_files("report") for r in pq.read_table(f).to_pylist()]
    seen = _published_vocabulary(ctx)
    studies: dict[str, dict[str, Any]] = defaultdict(lambda: {"reasons": set(), "files": [], "reports": []})
    for r in dicom:
        s = studies[r["study_uid"]]
        s["modality"] = s.get("modality") or r["modality"]
        if policy.sample_percent and _drawn(r["study_uid"], policy.sample_percent):
            s["reasons"].add("sample")
        if policy.new_modality and r["modality"] and r["modality"] not in seen["modality"]:
            s["reasons"].add(f"new modality {r['modality']}")
        if policy.new_manufacturer and r["manufacturer"] and r["manufacturer"] not in seen["manufacturer"]:
            s["reasons"].add("new manufacturer")
        if policy.new_protocol and r["study_description"] and r["study_description"] not in seen["study_description"]:
            s["reasons"].add("new protocol")
        if policy.redacted_pixels and r["pixels_modified"]:
            s["reasons"].add("pixels redacted")
            s["files"].append(r)
    for rep in reports:
        s = studies[rep["study_uid"]]
        conf = rep.get("ocr_confidence")
        if policy.low_confidence_reports and conf is not None and conf < policy.confidence_threshold:
            s["reasons"].add("low OCR confidence")
        s["reports"].append(rep)
    out = []
    by_study_files: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in dicom:
        by_study_files[r["study_uid"]].append(r)
    for uid, s in sorted(studies.items()):
        if not s["reasons"]:
            continue
        files = s["files"] or _one_per_series(by_study_files.get(uid, []))
        out.append({"study_uid": uid, "modality": s.get("modality"), "reasons": sorted(s["reasons"]),
                    "files": files[:3], "reports": s["reports"][:2]})
    return out


def _drawn(study_uid: str, percent: float) -> bool:
    """A stable draw (the same study is drawn again on a re-run)."""
    return int(hashlib.sha256(study_uid.encode()).hexdigest()[:8], 16) % 10_000 < percent * 100


def _published_vocabulary(ctx: RunContext) -> dict[str, set[str]]:
    from transforms.parquet_store import PartnerTables

    cols = ["modality", "manufacturer", "study_description"]
    tables = PartnerTables(ctx.root.parquet)
    if not tables.has("studies"):
        return {c: set() for c in cols}
    t = tables.read("studies", columns=cols)
    return {c: {v for v in t.column(c).to_pylist() if v} for c in cols}


def _one_per_series(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_series: dict[str, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r["sop_uid"]):
        by_series.setdefault(r["series_uid"], r)
    return list(by_series.values())


# -- what the reviewer sees ---------------------------------------------------------------------------


def render(ctx: RunContext, items: list[dict[str, Any]], sheet_dir: Path, total: int) -> str:
    """Markdown body for the HITL task (images inline) and ``review.html`` beside the PNGs."""
    sheet_dir.mkdir(parents=True, exist_ok=True)
    sources = ctx.run.sources_map("dicom")
    md = [f"**{ctx.partner.id}**: {total} studies selected for review in this run"
          + (f" (first {len(items)} shown)" if total > len(items) else "") + ".",
          "Approve publishes the run; Reject quarantines every file of it (give a reason)."]
    html_parts = [f"<h1>{ctx.partner.id}: review of run {ctx.run_id}</h1>"]
    for n, item in enumerate(items, 1):
        md.append(f"\n### {n}. {item['modality'] or '?'} study `{item['study_uid'][-12:]}`: {', '.join(item['reasons'])}")
        html_parts.append(f"<h2>{n}. {item['modality']} study {item['study_uid']}</h2><p>{', '.join(item['reasons'])}</p>")
        for r in item["files"]:
            png = thumbnail(ctx.run.staged_dicom / r["path"], ctx.landing(sources[r["path"]]) if r["path"] in sources else None)
            if png is None:
                continue
            name = f"{r['sop_uid']}.png"
            (sheet_dir / name).write_bytes(png)
            md.append(f"![{r['modality']} {'redacted' if r['pixels_modified'] else ''}]"
                      f"(data:image/png;base64,{base64.b64encode(png).decode()})")
            html_parts.append(f"<img src='{name}' alt='{r['modality']}'>")
        for rep in item["reports"]:
            text = (rep.get("text_scrubbed") or "")[:MAX_TEXT]
            md.append("```\n" + text.replace("```", "'''") + "\n```")
            html_parts.append(f"<pre>{_escape(text)}</pre>")
    (sheet_dir / "review.html").write_text("<!doctype html><meta charset='utf-8'>" + "".join(html_parts), encoding="utf-8")
    return "\n\n".join(md)


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def thumbnail(staged: Path, original: Path | None) -> bytes | None:
    """The de-identified image, 8-bit, with red boxes where its pixels differ from the original's."""
    import numpy as np
    import pydicom
    from PIL import Image, ImageDraw

    from anonymization.ocr_redact import display_rgb
    from anonymization.text_regions import normalise

    try:
        ds = pydicom.dcmread(staged)
        arr = np.asarray(ds.pixel_array)
    except Exception:  # noqa: BLE001 - no pixels or no decoder: nothing to show
        return None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    frame = arr[0] if frames > 1 else arr
    boxes = _changed_boxes(frame, original, frames) if original is not None and original.exists() else []
    shown, photo = display_rgb(frame, photometric)
    img = Image.fromarray(normalise(shown, photo)).convert("RGB")
    draw = ImageDraw.Draw(img)
    for x0, y0, x1, y1 in boxes:
        draw.rectangle((x0, y0, x1, y1), outline=(255, 0, 0), width=max(1, img.width // 200))
    img.thumbnail((THUMB, THUMB))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _changed_boxes(frame: Any, original: Path, frames: int, cell: int = 8) -> list[tuple[int, int, int, int]]:
    """Bounding boxes of the pixels that differ from the original's (coarse cells, merged by rows)."""
    import numpy as np
    import pydicom

    try:
        orig = np.asarray(pydicom.dcmread(original).pixel_array)
    except Exception:  # noqa: BLE001 - compressed original without a decoder: no boxes
        return []
    orig = orig[0] if frames > 1 else orig
    if orig.shape != frame.shape:
        return []
    diff = orig != frame
    if diff.ndim == 3:
        diff = diff.any(axis=-1)
    if not diff.any():
        return []
    h, w = diff.shape
    gh, gw = (h + cell - 1) // cell, (w + cell - 1) // cell
    padded = np.zeros((gh * cell, gw * cell), bool)
    padded[:h, :w] = diff
    grid = padded.reshape(gh, cell, gw, cell).any(axis=(1, 3))
    boxes: list[tuple[int, int, int, int]] = []
    for gy in range(gh):  # runs of changed cells per grid row, merged with the run above when they overlap
        xs = np.flatnonzero(grid[gy])
        if not len(xs):
            continue
        runs, start = [], xs[0]
        for a, b in zip(xs, xs[1:]):
            if b != a + 1:
                runs.append((start, a))
                start = b
        runs.append((start, xs[-1]))
        for x0, x1 in runs:
            box = (x0 * cell, gy * cell, min(w, (x1 + 1) * cell) - 1, min(h, (gy + 1) * cell) - 1)
            for i, (bx0, by0, bx1, by1) in enumerate(boxes):
                if by1 == box[1] - 1 and bx0 <= box[2] and box[0] <= bx1:
                    boxes[i] = (min(bx0, box[0]), by0, max(bx1, box[2]), box[3])
                    break
            else:
                boxes.append(box)
    return boxes


# -- the decision ----------------------------------------------------------------------------------------


@timed
def apply(ctx: RunContext, answer: dict[str, Any] | None) -> dict[str, Any]:
    """Record the researcher's answer; on Reject (or timeout) quarantine every file of the run."""
    work = ctx.work()
    state = read_json(work.review) if work.review.exists() else {"required": False}
    if not state.get("required"):
        decision = {"decision": "not_required"}
    else:
        answer = answer or {}
        chosen = list(answer.get("chosen_options") or [])
        user = answer.get("responded_by_user") or {}
        reviewer = (user.get("name") or user.get("id")) if isinstance(user, dict) else str(user or "")
        reason = str((answer.get("params_input") or {}).get("reason") or "").strip()
        if not reason and chosen and chosen[0].startswith("Reject"):
            reason = chosen[0].partition(":")[2].strip()
        if chosen == ["Approve"]:
            decision = {"decision": "approved", "reviewer": reviewer or "unknown"}
        else:
            if not reviewer:  # the timeout's default answer, not a person's
                reason = f"no decision within {ctx.partner.review.timeout_hours:g} h"
            decision = {"decision": "rejected", "reviewer": reviewer or "timeout", "reason": reason or "no reason given"}
            decision["quarantined"] = reject(ctx, decision)
    write_json(work.review, {**state, **decision})
    return decision


def reject(ctx: RunContext, decision: dict[str, Any]) -> int:
    """Quarantine every file the run was about to publish; remove its outputs so only the ledger commits."""
    import json

    work = ctx.run
    current: dict[str, dict[str, Any]] = {}
    for path in work.outcome_files():
        for line in path.read_text(encoding="utf-8").splitlines():
            o = json.loads(line)
            current[o["relpath"]] = o
    detail = f"reviewer {decision['reviewer']}: {decision['reason']}"[:200]
    outcomes = []
    for rel in sorted(r for r in fetched(work) if current.get(r, {}).get("status") == "published"):
        ctx.quarantine_file(ctx.landing(rel), rel, REASON, "review", detail)
        outcomes.append({"relpath": rel, "status": "quarantined", "reason": REASON, "kind": current[rel].get("kind")})
    record_outcomes(work, "zz-review", outcomes)  # read last by the ledger: replaces the stages' outcomes
    for folder in (work.staged_dicom, work.thumbnails, work.tables, work.rows):
        shutil.rmtree(folder, ignore_errors=True)
    work.tables_links.unlink(missing_ok=True)
    shutil.rmtree(ctx.root.run_reports(ctx.run_id) / "review", ignore_errors=True)
    return len(outcomes)
