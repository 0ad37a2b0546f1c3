"""``provision_workspace``: one run per approved Pro request (conf
``{"request_id": N}``): build the customer's SQL workspace (a DuckDB file of
its entitled data), switch the account to Pro, email the customer.

Triggered by ``sta account approve`` (an operator's decision) through
Airflow's REST API, so the provisioning is visible, retried and logged. A
request that no operator approved is refused by the task. Wiring only.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task


@dag(
    dag_id="provision_workspace",
    description="Build an approved Pro customer's SQL workspace",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=2,
    params={"request_id": Param(0, type="integer", description="approved plan request id")},
    tags=["delivery"],
    default_args={"owner": "delivery", "retries": 2, "retry_delay": timedelta(minutes=1), "queue": "delivery"},
)
def provision_workspace() -> None:
    @task
    def build(params: dict | None = None) -> int:
        """**build**: the Pro customer's dedicated DuckDB workspace from the data the account is entitled
        to (its regions and plan); refuses a request no operator approved."""
        from operators.delivery_tasks import provision_workspace as provision

        request_id = int((params or {}).get("request_id") or 0)
        provision(request_id)
        return request_id

    @task
    def email(request_id: int) -> dict:
        """**email**: tell the customer the workspace is ready (SQL through ``POST /api/sql``, ``sta sql``
        and the page's query box)."""
        from operators.delivery_tasks import email_workspace_ready

        return email_workspace_ready(request_id)

    email(build())


provision_workspace()
