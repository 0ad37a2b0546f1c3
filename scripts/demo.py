"""``make demo``: sample partners -> their Airflow DAGs -> published Parquet -> search.

1. generates two partners' files (``python -m synth``) into the data root's ``incoming/``;
2. runs each partner's ``ingest_<id>`` DAG through Airflow (``dag.test()``),
   printing task progress as Airflow records it;
3. prints, per partner, files pulled / published / quarantined (by reason),
   studies and patients written, where the Parquet is and each stage's time;
4. runs the regions' linking DAGs and a sample search, when present.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _secret_key() -> None:
    """A per-checkout key for the demo, outside the repo (.airflow/ is ignored by git)."""
    if os.environ.get("STA_SECRET_KEY"):
        return
    path = Path(os.environ["AIRFLOW_HOME"]) / "sta_secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    os.environ["STA_SECRET_KEY"] = path.read_text().strip()


def say(msg: str) -> None:
    print(msg, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    from synth.airflow_run import configure_env

    configure_env(str(ROOT))
    _secret_key()
    from foundation.partners import load_partners
    from foundation.paths import data_root

    base = data_root()
    incoming = base / "incoming"
    partners = load_partners()
    t0 = time.perf_counter()
    if not incoming.exists():
        say(f"[1/5] generating sample data: {args.patients} patients, seed {args.seed} -> {incoming}")
        from synth import generate

        summary = generate(incoming, args.patients, args.seed, progress=lambda m: say(f"  {m}"))
        say(f"  {summary.get('dicom_files')} DICOM files, {summary.get('reports')} reports, "
            f"{summary.get('faults')} planted bad files; truth: {summary.get('truth')}")
    else:
        say(f"[1/5] sample data already in {incoming} (make clean-data to regenerate)")

    say("[2/5] preparing Airflow metadata DB (SQLite) ...")
    from synth.airflow_run import approve, ensure_db, run_dag

    ensure_db()
    say(f"[3/5] running partner DAGs through Airflow ({len(partners)} partners)")
    from pipeline.ledger import latest_ledger

    results = []
    for partner in partners:
        say(f"- {partner.dag_id} (queue {partner.queue}, region {partner.region})")
        # A partner whose review policy selects studies waits for a researcher (Required Actions):
        # the demo answers Approve through Airflow's REST API, as a researcher would in the UI.
        run = run_dag(partner.dag_id, progress=say, review=approve if partner.review.enabled else None)
        ledger = latest_ledger(partner.root()) if run.state == "success" else {}
        results.append((partner, run, ledger))
        say(f"  => {run.state} in {run.seconds:.1f}s")

    say("\n=== Partner results ===")
    ok = True
    for partner, run, ledger in results:
        root = partner.root()
        say(f"{partner.id} ({partner.country}) - DAG run {run.state}, {run.seconds:.1f}s")
        if run.state != "success":
            ok = False
            failed = [t.task_id for t in run.tasks if t.state == "failed"]
            say(f"  failed tasks: {failed}; see Airflow logs in {os.environ['AIRFLOW_HOME']}/logs")
            continue
        tables = ledger.get("tables", {})
        say(f"  pulled {ledger.get('pulled')}  published {ledger.get('published')}  "
            f"quarantined {ledger.get('quarantined')}  rejected {ledger.get('rejected')}  "
            f"(balanced: {ledger.get('balanced')})")
        if ledger.get("by_reason"):
            say("  quarantine reasons: " + ", ".join(f"{k}={v}" for k, v in sorted(ledger["by_reason"].items())))
        say(f"  studies {tables.get('studies', 0)}  patients {tables.get('patients', 0)}  series "
            f"{tables.get('series', 0)}  instances {tables.get('instances', 0)}  reports {tables.get('reports', 0)}"
            f"  labels {tables.get('labels', 0)} (rows this run published)")
        ver = ledger.get("verification") or {}
        say(f"  verified {ver.get('files', 0)} outputs ({ver.get('ocr', 0)} OCR'd): "
            + ", ".join(f"{k} {v}" for k, v in sorted((ver.get("outcomes") or {}).items())))
        review = ledger.get("review") or {}
        say(f"  review: {review.get('decision', 'not_required')}"
            + (f" by {review['reviewer']}" if review.get("reviewer") else ""))
        say(f"  checkpoints (Data Docs): {root.run_reports(ledger['run_id']) / 'index.html'}")
        say(f"  parquet:    {root.parquet}")
        say(f"  quarantine: {root.quarantine}")
        say("  stage seconds: " + ", ".join(f"{k} {v}" for k, v in run.stage_seconds().items()))
        try:  # labelling clusters and a few labels with their evidence (issue 13)
            from labelling.summary import published_summary

            for line in published_summary(root.parquet):
                say("  " + line)
        except Exception as exc:  # noqa: BLE001 - the run's figures above stand on their own
            say(f"  labels summary not available: {type(exc).__name__}")

    say("\n[4/5] linking patients across partners and searching")
    try:
        _link_and_search(partners, say)
    except Exception as exc:  # noqa: BLE001 - the partner results above stand on their own
        say(f"  linking/search not available: {type(exc).__name__}: {exc}")
    say("\n[5/5] medication orders (seed 004): history, population check, prescriber review")
    try:
        from synth.medication import demo_summary, demo_workflow

        rx = demo_summary(base / "rx_demo", patients=300, seed=args.seed, say=say)
        demo_workflow(rx["store"], say=say)
    except Exception as exc:  # noqa: BLE001 - the ingest results above stand on their own
        say(f"  medication demo not available: {type(exc).__name__}: {exc}")
        ok = False
    say(f"\nDone in {time.perf_counter() - t0:.0f}s. Airflow UI: `make up` (see README).")
    return 0 if ok else 1


def _link_and_search(partners, say) -> None:  # noqa: ANN001
    from synth.airflow_run import get_dag, run_dag

    regions = sorted({p.region for p in partners})
    for region in regions:
        dag_id = f"link_{region}"
        try:
            get_dag(dag_id)
        except KeyError:
            say(f"  no {dag_id} DAG yet")
            return
        run = run_dag(dag_id)
        say(f"  {dag_id}: {run.state} in {run.seconds:.1f}s")
    from foundation.paths import data_root
    from sta.service.search import StoreSet, StudyFilters, linked_patients, patient_timeline, search_studies

    stores = StoreSet.discover(data_root())
    page = search_studies(stores, StudyFilters(q="nodulo", page_size=3), regions)
    say(f"  search q='nodulo' over regions {regions}: {page['total']} studies; first {len(page['results'])}:")
    for r in page["results"]:
        say(f"    {r.get('study_uid')}  {r.get('modality')} {r.get('body_region')}  {r.get('country')}  "
            f"age {r.get('age')} sex {r.get('sex')}  labels {r.get('labels')}")
    linked = linked_patients(stores, regions, limit=1)
    if linked:
        token = linked[0]["patient_token"]
        timeline = patient_timeline(stores, token, regions)
        studies = timeline.get("studies", [])
        say(f"  patient seen at {', '.join(linked[0]['partners'])}: token {token}, {len(studies)} studies")
        for st in studies:
            say(f"    {st.get('study_date')}  {st.get('partner_id')}  {st.get('modality')}  "
                f"{st.get('study_description')}")
    say("  more: .venv/bin/sta search --help   (the page: make up, then http://127.0.0.1:8000/)")


if __name__ == "__main__":
    sys.exit(main())
