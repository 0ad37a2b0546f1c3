"""Requesting DAG runs through Airflow's REST API (v2), so an export order or
a Pro provisioning is an Airflow run: visible in the UI, retried, logged.

Wire format (Airflow 3): ``POST /auth/token`` ``{"username", "password"}`` →
``{"access_token"}``; ``POST /api/v2/dags/{dag_id}/dagRuns``
``{"logical_date": null, "conf": {...}}`` with ``Authorization: Bearer``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import httpx


class AirflowTrigger:
    def __init__(self, base_url: str, username: str, password: str, client: Any | None = None,
                 password_file: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.username, self.password = username, password
        self.password_file = password_file  # read when first needed (standalone writes it at start)
        self._client = client  # an httpx.Client-like object (tests pass Airflow's app client)
        self._token: str | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> "AirflowTrigger | None":
        url = os.environ.get("STA_AIRFLOW_URL")
        if not url:
            return None
        return cls(url, os.environ.get("STA_AIRFLOW_USER", "admin"), os.environ.get("STA_AIRFLOW_PASSWORD", ""),
                   password_file=os.environ.get("STA_AIRFLOW_PASSWORD_FILE"))

    def _password(self) -> str:
        if self.password or not self.password_file or not Path(self.password_file).is_file():
            return self.password
        import json

        text = Path(self.password_file).read_text().strip()
        try:  # simple auth manager's generated file: {"admin": "password"}
            return str(json.loads(text).get(self.username, ""))
        except ValueError:
            return text

    def _http(self) -> Any:
        return self._client or httpx.Client(timeout=15)

    def _auth(self, http: Any) -> str:
        with self._lock:
            if self._token is None:
                r = http.post(f"{self.base_url}/auth/token",
                              json={"username": self.username, "password": self._password()})
                r.raise_for_status()
                self._token = r.json()["access_token"]
            return self._token

    def __call__(self, dag_id: str, conf: dict) -> str:
        http = self._http()
        try:
            for attempt in (1, 2):
                r = http.post(f"{self.base_url}/api/v2/dags/{dag_id}/dagRuns",
                              json={"logical_date": None, "conf": conf},
                              headers={"Authorization": f"Bearer {self._auth(http)}"})
                if r.status_code == 401 and attempt == 1:
                    self._token = None  # expired token: log in again once
                    continue
                r.raise_for_status()
                return str(r.json()["dag_run_id"])
        finally:
            if self._client is None:
                http.close()
        raise RuntimeError("Airflow refused the run request")
