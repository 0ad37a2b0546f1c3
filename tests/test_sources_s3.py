"""S3 connector against moto in server mode (real HTTP on loopback), faults on the wire."""

from __future__ import annotations

import dataclasses
import hashlib
import os

import pytest
from support.helpers import landing_files, make_partner, make_root, resolver

from transforms.pull import cleanup_landing, pull_partner
from transforms.sources.base import ConnectionNotFound


@pytest.fixture()
def s3(s3_server, tmp_path):  # noqa: F811
    s3_server.proxy.clear()
    bucket = s3_server.new_bucket()
    partner = make_partner("p_s3", type="s3", conn_id="partner_s3", bucket=bucket, prefix="incoming")
    root = make_root(tmp_path, partner)
    client = s3_server.client()

    def put(key: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=f"incoming/{key}", Body=data)

    def pull(run: str, **kw):
        return pull_partner(partner, root, run, resolver(s3_server.connection()), backoff=0, **kw)

    return s3_server, bucket, put, pull, root, client


def test_pull_lists_pages_and_fetches_with_etag_check(s3):
    server, bucket, put, pull, root, client = s3
    from transforms.sources.s3 import S3Source

    for i in range(123):  # several ListObjectsV2 pages of 50
        put(f"s/{i:04d}.dcm", b"%d" % i)
    client.put_object(Bucket=bucket, Key="outside-prefix.dcm", Body=b"x")
    r = pull("run1", source=S3Source(server.connection(), bucket, "incoming", page_size=50))
    assert r.ok and len(r.fetched) == 123
    assert landing_files(root)["s/0042.dcm"] == b"42"
    assert all(f.source_hash.startswith("s3etag:") for f in r.fetched)


def test_incremental_changed_and_deleted_objects(s3):
    server, bucket, put, pull, root, client = s3
    put("a.dcm", b"one")
    put("b.dcm", b"two")
    r1 = pull("run1")
    cleanup_landing(root, [f.landing_relpath for f in r1.fetched])
    put("a.dcm", b"one, corrected")
    client.delete_object(Bucket=bucket, Key="incoming/b.dcm")
    r2 = pull("run2")
    assert [f.remote_path for f in r2.fetched] == ["a.dcm"]
    assert r2.deleted_at_source == ["b.dcm"]
    assert landing_files(root) == {"a.dcm": b"one, corrected"}


def test_connection_cut_mid_object_resumes(s3):
    server, bucket, put, pull, root, client = s3
    data = os.urandom(3 * 1024 * 1024 + 17)
    put("big.dcm", data)
    server.proxy.add(f"GET /{bucket}/incoming/big.dcm".encode(), "cut", after=1024 * 1024 + 5, times=1)
    r = pull("run1")
    assert server.proxy.fired, "the fault was not injected"
    assert r.ok, r.failed
    assert landing_files(root) == {"big.dcm": data}


def test_connection_cut_every_time_fails_without_partial_file(s3):
    server, bucket, put, pull, root, client = s3
    put("big.dcm", os.urandom(2 * 1024 * 1024))
    put("ok.dcm", b"fine")
    server.proxy.add(f"/{bucket}/incoming/big.dcm".encode(), "cut", after=1000, times=100)
    r = pull("run1", retries=2)
    assert [(f.remote_path, f.reason) for f in r.failed] == [("big.dcm", "transfer_failed")]
    assert landing_files(root) == {"ok.dcm": b"fine"}


def test_corrupted_transfer_is_detected_by_etag_and_refetched(s3):
    server, bucket, put, pull, root, client = s3
    data = os.urandom(200_000)
    put("x.dcm", data)
    server.proxy.add(f"GET /{bucket}/incoming/x.dcm".encode(), "corrupt", after=100_000, times=1)
    r = pull("run1")
    assert server.proxy.fired and r.ok
    assert landing_files(root) == {"x.dcm": data}


def test_persistent_corruption_fails_as_hash_mismatch(s3):
    server, bucket, put, pull, root, client = s3
    put("x.dcm", os.urandom(50_000))
    server.proxy.add(f"GET /{bucket}/incoming/x.dcm".encode(), "corrupt", after=10, times=100)
    r = pull("run1", retries=1)
    assert [(f.remote_path, f.reason) for f in r.failed] == [("x.dcm", "hash_mismatch")]
    assert landing_files(root) == {}


