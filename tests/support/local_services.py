"""Real PostgreSQL and Redis servers on loopback for the distributed-run tests.

Debian's ``postgresql`` and ``redis-server`` (packages.txt) are started with a
private data folder under the test's temp dir and stopped by PID: nothing is
installed as a system service and nothing outlives the test. PostgreSQL
refuses to run as root, so under root the cluster belongs to the ``postgres``
user and its commands run through ``runuser``.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if not path:
        raise RuntimeError(f"PostgreSQL's {name} not found: install packages.txt (postgresql)")
    return path


def _as_pg_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


@dataclass
class Postgres:
    port: int
    database: str = "airflow"
    user: str = "airflow"

    @property
    def sqlalchemy_url(self) -> str:
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{self.database}"

    @property
    def celery_backend(self) -> str:
        return f"db+postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    """A throw-away cluster with trust auth on loopback only.

    Its folder is a fresh ``/tmp/sta-pg-*`` (not the test's tmp_path, whose
    0700 parents the ``postgres`` user could not traverse), removed afterwards.
    """
    base = Path(tempfile.mkdtemp(prefix="sta-pg-"))
    data = base / "pgdata"
    data.mkdir()
    sock = base / "pgsock"
    sock.mkdir()
    if os.geteuid() == 0:
        for p in (base, data, sock):
            shutil.chown(p, "postgres")
    port = free_port()
    subprocess.run(_as_pg_user([_pg_bin("initdb"), "-D", str(data), "-U", "airflow", "--auth=trust",
                                "-E", "UTF8", "--no-sync"]), check=True, capture_output=True)
    log = base / "postgres.log"
    if os.geteuid() == 0:
        log.touch()
        shutil.chown(log, "postgres")
    subprocess.run(_as_pg_user([_pg_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o",
                                f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
                                f"-c max_connections=200", "start"]), check=True, capture_output=True)
    try:
        subprocess.run(_as_pg_user([_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "airflow",
                                    "airflow"]), check=True, capture_output=True)
        yield Postgres(port=port)
    finally:
        subprocess.run(_as_pg_user([_pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def redis_server(base: Path) -> Iterator[str]:
    """A Redis broker on loopback, no persistence; yields its URL."""
    port = free_port()
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(base)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
