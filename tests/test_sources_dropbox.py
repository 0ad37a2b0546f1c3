"""Dropbox connector: the official SDK, over real TLS, against a local Dropbox API server."""

from __future__ import annotations

import dataclasses
import os
import time

import pytest
from support.dropbox import content_hash
from support.helpers import landing_files, make_partner, make_root, resolver

from transforms.pull import cleanup_landing, pull_partner
from transforms.sources.base import ConnectionNotFound, DropboxContentHasher


@pytest.fixture()
def dbx(dropbox_server, tmp_path):  # noqa: F811
    dropbox_server.cuts.clear()
    dropbox_server.corrupt.clear()
    folder = f"/Hospital-{time.monotonic_ns()}"
    partner = make_partner("p_dropbox", type="dropbox", conn_id="partner_dropbox", path=folder)
    root = make_root(tmp_path, partner)

    def put(rel: str, data: bytes, **kw):
        return dropbox_server.put(f"{folder}/{rel}", data, **kw)

    dropbox_server.mkdir(folder)

    def pull(run: str, conn=None, **kw):
        return pull_partner(partner, root, run, resolver(conn or dropbox_server.connection()), backoff=0, **kw)

    return dropbox_server, folder, put, pull, root


def test_content_hasher_matches_dropbox_reference():
    data = os.urandom(9 * 1024 * 1024 + 3)  # three blocks, the last partial
    h = DropboxContentHasher()
    for i in range(0, len(data), 1_000_003):  # odd chunking must not matter
        h.update(data[i : i + 1_000_003])
    assert h.hexdigest() == content_hash(data)


def test_tree_is_fetched_and_not_downloadable_skipped(dbx):
    d, folder, put, pull, root = dbx
    put("Study A/img1.dcm", b"1" * 3000)
    put("report.pdf", b"%PDF")
    put("notes.paper", b"", downloadable=False)
    r = pull("run1")
    assert r.ok
    assert sorted(f.landing_relpath for f in r.fetched) == ["Study A/img1.dcm", "report.pdf"]
    assert ("notes.paper", "not_downloadable") in [(s.remote_path, s.reason) for s in r.skipped]
    assert all(f.source_hash.startswith("dropbox:") for f in r.fetched)


def test_listing_continues_through_pages(dbx):
    d, folder, put, pull, root = dbx
    from transforms.sources.dropbox import DropboxSource

    for i in range(10_000):
        put(f"bulk/f{i:05d}.dcm", b"")
    calls = d.list_calls
    t0 = time.monotonic()
    n = sum(1 for _ in DropboxSource(d.connection(), folder).list())
    assert n == 10_000
    assert d.list_calls - calls == 6  # list_folder + 5 × list_folder/continue (limit 2000)
    assert time.monotonic() - t0 < 30


def test_incremental_edit_and_delete(dbx):
    d, folder, put, pull, root = dbx
    put("a.dcm", b"v1")
    put("b.dcm", b"bb")
    r1 = pull("run1")
    cleanup_landing(root, [f.landing_relpath for f in r1.fetched])
    put("a.dcm", b"v2, new revision")
    d.delete(f"{folder}/b.dcm")
    r2 = pull("run2")
    assert [f.remote_path for f in r2.fetched] == ["a.dcm"]
    assert r2.deleted_at_source == ["b.dcm"]
    assert landing_files(root) == {"a.dcm": b"v2, new revision"}


def test_cut_mid_file_resumes_with_range(dbx):
    d, folder, put, pull, root = dbx
    data = os.urandom(3 * 1024 * 1024)
    put("big.dcm", data)
    d.cuts[f"{folder}/big.dcm".lower()] = [1_500_000, 1]
    d.ranges.clear()
    r = pull("run1")
    assert r.ok and landing_files(root)["big.dcm"] == data
    assert d.ranges and d.ranges[0].startswith("bytes=") and d.ranges[0] != "bytes=0-"


def test_content_hash_mismatch_retried_then_reported(dbx):
    d, folder, put, pull, root = dbx
    put("flaky.dcm", b"f" * 5000)
    put("bad.dcm", b"b" * 5000)
    d.corrupt[f"{folder}/flaky.dcm".lower()] = 1
    d.corrupt[f"{folder}/bad.dcm".lower()] = 100
    r = pull("run1", retries=2)
    assert [(f.remote_path, f.reason) for f in r.failed] == [("bad.dcm", "hash_mismatch")]
    assert landing_files(root) == {"flaky.dcm": b"f" * 5000}


def test_file_replaced_during_listing_fetches_new_revision(dbx):
    d, folder, put, pull, root = dbx
    from transforms.sources.dropbox import DropboxSource

    put("a.dcm", b"first")

    class ReplaceAfterListing(DropboxSource):
        def list(self):
            entries = list(super().list())
            put("a.dcm", b"second revision")
            yield from entries

    r = pull("run1", source=ReplaceAfterListing(d.connection(), folder))
    assert r.ok and landing_files(root)["a.dcm"] == b"second revision"


def test_duplicate_and_hostile_names(dbx):
    d, folder, put, pull, root = dbx
    put("scan.dcm", b"same bytes")
    put("scan (1).dcm", b"same bytes")
    put("..\\..\\x.dcm", b"x")
    put("con", b"c")
    r = pull("run1")
    assert r.ok
    assert [s.reason for s in r.skipped] == ["duplicate_content"]
    for f in r.fetched:
        assert (root.landing / f.landing_relpath).resolve().is_relative_to(root.landing.resolve())


def test_bad_token_fails_naming_the_connection(dbx):
    d, folder, put, pull, root = dbx
    conn = dataclasses.replace(d.connection(), password="revoked")
    with pytest.raises(ConnectionNotFound, match="partner_dropbox"):
        pull("run1", conn=conn)
