"""Where a partner's tasks run: its queue, its pool, and for on-premise partners the Edge executor.

A partner marked ``execution.on_premise`` runs its ingest tasks on an Airflow
Edge worker inside the hospital (providers edge3: the worker polls the API
server over HTTPS, so the hospital opens no inbound port); only de-identified
files and PHI-free records leave it. The executor is named on the tasks only
when the deployment configures it: a task naming an executor that isn't
configured makes the whole DAG file an import error (TOOL_NOTES), and
``dag.test()``/``make up`` run everything locally.
"""

from __future__ import annotations

from typing import Any

EDGE = "EdgeExecutor"


def _configured_executors() -> str:
    from airflow.configuration import conf

    return conf.get("core", "executor", fallback="") or ""


def partner_task_defaults(partner: Any) -> dict[str, Any]:
    """``default_args`` placing every task of the partner's DAG."""
    args: dict[str, Any] = {"queue": partner.queue, "pool": partner.pool}
    if partner.execution.on_premise and EDGE in _configured_executors():
        args["executor"] = EDGE
    return args
