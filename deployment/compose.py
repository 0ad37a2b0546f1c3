"""docker-compose.yaml generated from the partner files and their regions.

The production layout (DESIGN.md "Running at scale") is data-driven: adding a
partner YAML adds its Celery workers (consuming only ``partner-<id>``), its
pool (slots = the partner's ``execution.concurrency``) and its volume (only
that partner's storage root); each region gets a linking worker
(``region-<region>``) that mounts only de-identified Parquet and the region's
store. Partners marked ``on_premise`` get no worker here: their pull and
de-identification run on an Airflow Edge worker inside the hospital, which
calls the API server over HTTPS (no inbound port at the hospital).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

import yaml

from foundation.partners import PartnerConfig

IMAGE = "sta-platform:latest"
HOST_ROOT = "/srv/sta"  # where each region's storage is mounted on the host
DATA = "/data"          # STA_DATA_ROOT inside the containers


def _service_name(text: str) -> str:
    return text.replace("_", "-").lower()


def _airflow_base() -> dict[str, Any]:
    return {
        "build": {"context": ".", "dockerfile": "Dockerfile"},
        "image": IMAGE,
        "env_file": [".env"],
        "environment": {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "deployment.worker.worker_name",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN":
                "postgresql+psycopg2://airflow:${POSTGRES_PASSWORD:?set in .env}@postgres/airflow",
            "AIRFLOW__CELERY__BROKER_URL": "redis://redis:6379/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+postgresql://airflow:${POSTGRES_PASSWORD}@postgres/airflow",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://airflow-apiserver:8080/execution/",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__SECRETS__BACKEND": "${AIRFLOW_SECRETS_BACKEND:-}",
            "STA_DATA_ROOT": DATA,
        },
        "depends_on": {"postgres": {"condition": "service_healthy"},
                       "redis": {"condition": "service_healthy"}},
        "restart": "unless-stopped",
    }


def _airflow(command: list[str], **extra: Any) -> dict[str, Any]:
    """One Airflow service: the shared base, its command, and its own settings.

    Written out in full rather than through a YAML merge key: a merge is
    shallow, so a worker's own ``environment`` would drop the shared one.
    """
    svc = _airflow_base()
    svc["command"] = command
    env = extra.pop("environment", {})
    svc["environment"] = {**svc["environment"], **env}
    svc.update(extra)
    return svc


def _conn_env(*conn_ids: str | None) -> dict[str, str]:
    """Credentials a worker is given: only the connections it needs, one variable each.

    Interpolated by compose from the host's environment, so each container
    receives its own partner's source and its own region's storage
    credentials and never another's (``.env`` holds only shared settings).
    """
    out = {}
    for conn_id in conn_ids:
        if conn_id:
            var = f"AIRFLOW_CONN_{conn_id.upper()}"
            out[var] = "${" + var + ":-}"
    return out


def compose(partners: Iterable[PartnerConfig]) -> dict[str, Any]:
    """The compose document as a dict."""
    partners = sorted(partners, key=lambda p: p.id)
    by_region: dict[str, list[PartnerConfig]] = defaultdict(list)
    for p in partners:
        by_region[p.region].append(p)
    pools = " && ".join(
        f"airflow pools set {p.pool} {p.execution.concurrency} {p.id}" for p in partners
    ) or "true"
    services: dict[str, Any] = {
        "postgres": {
            "image": "postgres:16",
            "environment": {"POSTGRES_USER": "airflow", "POSTGRES_PASSWORD": "${POSTGRES_PASSWORD:?set in .env}",
                            "POSTGRES_DB": "airflow"},
            "volumes": ["pgdata:/var/lib/postgresql/data"],
            "healthcheck": {"test": ["CMD", "pg_isready", "-U", "airflow"], "interval": "10s", "retries": 5},
        },
        "redis": {
            "image": "redis:7",
            "healthcheck": {"test": ["CMD", "redis-cli", "ping"], "interval": "10s", "retries": 5},
        },
        "airflow-init": _airflow(["bash", "-c", f"airflow db migrate && {pools}"], restart="no"),
        "airflow-apiserver": _airflow(["airflow", "api-server"], ports=["8080:8080"]),
        "airflow-scheduler": _airflow(["airflow", "scheduler"]),
        "airflow-dag-processor": _airflow(["airflow", "dag-processor"]),
        "airflow-triggerer": _airflow(["airflow", "triggerer"]),
    }
    for p in partners:
        if p.execution.on_premise:
            continue  # an Edge worker at the hospital (README: "De-identification at the hospital")
        root = f"{p.region}/partners/{p.id}"
        services[f"worker-{_service_name(p.id)}"] = _airflow(
            ["airflow", "celery", "worker", "-q", p.queue, "--concurrency", str(p.execution.slots_per_worker)],
            environment={"STA_WORKER_NAME": f"worker-{p.queue}",
                         **_conn_env(p.source.conn_id, f"sta_storage_{p.region}")},
            volumes=[f"{HOST_ROOT}/{root}:{DATA}/{root}"],
            deploy={"replicas": p.execution.workers},
        )
    for region, members in sorted(by_region.items()):
        vols = [f"{HOST_ROOT}/{region}/partners/{p.id}/parquet:{DATA}/{region}/partners/{p.id}/parquet:ro"
                for p in members]
        vols.append(f"{HOST_ROOT}/{region}/store:{DATA}/{region}/store")
        services[f"worker-region-{region}"] = _airflow(
            ["airflow", "celery", "worker", "-q", f"region-{region}"],
            environment={"STA_WORKER_NAME": f"worker-region-{region}", **_conn_env(f"sta_storage_{region}")},
            volumes=vols,
        )
    store_vols = [f"{HOST_ROOT}/{r}/store:{DATA}/{r}/store:ro" for r in sorted(by_region)]
    # Exports and Pro workspaces (queue "delivery") read the regions' stores and the partners'
    # de-identified DICOM, and write only customers' areas; other workflows (medication orders)
    # run on the default queue with their own order store.
    dicom_vols = [f"{HOST_ROOT}/{p.region}/partners/{p.id}/dicom:{DATA}/{p.region}/partners/{p.id}/dicom:ro"
                  for p in partners]
    services["worker-delivery"] = _airflow(
        ["airflow", "celery", "worker", "-q", "delivery"],
        environment={"STA_WORKER_NAME": "worker-delivery", **_conn_env("smtp_default")},
        volumes=store_vols + dicom_vols + [f"{HOST_ROOT}/customers:{DATA}/customers", f"service-db:{DATA}/service"],
    )
    services["worker-default"] = _airflow(
        ["airflow", "celery", "worker", "-q", "default"],
        environment={"STA_WORKER_NAME": "worker-default", **_conn_env("smtp_default", "health_plan_api")},
        volumes=[f"{HOST_ROOT}/medication:{DATA}/medication"],
    )
    services["query-service"] = {
        "image": IMAGE,
        "env_file": [".env"],
        "environment": {"STA_DATA_ROOT": DATA},
        "command": ["sta", "serve", "--host", "0.0.0.0", "--port", "8000"],
        "ports": ["8000:8000"],
        "volumes": store_vols + [f"service-db:{DATA}/service"],
        "restart": "unless-stopped",
    }
    return {"services": services, "volumes": {"pgdata": {}, "service-db": {}}}


def render(partners: Iterable[PartnerConfig]) -> str:
    header = ("# GENERATED by `sta deploy compose` from include/partners/*.yaml: do not edit by hand.\n"
              "# One Celery worker group per partner queue (mounting only that partner's root), one linking\n"
              "# worker per region, Postgres metadata DB, Redis broker. Secrets come from .env / the secrets\n"
              "# backend, never from this file.\n")
    return header + yaml.safe_dump(compose(partners), sort_keys=False, allow_unicode=True, width=120)
