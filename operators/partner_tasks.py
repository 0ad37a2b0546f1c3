"""Airflow tasks of a partner DAG: each a few lines around ``transforms.pipeline``.

TaskFlow functions, so the DAG factory can fan out with ``.expand()`` over the
batch ids that ``classify`` returns. The library raises plain exceptions; the
gate's refusal becomes ``AirflowFailException`` so Airflow doesn't retry a
verdict.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, task
from airflow.sdk.exceptions import AirflowFailException


def published_asset(region: str, partner_id: str) -> Asset:
    """Emitted when a partner publishes; the region's linking DAG is scheduled on it."""
    return Asset(name=f"published_{partner_id}", uri=f"sta://{region}/{partner_id}/parquet")


def airflow_connections(conn_id: str) -> Any:
    """Resolve a partner's source credentials from Airflow Connections / secrets backend."""
    from airflow.sdk import BaseHook

    from transforms.sources.base import ConnectionInfo

    return ConnectionInfo.from_airflow(BaseHook.get_connection(conn_id))


@task
def pull(partner_id: str, run_id: str | None = None) -> dict[str, Any]:
    from transforms.pipeline import stage_pull

    return stage_pull(partner_id, run_id, airflow_connections)


@task
def classify(partner_id: str, _pulled: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    from transforms.pipeline import stage_classify

    return stage_classify(partner_id, run_id)


@task
def batches(classified: dict[str, Any], kind: str) -> list[int]:
    """The batch ids of one kind: what the next stage fans out over (Airflow maps only whole XComs)."""
    return list(classified[kind])


@task(max_active_tis_per_dagrun=4)
def deidentify(partner_id: str, batch: int, run_id: str | None = None) -> dict[str, Any]:
    from transforms.pipeline import stage_deidentify

    return stage_deidentify(partner_id, run_id, batch)


@task(trigger_rule="none_failed")  # also when there was no DICOM batch (skipped mapped task)
def dicom_done() -> None:
    """A join point: report stages need every batch's identity map."""


@task(max_active_tis_per_dagrun=4)
def reports(partner_id: str, batch: int, run_id: str | None = None) -> dict[str, Any]:
    from transforms.pipeline import stage_reports

    return stage_reports(partner_id, run_id, batch)


@task(trigger_rule="none_failed")  # runs when a run has no reports (skipped mapped task)
def build_tables(partner_id: str, run_id: str | None = None) -> dict[str, Any]:
    from transforms.pipeline import stage_build_tables

    return stage_build_tables(partner_id, run_id)


@task
def validate(partner_id: str, run_id: str | None = None) -> dict[str, Any]:
    from transforms.pipeline import GateFailed, stage_validate

    try:
        return stage_validate(partner_id, run_id)
    except GateFailed as exc:
        raise AirflowFailException(str(exc)) from exc


def publish_task(region: str, partner_id: str):  # noqa: ANN201
    @task(task_id="publish", outlets=[published_asset(region, partner_id)])
    def publish(partner_id: str, run_id: str | None = None) -> dict[str, Any]:
        from transforms.pipeline import LedgerMismatch, stage_publish

        try:
            return stage_publish(partner_id, run_id)
        except LedgerMismatch as exc:
            raise AirflowFailException(str(exc)) from exc

    return publish


@task
def cleanup(partner_id: str, run_id: str | None = None) -> dict[str, Any]:
    from transforms.pipeline import stage_cleanup

    return stage_cleanup(partner_id, run_id)
