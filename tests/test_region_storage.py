"""Residency: a region's published data goes to that region's object storage (moto S3 server) only."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from foundation.schema import PRIMARY_KEYS, STUDIES
from transforms.parquet_store import PartnerTables
from transforms.region_storage import RegionStorage, ResidencyError, load_regions, remote_tables, replicate


def _studies(ids):
    return pa.Table.from_pylist([{
        "study_uid": i, "patient_token": "t", "partner_id": "p_co", "region": "co", "country": "co",
        "modality": "CT", "modalities": ["CT"], "body_region": "chest", "study_date_shifted": dt.date(2020, 1, 1),
        "study_description": "TC", "age_at_study": 40, "sex": "F", "manufacturer": "m", "manufacturer_model": "mm",
        "n_series": 1, "n_instances": 1} for i in ids], schema=STUDIES)


@pytest.fixture()
def buckets(s3_server):
    client = s3_server.client()
    names = {}
    for region in ("co", "br"):
        names[region] = s3_server.new_bucket()
    conns = {f"sta_storage_{r}": s3_server.connection(f"sta_storage_{r}") for r in names}

    def resolve(conn_id):
        return conns[conn_id]

    return {r: RegionStorage(r, f"s3://{b}/published", f"sta_storage_{r}") for r, b in names.items()}, resolve, client


def test_published_partner_is_replicated_to_its_regions_bucket(tmp_path, buckets):
    storages, resolve, client = buckets
    root = tmp_path / "co" / "partners" / "p_co"
    local = PartnerTables(root / "parquet")
    local.upsert({"studies": (_studies(["a", "b"]), PRIMARY_KEYS["studies"])})
    (root / "dicom" / "1.2.3").mkdir(parents=True)
    (root / "dicom" / "1.2.3" / "1.2.3.4.dcm").write_bytes(b"\0" * 132 + b"DICM")
    out = replicate(root, storages["co"], "p_co", resolve)
    assert out["copied"] == 2  # one Parquet file, one DICOM file
    remote = remote_tables(storages["co"], "p_co", resolve)
    assert sorted(remote.read("studies")["study_uid"].to_pylist()) == ["a", "b"]
    # a second publication replaces a row: the remote snapshot follows, stale files go
    local.upsert({"studies": (_studies(["b", "c"]), PRIMARY_KEYS["studies"])})
    assert replicate(root, storages["co"], "p_co", resolve)["removed"] >= 1
    assert sorted(remote.read("studies")["study_uid"].to_pylist()) == ["a", "b", "c"]
    other = client.list_objects_v2(Bucket=storages["br"].uri.split("/")[2]).get("KeyCount", 0)
    assert other == 0  # nothing reached the other region's bucket


def test_a_write_outside_the_regions_root_is_refused(buckets):
    storages, _resolve, _client = buckets
    co, br = storages["co"], storages["br"]
    with pytest.raises(ResidencyError, match="outside region 'co'"):
        co.check(br.partner_path("p_co", "parquet"))
    with pytest.raises(ResidencyError):
        co.check(co.partner_path("p_co", "..", "..", "..", "br", "x"))
    assert co.check(co.partner_path("p_co", "parquet")).startswith(co.root)


def test_regions_file_declares_every_partner_region_and_env_overrides(monkeypatch):
    from foundation.partners import load_partners

    regions = load_regions()
    assert {p.region for p in load_partners()} <= set(regions)
    assert all(not r.remote for r in regions.values())  # the embedded default keeps data local
    monkeypatch.setenv("STA_STORAGE_CO", "s3://sta-co-prod")
    assert load_regions()["co"].root == "sta-co-prod/co"
    monkeypatch.setenv("STA_STORAGE_BR", "ftp://nope")
    with pytest.raises(ValueError, match="s3://"):
        load_regions()


def test_a_region_uses_only_its_own_connection(buckets):
    storages, _resolve, _client = buckets
    asked = []

    def only_co(conn_id):
        asked.append(conn_id)
        if conn_id != "sta_storage_co":
            raise LookupError(f"this worker has no connection {conn_id}")
        return _resolve(conn_id)

    storages["co"].filesystem(only_co)
    with pytest.raises(LookupError):
        storages["br"].filesystem(only_co)
    assert asked == ["sta_storage_co", "sta_storage_br"]


def test_publish_stage_replicates_with_the_regions_connection(tmp_path, s3_server, monkeypatch):
    """pipeline.publish's last step, configured the way a deployment is: by environment."""
    import json
    from types import SimpleNamespace

    from pipeline.publish import _replicate

    bucket = s3_server.new_bucket()
    conn = s3_server.connection("sta_storage_co")
    monkeypatch.setenv("STA_STORAGE_CO", f"s3://{bucket}")
    monkeypatch.setenv("AIRFLOW_CONN_STA_STORAGE_CO", json.dumps(
        {"conn_type": "aws", "login": conn.login, "password": conn.password, "extra": conn.extra}))
    root = tmp_path / "co" / "partners" / "p_co"
    PartnerTables(root / "parquet").upsert({"studies": (_studies(["a"]), PRIMARY_KEYS["studies"])})
    ctx = SimpleNamespace(partner=SimpleNamespace(region="co", id="p_co"), root=SimpleNamespace(path=root))
    assert _replicate(ctx, None)["copied"] == 1
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert any(k.startswith("co/partners/p_co/parquet/studies/") for k in keys)
    assert "co/partners/p_co/parquet/_snapshot.json" in keys
    monkeypatch.delenv("STA_STORAGE_CO")
    assert _replicate(ctx, None) == {"copied": 0, "removed": 0}  # the embedded default stays local
