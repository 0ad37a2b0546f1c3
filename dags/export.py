"""``export``: one run per export order (conf ``{"order_id": ...}``).

build (the package under the customer's area, metered) → email (a signed,
expiring link through the ``smtp_default`` connection). Triggered by the
query service (``POST /api/exports``) through Airflow's REST API. Wiring
only: the work is in ``delivery`` via ``operators.delivery_tasks``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task


@dag(
    dag_id="export",
    description="Build a customer's export package and email the download link",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=4,
    params={"order_id": Param("", type="string", description="export order id (exp_…)")},
    tags=["delivery"],
    default_args={"owner": "delivery", "retries": 2, "retry_delay": timedelta(seconds=30), "queue": "delivery"},
)
def export() -> None:
    @task
    def build(params: dict | None = None) -> str:
        """**build**: the order's package under the customer's area (JSON or de-identified DICOM, optional
        Parquet), streamed with bounded memory, checksums in the manifest; only studies of the customer's
        regions and plan; every exported study metered. Progress is visible through ``GET /api/exports/{id}``."""
        from operators.delivery_tasks import build_export

        order_id = (params or {}).get("order_id", "")
        build_export(order_id)
        return order_id

    @task
    def email(order_id: str) -> dict:
        """**email**: send the customer a signed, expiring, single-use download link through
        ``smtp_default``."""
        from operators.delivery_tasks import email_export

        return email_export(order_id)

    email(build())


export()