def test_object_overwritten_after_listing_fetches_new_version(s3):
    server, bucket, put, pull, root, client = s3
    put("a.dcm", b"listed version")
    from transforms.sources.s3 import S3Source

    class OverwriteAfterList(S3Source):
        def list(self):
            entries = list(super().list())
            put("a.dcm", b"newer version, longer")
            yield from entries

    src = OverwriteAfterList(server.connection(), bucket, "incoming")
    r = pull_partner_with(src, s3)
    assert r.ok
    assert landing_files(root) == {"a.dcm": b"newer version, longer"}


def pull_partner_with(src, s3):
    server, bucket, put, pull, root, client = s3
    return pull("run1", source=src)


def test_multipart_etag_is_verified(s3):
    server, bucket, put, pull, root, client = s3
    from boto3.s3.transfer import TransferConfig

    data = os.urandom(11 * 1024 * 1024)
    cfg = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    import io

    client.upload_fileobj(io.BytesIO(data), bucket, "incoming/multi.dcm", Config=cfg)
    r = pull("run1")
    assert r.ok and "-" in r.fetched[0].source_hash
    assert r.fetched[0].sha256 == hashlib.sha256(data).hexdigest()


def test_path_traversal_key_lands_inside(s3, tmp_path):
    server, bucket, put, pull, root, client = s3
    put("../../../../escape.dcm", b"evil")
    put("dir//double.dcm", b"d")
    r = pull("run1")
    assert r.ok
    for f in r.fetched:
        assert (root.landing / f.landing_relpath).resolve().is_relative_to(root.landing.resolve())
    assert not list(tmp_path.rglob("escape.dcm"))


def test_duplicate_upload_processed_once(s3):
    server, bucket, put, pull, root, client = s3
    put("a.dcm", b"same")
    put("copy/a (1).dcm", b"same")
    r = pull("run1")
    assert len(r.fetched) == 1 and [s.reason for s in r.skipped] == ["duplicate_content"]


def test_wrong_credentials_fail_naming_the_connection(s3_server, tmp_path):  # noqa: F811
    bucket = s3_server.new_bucket()
    partner = make_partner("p_s3", type="s3", conn_id="partner_s3", bucket=bucket)
    conn = dataclasses.replace(s3_server.connection(), extra={"endpoint_url": "http://127.0.0.1:1"})
    with pytest.raises(Exception, match="partner_s3"):
        pull_partner(partner, make_root(tmp_path, partner), "r", resolver(conn))
    with pytest.raises(ConnectionNotFound, match="partner_s3"):
        pull_partner(partner, make_root(tmp_path, partner), "r", resolver())


def _cli(tmp_path, partner_yaml: str, **env):
    import json
    import subprocess
    import sys
    from pathlib import Path

    partners = tmp_path / "partners"
    partners.mkdir(exist_ok=True)
    (partners / "p_s3cli.yaml").write_text(partner_yaml)
    env_vars = dict(os.environ, STA_PARTNERS_DIR=str(partners), STA_DATA_ROOT=str(tmp_path / "data"), **env)
    if "AIRFLOW_CONN_PARTNER_S3" not in env:
        env_vars.pop("AIRFLOW_CONN_PARTNER_S3", None)
    proc = subprocess.run(
        [sys.executable, "-m", "sta.cli", "pull", "--partner", "p_s3cli"],
        cwd=Path(__file__).resolve().parent.parent, env=env_vars, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return proc, (json.loads(proc.stdout) if proc.stdout.strip() else None)


def test_sta_pull_cli_uses_airflow_conn_env_variables(s3, tmp_path):
    server, bucket, put, pull, root, client = s3
    put("a.dcm", b"via cli")
    yaml_text = (
        f"id: p_s3cli\nname: S3 CLI\ncountry: co\nregion: co\n"
        f"source:\n  type: s3\n  conn_id: partner_s3\n  bucket: {bucket}\n  prefix: incoming\n"
    )
    uri = f"aws://testing:testing@/?endpoint_url={server.endpoint}&region_name=us-east-1"
    proc, out = _cli(tmp_path, yaml_text, AIRFLOW_CONN_PARTNER_S3=uri)
    assert proc.returncode == 0, proc.stderr
    assert [(f["remote_path"], f["size"]) for f in out["fetched"]] == [("a.dcm", 7)]
    landing = tmp_path / "data" / "co" / "partners" / "p_s3cli" / "landing"
    assert (landing / "a.dcm").read_bytes() == b"via cli"

    proc, out = _cli(tmp_path, yaml_text)  # no AIRFLOW_CONN_PARTNER_S3 at all
    assert proc.returncode == 2
    assert "partner_s3" in proc.stderr and out["ok"] is False
