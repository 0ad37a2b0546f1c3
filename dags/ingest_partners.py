"""DAG factory: one ``ingest_<partner>`` DAG per include/partners/*.yaml.

pull -> classify -> deidentify[batches] -> reports[batches] -> build_tables
-> validate (Great Expectations gate) -> publish (asset) -> cleanup.
Wiring only: every task is a wrapper in operators/partner_tasks.py. Every task
runs in the partner's queue and pool, so a deployment gives each partner its
own workers (docker-compose.yaml).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from operators import partner_tasks as t
from operators.placement import partner_task_defaults
from foundation.partners import load_partners

# Two minutes in production; the demo and tests set it to seconds.
RETRY_DELAY_SECONDS = int(os.environ.get("STA_RETRY_DELAY_SECONDS", "120"))


def build_dag(partner) -> DAG:  # noqa: ANN001
    with DAG(
        dag_id=partner.dag_id,
        description=f"Ingest {partner.name} ({partner.country}) into its de-identified store",
        schedule=partner.schedule,
        start_date=pendulum.datetime(2026, 1, 1, tz=partner.timezone),  # cron read in the partner's zone
        catchup=False,
        max_active_runs=1,
        tags=["ingest", f"region:{partner.region}", f"partner:{partner.id}"],
        default_args={
            "owner": partner.owner,
            "retries": partner.retries,
            "retry_delay": timedelta(seconds=RETRY_DELAY_SECONDS),
            **partner_task_defaults(partner),
        },
        doc_md=__doc__,
    ) as dag:
        pid = partner.id
        classified = t.classify(pid, t.pull(pid))
        dicom_batches = t.batches.override(task_id="dicom_batches")(classified, "dicom")
        report_batches = t.batches.override(task_id="report_batches")(classified, "report")
        slots = partner.execution.concurrency  # sized to the partner's workers
        dicom = t.deidentify.override(max_active_tis_per_dagrun=slots).partial(partner_id=pid).expand(
            batch=dicom_batches)
        joined = t.dicom_done()
        dicom >> joined
        texts = t.reports.override(max_active_tis_per_dagrun=slots).partial(partner_id=pid).expand(
            batch=report_batches)
        joined >> texts
        tables = t.build_tables(pid)
        [joined, texts] >> tables
        published = t.publish_task(partner.region, pid)(pid)
        tables >> t.validate(pid) >> published >> t.cleanup(pid)
    return dag


for _partner in load_partners():
    globals()[_partner.dag_id] = build_dag(_partner)
