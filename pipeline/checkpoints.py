"""The data each stage boundary hands over, checked by Great Expectations (expectations/boundaries.py).

``check(ctx, boundary)`` builds the boundary's table from the run folder
(never a raw path: the landing manifest names files by landing id), runs its
checkpoint, writes the result beside the run and the run's Data Docs under
``<partner>/reports/<run>/`` (an ``index.html`` linking every boundary's GX
page), and raises :class:`~expectations.boundaries.CheckpointFailed` when the
data broke its suite: the stage that called it stops, so the next one never
runs and nothing is published.
"""

from __future__ import annotations

import html
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.context import RunContext, read_json, write_json


def landing_manifest(ctx: RunContext) -> pa.Table:
    from foundation.landing import landing_id

    fetched = read_json(ctx.run.pull_report).get("fetched", []) if ctx.run.pull_report.exists() else []
    return pa.table({
        "id": [landing_id(f["landing_relpath"]) for f in fetched],
        "size": pa.array([f.get("size") for f in fetched], pa.int64()),
        "sha256": pa.array([f.get("sha256") for f in fetched], pa.string()),
        "carried_over": pa.array([bool(f.get("carried_over")) for f in fetched], pa.bool_()),
    })


def _rows(ctx: RunContext, kind: str) -> pa.Table:
    files = ctx.run.rows_files(kind)
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default") if files else pa.table({})


def labels_table(ctx: RunContext) -> pa.Table:
    path = ctx.run.table("labels")
    return pq.read_table(path) if path.exists() else pa.table({})


BUILDERS = {
    "landing": landing_manifest,
    "deid_metadata": lambda ctx: _rows(ctx, "dicom"),
    "report_text": lambda ctx: _rows(ctx, "report"),
    "labels": labels_table,
}


def check(ctx: RunContext, boundary: str) -> dict[str, Any]:
    """Run one boundary's checkpoint on this run's data; raise CheckpointFailed when it fails."""
    from expectations.boundaries import CheckpointFailed, run_checkpoint

    reports = ctx.root.run_reports(ctx.run_id)
    result = run_checkpoint(boundary, BUILDERS[boundary](ctx), run_id=ctx.run_id, docs_dir=reports / "gx")
    write_json(ctx.run.checkpoints / f"{boundary}.json", result.to_dict())
    _write_index(ctx, boundary, result.to_dict())
    if not result.success:
        raise CheckpointFailed(result)
    return {"boundary": boundary, "rows": result.rows, "success": True}


def _write_index(ctx: RunContext, boundary: str, result: dict[str, Any]) -> None:
    """``reports/<run>/index.html``: every boundary of the run, its verdict and its GX page."""
    reports = ctx.root.run_reports(ctx.run_id)
    summary_file = reports / "checkpoints.json"
    summary = read_json(summary_file) if summary_file.exists() else {}
    pages = sorted((reports / "gx" / "validations" / f"sta.boundary.{boundary}").rglob("*.html"),
                   key=lambda p: p.stat().st_mtime) if (reports / "gx").exists() else []
    result = {**result, "page": pages[-1].relative_to(reports).as_posix() if pages else None}
    result.pop("docs", None)
    summary[boundary] = result
    write_json(summary_file, summary)
    def link(r: dict[str, Any]) -> str:
        return '<a href="%s">Data Docs</a>' % html.escape(r["page"]) if r.get("page") else ""

    rows = "".join(
        "<tr><td>%s</td><td>%s</td><td>%d</td><td>%s</td><td>%s</td></tr>"
        % (html.escape(b), "passed" if r["success"] else "FAILED", r["rows"], html.escape("; ".join(r["failures"])),
           link(r))
        for b, r in summary.items())
    (reports / "index.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>Checkpoints</title>"
        "<h1>%s run %s: Great Expectations checkpoints</h1>"
        "<table border=1 cellpadding=4><tr><th>boundary</th><th>verdict</th><th>rows</th><th>failures</th>"
        "<th>details</th></tr>%s</table><p><a href='gx/index.html'>GX Data Docs site</a>"
        " &middot; <a href='review/review.html'>review sheet</a> (when the run had a review)</p>"
        % (html.escape(ctx.partner.id), html.escape(ctx.run_id), rows),
        encoding="utf-8")
