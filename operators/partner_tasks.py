"""Airflow tasks of a partner DAG: each resolves its partner once and calls one stage of ``pipeline/``.

TaskFlow functions, so the DAG factory can fan out with ``.expand()`` over the
batch ids that ``classify`` returns. The library raises plain exceptions; a
verdict (the gate's refusal, an unbalanced ledger) becomes
``AirflowFailException`` so Airflow doesn't retry it.
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


def _ctx(partner_id: str, run_id: str | None) -> Any:
    """The partner's YAML read and validated once for this task."""
    from pipeline.context import RunContext

    return RunContext.resolve(partner_id, run_id or "manual")


@task
def pull(partner_id: str, run_id: str | None = None) -> dict[str, Any]:
    from pipeline import pull as stage

    return stage.run(_ctx(partner_id, run_id), airflow_connections)


@task
def classify(partner_id: str, _pulled: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    from pipeline import classify as stage

    return stage.run(_ctx(partner_id, run_id))


@task
def batches(classified: dict[str, Any], kind: str) -> list[int]:
    """The batch ids of one kind: what the next stage fans out over (Airflow maps only whole XComs)."""
    return list(classified[kind])


@task(max_active_tis_per_dagrun=4)
def deidentify(partner_id: str, batch: int, run_id: str | None = None) -> dict[str, Any]:
    from pipeline import deidentify as stage

    return stage.run(_ctx(partner_id, run_id), batch)


@task(trigger_rule="none_failed")  # also when there was no DICOM batch (skipped mapped task)
def dicom_done() -> None:
    """A join point: report stages need every batch's identity map."""


@task(max_active_tis_per_dagrun=4)
def reports(partner_id: str, batch: int, run_id: str | None = None) -> dict[str, Any]:
    from pipeline import reports as stage

    return stage.run(_ctx(partner_id, run_id), batch)


@task(trigger_rule="none_failed")  # runs when a run has no reports (skipped mapped task)
def build_tables(partner_id: str, run_id: str | None = None) -> dict[str, Any]:
    from pipeline import tables as stage

    return stage.run(_ctx(partner_id, run_id))


@task
def validate(partner_id: str, run_id: str | None = None) -> dict[str, Any]:
    from pipeline import validate as stage

    try:
        return stage.run(_ctx(partner_id, run_id))
    except stage.GateFailed as exc:
        raise AirflowFailException(str(exc)) from exc


def publish_task(region: str, partner_id: str):  # noqa: ANN201
    @task(task_id="publish", outlets=[published_asset(region, partner_id)])
    def publish(partner_id: str, run_id: str | None = None) -> dict[str, Any]:
        from pipeline import publish as stage
        from pipeline.ledger import LedgerMismatch

        try:
            return stage.run(_ctx(partner_id, run_id))
        except LedgerMismatch as exc:
            raise AirflowFailException(str(exc)) from exc

    return publish


@task
def cleanup(partner_id: str, run_id: str | None = None) -> dict[str, Any]:
    from pipeline import cleanup as stage

    return stage.run(_ctx(partner_id, run_id))
