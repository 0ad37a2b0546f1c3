"""DAG factory: one ``ingest_<partner>`` DAG per include/partners/*.yaml.

pull -> classify -> deidentify[batches] -> dicom_done -> reports[batches] -> verify
-> build_tables -> validate -> review (prepare, approve: HITL, apply) -> publish (asset) -> cleanup;
sweep_identity after verify whatever happened. Great Expectations checkpoints at
every boundary: classify (landing manifest), dicom_done (de-identified metadata),
build_tables (report text), validate (labels, tables).
Wiring only: every task is a wrapper in operators/partner_tasks.py. Every task
runs in the partner's queue and pool, so a deployment gives each partner its
own workers (docker-compose.yaml).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Param

from operators import label_tasks as lt
from operators import partner_tasks as t
from operators.placement import partner_task_defaults
from operators.review import review_group
from foundation.partners import load_partners_checked

# Retries are for accidents (a dropped connection, a full disk freed later): 30 s, then
# doubling. Misconfigurations (bad YAML, missing connection) fail at once, not retried.
# The demo and tests set seconds.
RETRY_DELAY_SECONDS = int(os.environ.get("STA_RETRY_DELAY_SECONDS", "30"))

# The Trigger form of an ad-hoc run: passed to the pull (transforms.pull.PullOptions).
PARAMS = {
    "full_resync": Param(False, type="boolean", title="Re-pull everything",
                         description="Fetch every file again, even unchanged ones (e.g. after a profile fix)."),
    "subfolder": Param(None, type=["null", "string"], title="Only this sub-folder",
                       description="A folder of the source, relative to its root (e.g. 2026/03)."),
    "since": Param(None, type=["null", "string"], format="date-time", title="Only files modified since",
                   description="ISO date/time; older files are left for a scheduled run."),
    "dry_run": Param(False, type="boolean", title="Dry run",
                     description="List and decide only: count what would be fetched; fetch and publish nothing."),
}


RUNBOOK = (Path(__file__).resolve().parent.parent / "docs" / "runbook.md").read_text(encoding="utf-8")


def _schedule(partner):  # noqa: ANN001, ANN202
    """Reactive partners run when new files have stopped changing (a watcher in the triggerer); others on their cron."""
    if partner.reactive:
        from sta_reactive import incoming_asset  # plugins/ is on sys.path in every Airflow process

        return [incoming_asset(partner)]
    return partner.schedule


def build_dag(partner) -> DAG:  # noqa: ANN001
    with DAG(
        dag_id=partner.dag_id,
        # The partner by id: its display name is the hospital's, a value its own files carry as PHI (InstitutionName).
        description=f"Ingest partner {partner.id} ({partner.country}) into its de-identified store",
        schedule=_schedule(partner),
        start_date=pendulum.datetime(2026, 1, 1, tz=partner.timezone),  # cron read in the partner's zone
        catchup=False,
        max_active_runs=1,
        tags=["ingest", f"region:{partner.region}", f"partner:{partner.id}"],
        default_args={
            "owner": partner.owner,
            "retries": partner.retries,
            "retry_delay": timedelta(seconds=RETRY_DELAY_SECONDS),
            "retry_exponential_backoff": 2.0,
            "max_retry_delay": timedelta(minutes=10),
            **partner_task_defaults(partner),
        },
        params=PARAMS,
        doc_md=RUNBOOK,
    ) as dag:
        pid = partner.id
        classified = t.classify(pid, t.pull(pid))
        dicom_batches = t.batches.override(task_id="dicom_batches")(classified, "dicom")
        report_batches = t.batches.override(task_id="report_batches")(classified, "report")
        slots = partner.execution.concurrency  # sized to the partner's workers
        dicom = t.deidentify.override(max_active_tis_per_dagrun=slots, doc_md=t.deidentify.function.__doc__).partial(partner_id=pid).expand(
            batch=dicom_batches)
        joined = t.dicom_done(pid)  # + GX checkpoint: de-identified metadata
        dicom >> joined
        texts = t.reports.override(max_active_tis_per_dagrun=slots, doc_md=t.reports.function.__doc__).partial(partner_id=pid).expand(
            batch=report_batches)
        joined >> texts
        checked = t.verify_batch.override(max_active_tis_per_dagrun=slots, doc_md=t.verify_batch.function.__doc__).partial(partner_id=pid).expand(
            batch=dicom_batches)  # residual PHI in each batch's DICOM (bytes, pixels by OCR sample)
        joined >> checked
        verified = t.verify(pid)  # reports, hits quarantined, leak ledger, identity maps deleted
        [checked, texts] >> verified
        verified >> t.sweep_identity(pid)  # all_done: also when a stage before it failed
        tables = t.build_tables(pid)  # + GX checkpoint: report text
        verified >> tables
        validated = t.validate(pid)  # GX: labels and the tables before publish
        published = t.publish_task(partner.region, pid)(pid)
        labelled = lt.labelling(pid, tables)  # route -> label_cluster[cluster] -> merge_labels (issue 13)
        labelled >> validated >> review_group(partner, t.review_prepare, t.review_apply) >> published >> t.cleanup(pid)
    return dag


for _partner in load_partners_checked()[0]:  # a bad partner file: see partner_config_errors.py
    globals()[_partner.dag_id] = build_dag(_partner)
