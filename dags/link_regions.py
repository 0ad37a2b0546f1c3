"""Patient-token linking: one DAG per region, ``link_<region>``.

Scheduled on the publication assets of the region's partners (any of them:
``AssetAny``), so a partner publishing triggers its region's consolidation.
Wiring only: the work is ``transforms.consolidate.consolidate_region``, which
reloads only the partners whose Parquet changed. ``max_active_runs=1``: two
runs of one region would serialise on the store's lock anyway.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from airflow.sdk import DAG, Asset, AssetAny, task

from operators.partner_tasks import published_asset as publication_asset
from foundation.partners import load_partners_checked


def build_link_dag(region: str, partner_ids: list[str]) -> DAG:
    assets = [publication_asset(region, pid) for pid in sorted(partner_ids)]
    with DAG(
        dag_id=f"link_{region}",
        description=f"Link patient tokens of region {region} into its consolidated store",
        schedule=AssetAny(*assets),
        start_date=datetime(2025, 1, 1),
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=False,  # published data must reach search without a manual step
        tags=["linking", f"region:{region}"],
        default_args={"owner": "data-engineering", "retries": 2, "retry_delay": timedelta(minutes=1),
                      "queue": f"region-{region}"},
        doc_md=__doc__ + "\n\nRe-run: trigger it (no parameters); it reloads the partners whose Parquet changed. "
        "Unpaused at creation: a publication reaches search without a manual step.",
    ) as dag:

        @task(task_id="consolidate", outlets=[Asset(name=f"store_{region}", uri=f"sta://{region}/store")])
        def consolidate() -> dict:
            """**consolidate**: merge the region's partners' published Parquet into
            ``<data>/<region>/store/consolidated.duckdb`` (a partner's rows replace only its own), then emit
            the region's store asset."""
            from foundation.paths import data_root
            from transforms.consolidate import consolidate_region

            return consolidate_region(region, data_root())

        consolidate()
    return dag


_by_region: dict[str, list[str]] = defaultdict(list)
for _partner in load_partners_checked()[0]:  # a bad partner file: see partner_config_errors.py
    _by_region[_partner.region].append(_partner.id)

for _region, _ids in sorted(_by_region.items()):
    globals()[f"link_{_region}"] = build_link_dag(_region, _ids)
