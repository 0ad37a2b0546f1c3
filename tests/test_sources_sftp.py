"""SFTP connector (paramiko) against a real asyncssh SFTP server on loopback."""

from __future__ import annotations

import dataclasses
import os
import time
import uuid

import pytest
from support.helpers import landing_files, make_partner, make_root, resolver

from transforms.pull import cleanup_landing, pull_partner
from transforms.sources.base import ConnectionNotFound

# paramiko's readv prefetch thread reports the connection the tests cut on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")


@pytest.fixture()
def sftp(sftp_server, tmp_path):  # noqa: F811
    sftp_server.cuts.clear()
    folder = f"in-{uuid.uuid4().hex[:8]}"
    base = sftp_server.root / folder
    base.mkdir()
    partner = make_partner("p_sftp", type="sftp", conn_id="partner_sftp", path=f"/{folder}")
    root = make_root(tmp_path, partner)

    def put(rel: str, data: bytes):
        p = base / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p

    def pull(run: str, conn=None, **kw):
        return pull_partner(partner, root, run, resolver(conn or sftp_server.connection()), backoff=0, **kw)

    return sftp_server, base, put, pull, root


def test_pull_fetches_tree_and_is_incremental(sftp):
    server, base, put, pull, root = sftp
    put("s1/a.dcm", b"a" * 100_000)
    put("s1/b.pdf", b"%PDF")
    put("c.dcm", b"c")
    r1 = pull("run1")
    assert r1.ok and sorted(f.landing_relpath for f in r1.fetched) == ["c.dcm", "s1/a.dcm", "s1/b.pdf"]
    assert landing_files(root)["s1/a.dcm"] == b"a" * 100_000
    cleanup_landing(root, [f.landing_relpath for f in r1.fetched])
    time.sleep(1.1)  # SFTP v3 mtimes are whole seconds
    put("c.dcm", b"c v2")
    (base / "s1" / "b.pdf").unlink()
    r2 = pull("run2")
    assert [f.remote_path for f in r2.fetched] == ["c.dcm"]
    assert r2.deleted_at_source == ["s1/b.pdf"]
    assert [s.reason for s in r2.skipped] == ["unchanged"]


def test_connection_cut_mid_file_reconnects_and_resumes(sftp):
    server, base, put, pull, root = sftp
    data = os.urandom(5 * 1024 * 1024)
    put("big.dcm", data)
    put("small.dcm", b"s")
    server.cut_after("big.dcm", 2 * 1024 * 1024, times=1)
    r = pull("run1")
    assert server.cuts_fired >= 1
    assert r.ok, r.failed
    assert landing_files(root) == {"big.dcm": data, "small.dcm": b"s"}


def test_connection_cut_every_time_fails_cleanly(sftp):
    server, base, put, pull, root = sftp
    put("big.dcm", os.urandom(1024 * 1024))
    put("ok.dcm", b"ok")
    server.cut_after("big.dcm", 100_000, times=100)
    r = pull("run1", retries=1)
    assert [(f.remote_path, f.reason) for f in r.failed] == [("big.dcm", "transfer_failed")]
    assert landing_files(root) == {"ok.dcm": b"ok"}


def test_file_growing_after_listing_is_fetched_whole(sftp):
    server, base, put, pull, root = sftp
    from transforms.sources.sftp import SFTPSource

    put("growing.dcm", b"A" * 70_000)

    class AppendAfterListing(SFTPSource):
        def list(self):
            entries = list(super().list())
            with open(base / "growing.dcm", "ab") as f:
                f.write(b"B" * 30_000)
            yield from entries

    r = pull("run1", source=AppendAfterListing(server.connection(), f"/{base.name}"))
    assert r.ok and landing_files(root) == {"growing.dcm": b"A" * 70_000 + b"B" * 30_000}


def test_symlink_on_server_is_skipped(sftp, tmp_path):
    server, base, put, pull, root = sftp
    put("ok.dcm", b"ok")
    os.symlink("/etc/passwd", base / "passwd.dcm")
    r = pull("run1")
    assert [f.remote_path for f in r.fetched] == ["ok.dcm"]
    assert [(s.remote_path, s.reason) for s in r.skipped] == [("passwd.dcm", "symlink")]


def test_hostile_names_and_duplicates(sftp):
    server, base, put, pull, root = sftp
    put("..evil..dcm", b"x1")
    put("a\\..\\..\\b.dcm", b"x2")
    put("dup1.dcm", b"same")
    put("dup2.dcm", b"same")
    r = pull("run1")
    assert r.ok and len(r.fetched) == 3
    assert [s.reason for s in r.skipped] == ["duplicate_content"]
    for f in r.fetched:
        assert (root.landing / f.landing_relpath).resolve().is_relative_to(root.landing.resolve())


def test_wrong_host_key_is_refused_naming_the_connection(sftp):
    server, base, put, pull, root = sftp
    import asyncssh

    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode()
    conn = dataclasses.replace(server.connection(), extra={"host_key": other})
    with pytest.raises(ConnectionNotFound, match="partner_sftp.*host key"):
        pull("run1", conn=conn)


def test_wrong_password_fails_naming_the_connection(sftp):
    server, base, put, pull, root = sftp
    conn = dataclasses.replace(server.connection(), password="nope")
    with pytest.raises(ConnectionNotFound, match="partner_sftp"):
        pull("run1", conn=conn)


def test_many_files_in_one_folder(sftp):
    server, base, put, pull, root = sftp
    for i in range(1000):
        (base / f"f{i:05d}.dcm").write_bytes(b"%d" % i)
    t0 = time.monotonic()
    r = pull("run1")
    assert r.ok and len(r.fetched) == 1000
    assert time.monotonic() - t0 < 60


def test_ten_thousand_files_listed_through_readdir_pages(sftp):
    server, base, put, pull, root = sftp
    from transforms.sources.sftp import SFTPSource

    big = base / "big"
    big.mkdir()
    for i in range(10_000):
        (big / f"img{i:05d}.dcm").write_bytes(b"")
    src = SFTPSource(server.connection(), f"/{base.name}")
    t0 = time.monotonic()
    names = [e.path for e in src.list()]
    src.close()
    assert len(names) == 10_000 and names[0] == "big/img00000.dcm"
    assert time.monotonic() - t0 < 30


def test_big_file_streams_in_bounded_memory(sftp):
    import tracemalloc

    server, base, put, pull, root = sftp
    size = 48 * 1024 * 1024
    with open(base / "big.dcm", "wb") as f:
        for _ in range(48):
            f.write(os.urandom(1024 * 1024))
    tracemalloc.start()
    try:
        r = pull("run1")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.ok and r.fetched[0].size == size
    assert peak < 16 * 1024 * 1024, f"peak Python allocations {peak / 2**20:.1f} MiB for a 48 MiB file"
