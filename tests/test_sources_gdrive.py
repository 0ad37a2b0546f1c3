"""Google Drive connector: the official client against a local Drive v3 server on loopback."""

from __future__ import annotations

import dataclasses
import os
import time

import pytest
from support.helpers import landing_files, make_partner, make_root, resolver

from transforms.pull import cleanup_landing, pull_partner
from transforms.sources.base import ConnectionNotFound


@pytest.fixture()
def gd(drive_server, tmp_path):  # noqa: F811
    drive_server.cuts.clear()
    drive_server.corrupt.clear()
    folder = drive_server.add_folder(f"hospital-{time.monotonic_ns()}", drive_server.root_id)
    partner = make_partner("p_gdrive", type="gdrive", conn_id="partner_gdrive", folder_id=folder)
    root = make_root(tmp_path, partner)

    def pull(run: str, conn=None, **kw):
        return pull_partner(partner, root, run, resolver(conn or drive_server.connection()), backoff=0, **kw)

    return drive_server, folder, pull, root


def test_tree_is_fetched_and_google_docs_skipped_with_reason(gd):
    d, folder, pull, root = gd
    study = d.add_folder("study 1", folder)
    d.add_file("a.dcm", study, b"A" * 5000)
    d.add_file("report.pdf", folder, b"%PDF-1.7")
    d.add_google_doc("notes", folder)
    r = pull("run1")
    assert r.ok
    assert sorted(f.landing_relpath for f in r.fetched) == ["report.pdf", "study 1/a.dcm"]
    assert [(s.remote_path, s.reason) for s in r.skipped] == [("notes", "not_downloadable")]
    assert landing_files(root)["study 1/a.dcm"] == b"A" * 5000
    assert all(f.source_hash.startswith("md5:") for f in r.fetched)


def test_big_file_is_downloaded_in_range_chunks(gd):
    d, folder, pull, root = gd
    from transforms.sources.gdrive import DriveSource

    data = os.urandom(2_500_000)
    d.add_file("big.dcm", folder, data)
    d.media_ranges.clear()
    src = DriveSource(d.connection(), folder, chunk_size=1024 * 1024)
    r = pull("run1", source=src)
    assert r.ok and landing_files(root) == {"big.dcm": data}
    assert d.media_ranges == ["bytes=0-1048575", "bytes=1048576-2097151", "bytes=2097152-3145727"]


def test_listing_pages_through_ten_thousand_files(gd):
    d, folder, pull, root = gd
    from transforms.sources.gdrive import DriveSource

    for i in range(10_000):
        d.add_file(f"img{i:05d}.dcm", folder, b"")
    calls = d.list_calls
    src = DriveSource(d.connection(), folder)
    t0 = time.monotonic()
    n = sum(1 for _ in src.list())
    assert n == 10_000
    assert d.list_calls - calls == 10  # pageSize 1000
    assert time.monotonic() - t0 < 30


def test_incremental_edit_and_delete(gd):
    d, folder, pull, root = gd
    a = d.add_file("a.dcm", folder, b"v1")
    b = d.add_file("b.dcm", folder, b"bb")
    r1 = pull("run1")
    cleanup_landing(root, [f.landing_relpath for f in r1.fetched])
    d.update(a, b"v2 edited")
    d.trash(b)
    r2 = pull("run2")
    assert [f.remote_path for f in r2.fetched] == ["a.dcm"]
    assert r2.deleted_at_source == ["b.dcm"]
    assert landing_files(root) == {"a.dcm": b"v2 edited"}


def test_cut_mid_file_resumes_from_the_last_chunk(gd):
    d, folder, pull, root = gd
    from transforms.sources.gdrive import DriveSource

    data = os.urandom(3 * 1024 * 1024)
    fid = d.add_file("big.dcm", folder, data)
    d.cuts[fid] = [1024 * 1024 + 1000, 1]  # inside the second chunk
    d.media_ranges.clear()
    r = pull("run1", source=DriveSource(d.connection(), folder, chunk_size=1024 * 1024))
    assert r.ok and landing_files(root) == {"big.dcm": data}
    assert d.cuts[fid][1] == 0
    # the first chunk was not downloaded twice: resumed at the second
    assert d.media_ranges.count("bytes=0-1048575") == 1
    assert d.media_ranges.count("bytes=1048576-2097151") >= 2


def test_md5_mismatch_is_retried_then_reported(gd):
    d, folder, pull, root = gd
    ok = d.add_file("flaky.dcm", folder, b"x" * 1000)
    bad = d.add_file("bad.dcm", folder, b"y" * 1000)
    d.corrupt[ok] = 1
    d.corrupt[bad] = 100
    r = pull("run1", retries=2)
    assert [(f.remote_path, f.reason) for f in r.failed] == [("bad.dcm", "hash_mismatch")]
    assert landing_files(root) == {"flaky.dcm": b"x" * 1000}


def test_file_edited_during_listing_is_fetched_in_new_version(gd):
    d, folder, pull, root = gd
    from transforms.sources.gdrive import DriveSource

    fid = d.add_file("a.dcm", folder, b"first")

    class EditAfterListing(DriveSource):
        def list(self):
            entries = list(super().list())
            d.update(fid, b"second, edited")
            yield from entries

    r = pull("run1", source=EditAfterListing(d.connection(), folder))
    assert r.ok and landing_files(root) == {"a.dcm": b"second, edited"}


def test_same_name_twice_and_traversal_names(gd):
    d, folder, pull, root = gd
    d.add_file("scan.dcm", folder, b"one")
    d.add_file("scan.dcm", folder, b"two")
    d.add_file("../../../etc/cron.d/x", folder, b"evil")
    d.add_file("copy.dcm", folder, b"one")  # duplicate content
    r = pull("run1")
    assert r.ok and len(r.fetched) == 3
    assert [s.reason for s in r.skipped] == ["duplicate_content"]
    assert sorted(landing_files(root).values()) == [b"evil", b"one", b"two"]
    for f in r.fetched:
        assert (root.landing / f.landing_relpath).resolve().is_relative_to(root.landing.resolve())


def test_service_account_key_gets_a_readonly_token(gd):
    import json

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    d, folder, pull, root = gd
    d.add_file("a.dcm", folder, b"sa")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info = {
        "type": "service_account", "project_id": "sta-test", "private_key_id": "k1",
        "private_key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()).decode(),
        "client_email": "puller@sta-test.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": f"http://127.0.0.1:{d.port}/token",
    }  # fmt: skip
    conn = dataclasses.replace(d.connection(), password=None,
                               extra={"api_endpoint": d.api_endpoint, "keyfile_dict": json.dumps(info)})  # fmt: skip
    r = pull("run1", conn=conn)
    assert r.ok and landing_files(root) == {"a.dcm": b"sa"}
    assert d.token_grants[-1]["iss"] == "puller@sta-test.iam.gserviceaccount.com"
    assert d.token_grants[-1]["scope"] == "https://www.googleapis.com/auth/drive.readonly"


def test_bad_token_fails_naming_the_connection(gd):
    d, folder, pull, root = gd
    conn = dataclasses.replace(d.connection(), password="expired")
    with pytest.raises(ConnectionNotFound, match="partner_gdrive"):
        pull("run1", conn=conn)
