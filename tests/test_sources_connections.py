"""Connections: Airflow's own Connection objects and URIs resolve to what the connectors use."""

from __future__ import annotations

import json

import pytest

from transforms.pull import env_connection_resolver, resolver_from
from transforms.sources.base import ConnectionInfo, ConnectionNotFound


@pytest.fixture(scope="module")
def Connection():  # noqa: N802 - the Airflow class
    from airflow.models.connection import Connection

    return Connection


def test_airflow_uri_round_trips_through_the_env_resolver(Connection, monkeypatch):
    conn = Connection(
        conn_id="hosp_sftp", conn_type="sftp", host="sftp.hospital.example", port=2222, login="sta",
        password="p@ss/word:with#chars", extra=json.dumps({"host_key": "ssh-ed25519 AAAAC3Nza", "timeout": 10}),
    )  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_HOSP_SFTP", conn.get_uri())
    info = env_connection_resolver("hosp_sftp")
    assert (info.conn_type, info.host, info.port, info.login, info.password) == (
        "sftp", "sftp.hospital.example", 2222, "sta", "p@ss/word:with#chars",
    )  # fmt: skip
    assert info.extra["host_key"] == "ssh-ed25519 AAAAC3Nza"


def test_airflow_json_connection_env_format(Connection, monkeypatch):
    conn = Connection(conn_id="hosp_s3", conn_type="aws", login="AKIA", password="secret",
                      extra={"endpoint_url": "http://127.0.0.1:9000", "region_name": "sa-east-1"})  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_HOSP_S3", conn.as_json())
    info = env_connection_resolver("hosp_s3")
    assert info.extra == {"endpoint_url": "http://127.0.0.1:9000", "region_name": "sa-east-1"}
    assert (info.login, info.password) == ("AKIA", "secret")


def test_resolver_from_airflow_get_connection(Connection):
    table = {"hosp_gdrive": Connection(conn_id="hosp_gdrive", conn_type="google_cloud_platform",
                                       extra={"key_path": "/secrets/sa.json"})}  # fmt: skip

    def get_connection(conn_id: str):
        if conn_id not in table:
            raise LookupError(f"The conn_id `{conn_id}` isn't defined")  # what Airflow raises varies
        return table[conn_id]

    resolve = resolver_from(get_connection)
    assert resolve("hosp_gdrive") == ConnectionInfo(
        conn_id="hosp_gdrive", conn_type="google_cloud_platform", extra={"key_path": "/secrets/sa.json"}
    )
    with pytest.raises(ConnectionNotFound, match="hosp_missing"):
        resolve("hosp_missing")


def test_missing_env_connection_names_the_variable(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_NOPE", raising=False)
    with pytest.raises(ConnectionNotFound, match="'nope'.*AIRFLOW_CONN_NOPE"):
        env_connection_resolver("nope")
    monkeypatch.setenv("AIRFLOW_CONN_NOPE", "{not json")
    with pytest.raises(ConnectionNotFound, match="nope"):
        env_connection_resolver("nope")
