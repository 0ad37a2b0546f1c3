"""Session-wide test set-up.

Airflow reads its configuration from the environment when first imported, so
the variables are set here, at import time of the conftest, before any test
module imports airflow. One metadata DB is migrated per session (DAG tests
must share one pytest process: the first ``dag.test()`` costs seconds).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="sta-tests-"))

os.environ.setdefault("AIRFLOW_HOME", str(_SESSION_DIR / "airflow"))
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(PROJECT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(PROJECT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_hex(64))
os.environ.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
os.environ.setdefault("STA_SECRET_KEY", "test-key-" + "0" * 48)
os.environ.setdefault("OMP_THREAD_LIMIT", "1")
os.environ.setdefault("STA_DATA_ROOT", str(_SESSION_DIR / "data"))

ARTIFACTS = PROJECT / "test-artifacts"


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Migrate the session's SQLite metadata DB once (~4 s)."""
    from airflow.utils import db

    db.initdb()


# -- real servers on loopback, started once per session when a test asks --------------
# Imported lazily: a test run that needs no SFTP server never imports asyncssh.
@pytest.fixture(scope="session")
def sftp_server():  # noqa: ANN201
    from support.sftp import SFTPServer

    srv = SFTPServer()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture(scope="session")
def s3_server():  # noqa: ANN201
    from support.s3 import start_s3_server

    srv, moto = start_s3_server()
    try:
        yield srv
    finally:
        srv.proxy.close()
        moto.stop()


@pytest.fixture(scope="session")
def drive_server():  # noqa: ANN201
    from support.gdrive import DriveFake

    d = DriveFake()
    try:
        yield d
    finally:
        d.httpd.shutdown()


@pytest.fixture(scope="session")
def dropbox_server():  # noqa: ANN201
    from support.dropbox import DropboxFake

    d = DropboxFake()
    try:
        yield d
    finally:
        d.httpd.shutdown()


# De-identifiers shared by the tests/test_deid_*.py files (one build per session).
@pytest.fixture(scope="session")
def deid():
    from anonymization.batch import DeidSettings, build_deidentifier

    key = os.environ["STA_SECRET_KEY"].encode()
    return build_deidentifier(DeidSettings("latam", {}, "test", {"RNEC": "CO-CC"}, clean_pixels=False), key)


@pytest.fixture(scope="session")
def deid_no_pixels():
    """Pixel policy off, so that the header path is what these files exercise."""
    from anonymization.batch import DeidSettings, build_deidentifier

    key = os.environ["STA_SECRET_KEY"].encode()
    return build_deidentifier(DeidSettings("latam", {"options": {"clean_pixel_data": False}}, clean_pixels=False), key)


# Browser tests (pytest-playwright) drive Debian's chromium: Playwright's own browser download is not
# possible here (TOOL_NOTES), so the session's launch arguments point at the system binary.
CHROMIUM = "/usr/lib/chromium/chromium"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ["--disable-gpu", "--disable-quic"]}
