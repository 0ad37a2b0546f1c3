"""The researchers' review as an Airflow human-in-the-loop task (providers-standard HITLOperator).

Wiring around :mod:`pipeline.review`: ``review.prepare`` renders the sample,
``review.approve`` waits in Airflow's Required Actions for a researcher
(answer in the UI or by REST: PATCH .../taskInstances/review.approve/-1/hitlDetails),
``review.apply`` acts on the answer. A run whose policy selects nothing skips
the approval. No answer within the policy's ``timeout_hours`` takes the
default, Reject: nothing is published without an approval.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import TaskGroup
from airflow.sdk.exceptions import AirflowSkipException

APPROVE = "Approve"
REJECT_OPTIONS = ["Reject: identifying text in pixels", "Reject: identifying text in a report", "Reject: other"]


class ReviewApproval(HITLOperator):
    """Skips itself when ``review.prepare`` selected nothing; otherwise waits for a researcher."""

    def execute(self, context: Any) -> Any:
        prepared = context["ti"].xcom_pull(task_ids="review.prepare") or {}
        if not prepared.get("required"):
            raise AirflowSkipException("the partner's review policy selected nothing in this run")
        return super().execute(context)


def review_group(partner: Any, prepare: Any, apply: Any) -> TaskGroup:  # noqa: ANN401
    """``review.prepare >> review.approve >> review.apply`` for one partner's DAG."""
    policy = partner.review
    with TaskGroup("review", tooltip="researchers' review (Required Actions)") as group:
        prepared = prepare.override(task_id="prepare")(partner.id)
        approve = ReviewApproval(
            task_id="approve",
            subject=f"Review {partner.id}: run {{{{ run_id }}}} "
                    f"({{{{ ti.xcom_pull(task_ids='review.prepare')['shown'] }}}} studies)",
            body="{{ ti.xcom_pull(task_ids='review.prepare')['body'] }}",
            options=[APPROVE, *REJECT_OPTIONS],
            defaults=[REJECT_OPTIONS[-1]],
            multiple=False,
            response_timeout=timedelta(hours=policy.timeout_hours),
            assigned_users=[{"id": u, "name": u} for u in policy.reviewers] or None,
            doc_md="**review.approve**: a researcher looks at the sample (de-identified thumbnails with "
                   "redaction boxes, scrubbed report text) and approves or rejects the run. Reject or no "
                   f"answer within {policy.timeout_hours:g} h: every file of the run is quarantined.",
        )
        applied = apply.override(task_id="apply")(partner.id)
        prepared >> approve >> applied
    return group
