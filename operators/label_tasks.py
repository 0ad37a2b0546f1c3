"""Airflow tasks of the labelling stage (pipeline/label.py): route, a mapped task group per cluster, merge.

``labelling(partner_id, upstream)`` wires them after ``build_tables``:

    route_studies -> label_cluster[cluster] (label_reports -> characterize) -> merge_labels

The group is mapped over the clusters that have studies in the run, so each
cluster (include/labelling/clusters/*.yaml: chest X-ray, mammography, brain
MR...) is its own task instance in the grid; adding a cluster file adds a
group instance, no DAG change.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import task, task_group

log = logging.getLogger("sta.run")


def _ctx(partner_id: str, run_id: str | None) -> Any:
    from pipeline.context import RunContext

    return RunContext.resolve(partner_id, run_id or "manual")


@task
def route_studies(partner_id: str, run_id: str | None = None) -> list[str]:
    """**route_studies**: infer each study's body region (with a confidence) and its labelling cluster
    (modality x region); one work list per cluster. Returns the clusters that have studies."""
    from pipeline import label as stage

    out = stage.route(_ctx(partner_id, run_id))
    log.info("labelling routes: %s", ", ".join(f"{c}={n}" for c, n in out["studies"].items()) or "no studies")
    return out["clusters"]


@task(map_index_template="{{ cluster }}")
def label_reports(partner_id: str, cluster: str, run_id: str | None = None) -> dict[str, Any]:
    """**label_reports[cluster]**: the cluster's concepts and models on its studies' scrubbed reports:
    each concept with certainty (positive, negative, uncertain, historical, family), confidence,
    source and evidence span."""
    from airflow.sdk import get_current_context

    from pipeline import label as stage

    get_current_context()["cluster"] = cluster  # names the mapped instance in the grid
    out = stage.label_cluster(_ctx(partner_id, run_id), cluster)
    log.info("cluster %s: %d studies, %d labels %s", cluster, out["studies"], out["labels"], out["by_certainty"])
    return out


@task(map_index_template="{{ cluster }}")
def characterize(partner_id: str, cluster: str, _labelled: Any = None, run_id: str | None = None) -> dict[str, Any]:
    """**characterize[cluster]**: demographics, image attributes and clinical context of the cluster's studies."""
    from airflow.sdk import get_current_context

    from pipeline import label as stage

    get_current_context()["cluster"] = cluster
    return stage.characterize_cluster(_ctx(partner_id, run_id), cluster)


@task_group(group_id="label_cluster")
def label_cluster(partner_id: str, cluster: str) -> Any:
    """One cluster's labelling pipeline."""
    return characterize(partner_id, cluster, label_reports(partner_id, cluster))


@task(trigger_rule="none_failed")  # also when no cluster had studies (the mapped group is skipped)
def merge_labels(partner_id: str, run_id: str | None = None) -> dict[str, Any]:
    """**merge_labels**: the run's labels and characteristics tables, and each study's inferred body region,
    written before the gate validates the run."""
    from pipeline import label as stage

    out = stage.merge(_ctx(partner_id, run_id))
    log.info("labels: %d rows, characteristics: %d rows, per cluster %s", out["labels"], out["characteristics"],
             out["clusters"])
    return out


def labelling(partner_id: str, upstream: Any) -> Any:
    """Wire the labelling stage after ``upstream``; returns the task the gate follows."""
    routes = route_studies(partner_id)
    upstream >> routes
    groups = label_cluster.partial(partner_id=partner_id).expand(cluster=routes)
    merged = merge_labels(partner_id)
    groups >> merged
    return merged
