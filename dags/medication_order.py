"""``medication_order``: one run per prescription (seed 004's Step Functions workflow).

Triggered through the REST API (``POST /api/v2/dags/medication_order/dagRuns``
with ``{"conf": {"order_id": ...}}``, which ``POST /api/rx/orders`` does) or
from the UI with an order in the conf. Wiring only: every task is a thin
wrapper in ``operators/medication_tasks.py`` around ``medication.workflow``.

    intake -> validate -+-> reject ----------------------------------------------+
                        +-> history_check -> population_check -+-> record -+-> notify_patient ----+-> end
                                                               |           +-> health_plan_check -+
                                                               +-> notify_prescriber -> prescriber_review
                                                                   -> apply_review -+-> record
                                                                                    +-> hold ----> end

``prescriber_review`` waits for the prescriber (Required Actions or the REST
API): Confirm, Modify (new dose/unit/frequency/duration, re-checked) or Hold;
with no answer by ``STA_RX_REVIEW_HOURS`` (default 24) the default, Hold,
applies: the order is held, not sent. The prescriber's address comes from the
order, ``include/medication/prescribers.csv``, or ``STA_RX_SAFETY_EMAIL``.
Connections: ``smtp_default`` (e-mail), ``health_plan_api`` (http: the plan's
base URL; password, if any, sent as a bearer token).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import DAG, Param, task

from operators import medication_tasks as T

REVIEW_OPTIONS = ["Confirm", "Modify", "Hold"]

with DAG(
    dag_id="medication_order",
    description="Check one medication order against the patient's history and the population; ask the "
                "prescriber on anomaly; record; notify the patient and check the health plan",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=16,
    tags=["medication", "seed-004"],
    # a failed step is retried once (an SMTP or plan API hiccup); a bad order fails at once (see operators)
    default_args={"owner": "clinical-safety", "retries": 1,
                  "retry_delay": timedelta(seconds=float(os.environ.get("STA_RETRY_DELAY_SECONDS", "60")))},
    doc_md=__doc__,
) as dag:
    order_id = task(task_id="intake")(T.intake)()
    validate = task.branch(task_id="validate")(T.validate)(order_id)
    reject = task(task_id="reject")(T.reject)(order_id)
    history = task(task_id="history_check")(T.history_check)(order_id)
    population = task.branch(task_id="population_check")(T.population_check)(order_id)
    notice = task(task_id="notify_prescriber")(T.notify_prescriber)(order_id)
    review = HITLOperator(
        task_id="prescriber_review",
        subject="Review medication order {{ ti.xcom_pull(task_ids='intake') }}",
        body="{{ ti.xcom_pull(task_ids='notify_prescriber')['summary'] }}",
        options=REVIEW_OPTIONS,
        defaults=["Hold"],
        params={
            "dose": Param(None, type=["null", "number"], description="new dose (Modify)", source="task"),
            "unit": Param(None, type=["null", "string"], description="new unit, e.g. mg, mcg, UI (Modify)",
                          source="task"),
            "frequency_per_day": Param(None, type=["null", "number"], description="doses per day (Modify)",
                                       source="task"),
            "duration_days": Param(None, type=["null", "number"], description="days (Modify)", source="task"),
        },
        response_timeout=timedelta(hours=float(os.environ.get("STA_RX_REVIEW_HOURS", "24"))),
        doc_md="**prescriber_review** (human in the loop): the prescriber confirms, modifies (new dose, unit, "
               "frequency or duration, re-checked) or holds the order, in Required Actions or through the "
               "REST API; with no answer by the timeout the default, Hold, applies.",
    )
    decide = task.branch(task_id="apply_review")(T.apply_review)(order_id, review.output)
    hold = task(task_id="hold")(T.hold)(order_id)
    record = task(task_id="record", trigger_rule="none_failed_min_one_success")(T.record)()
    patient = task(task_id="notify_patient")(T.notify_patient)(order_id)
    plan = task(task_id="health_plan_check")(T.health_plan_check)(order_id)
    end = EmptyOperator(task_id="end", trigger_rule="none_failed_min_one_success",
                        doc_md="End of the workflow: the order is recorded, held or rejected.")

    validate >> [reject, history]
    history >> population >> [notice, record]
    notice >> review >> decide >> [record, hold]
    record >> [patient, plan]
    [patient, plan, reject, hold] >> end
