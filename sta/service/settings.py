"""What the delivery routes need besides the stores and the database: where
customer areas live, how download links are signed, how an order becomes an
Airflow run, the service's public URL, the SQL limits.

``DeliverySettings.from_env()`` reads the deployment's environment:
``STA_DATA_ROOT``, ``STA_SECRET_KEY`` (link signing), ``STA_PUBLIC_URL``,
``STA_LINK_HOURS``, and ``STA_AIRFLOW_URL`` + ``STA_AIRFLOW_USER`` +
``STA_AIRFLOW_PASSWORD`` (or ``STA_AIRFLOW_PASSWORD_FILE``) for triggering
runs through Airflow's REST API. Without an Airflow URL, orders are built in
a background thread of the service by the same library code (a single-machine
fallback for ``sta serve`` alone; no email is sent then).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from delivery.links import DEFAULT_MAX_AGE_S, LinkSigner, derive_secret
from delivery.workspaces import Limits

# (dag_id, conf) -> run id; raises when the run could not be requested.
Trigger = Callable[[str, dict], str]


@dataclass
class DeliverySettings:
    data_root: Path
    signer: LinkSigner
    trigger: Trigger | None = None  # None: build in a thread of the service
    public_url: str = "http://127.0.0.1:8000"
    sql_limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_env(cls, data_root: Path | None = None) -> "DeliverySettings":
        from foundation.paths import data_root as default_root
        from sta.service.airflow_client import AirflowTrigger

        key = os.environ.get("STA_SECRET_KEY", "")
        hours = int(os.environ.get("STA_LINK_HOURS", str(DEFAULT_MAX_AGE_S // 3600)))
        trigger = AirflowTrigger.from_env()
        return cls(
            data_root=Path(data_root) if data_root else default_root(),
            signer=LinkSigner(derive_secret(key) if key else os.urandom(32), max_age_s=hours * 3600),
            trigger=trigger,
            public_url=os.environ.get("STA_PUBLIC_URL", "http://127.0.0.1:8000"),
        )
