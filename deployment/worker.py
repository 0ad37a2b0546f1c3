"""A worker's name as Airflow records it (``task_instance.hostname``).

Airflow stores ``[core] hostname_callable`` in every task instance it runs.
Containers already get distinct host names; several workers on one host (a
laptop, the distributed test) do not, so a worker started for a queue sets
``STA_WORKER_NAME`` and the metadata DB then proves which worker ran what.
"""

from __future__ import annotations

import os
import socket


def worker_name() -> str:
    return os.environ.get("STA_WORKER_NAME") or socket.getfqdn()
