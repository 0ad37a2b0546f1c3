"""Pull step against the folder source: incremental sync, safety, lifecycle."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from foundation.partners import PartnerConfig

from foundation.paths import PartnerRoot
from transforms.pull import cleanup_landing, pull_partner
from transforms.sources.folder import FolderSource
from transforms.sources.safepath import TEMP_PREFIX, safe_relpath

PROJECT = Path(__file__).resolve().parent.parent


def make_partner(src: Path, pid: str = "p_folder") -> PartnerConfig:
    return PartnerConfig(
        id=pid, name="Folder partner", country="co", region="co", source={"type": "folder", "path": str(src)}
    )


@pytest.fixture()
def env(tmp_path: Path):
    src = tmp_path / "partner_share"
    src.mkdir()
    partner = make_partner(src)
    root = PartnerRoot(tmp_path / "data", "co", partner.id)
    return src, partner, root


def write(p: Path, data: bytes) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def landing_files(root: PartnerRoot) -> dict[str, bytes]:
    return {p.relative_to(root.landing).as_posix(): p.read_bytes() for p in root.landing.rglob("*") if p.is_file()}


def test_first_pull_copies_every_file_with_hashes(env):
    src, partner, root = env
    write(src / "study1" / "a.dcm", b"A" * 1000)
    write(src / "study1" / "report.pdf", b"%PDF-1.4 fake")
    write(src / "b.dcm", b"B" * 10)
    report = pull_partner(partner, root, "run1")
    assert report.ok and report.listing_complete
    assert sorted(f.landing_relpath for f in report.fetched) == ["b.dcm", "study1/a.dcm", "study1/report.pdf"]
    assert landing_files(root)["study1/a.dcm"] == b"A" * 1000
    by_path = {f.remote_path: f for f in report.fetched}
    assert by_path["b.dcm"].sha256 == hashlib.sha256(b"B" * 10).hexdigest()
    assert by_path["b.dcm"].size == 10
    json.dumps(report.to_dict())  # serialisable for XCom / CLI


def test_second_pull_fetches_only_new_and_changed_files(env):
    src, partner, root = env
    write(src / "a.dcm", b"old")
    write(src / "b.dcm", b"bbb")
    r1 = pull_partner(partner, root, "run1")
    cleanup_landing(root, [f.landing_relpath for f in r1.fetched])
    time.sleep(0.01)
    write(src / "a.dcm", b"new content")  # changed at the source
    write(src / "c.dcm", b"ccc")  # new
    r2 = pull_partner(partner, root, "run2")
    assert sorted(f.remote_path for f in r2.fetched) == ["a.dcm", "c.dcm"]
    assert [(s.remote_path, s.reason) for s in r2.skipped] == [("b.dcm", "unchanged")]
    assert landing_files(root) == {"a.dcm": b"new content", "c.dcm": b"ccc"}


def test_deleted_file_is_recorded_not_forgotten(env):
    src, partner, root = env
    write(src / "a.dcm", b"a")
    write(src / "b.dcm", b"b")
    r1 = pull_partner(partner, root, "run1")
    cleanup_landing(root, [f.landing_relpath for f in r1.fetched])
    (src / "b.dcm").unlink()
    r2 = pull_partner(partner, root, "run2")
    assert r2.deleted_at_source == ["b.dcm"]
    r3 = pull_partner(partner, root, "run3")
    assert r3.deleted_at_source == []  # reported once, by the run that noticed


def test_files_of_a_failed_run_are_reported_again_until_cleaned_up(env):
    src, partner, root = env
    write(src / "a.dcm", b"a")
    pull_partner(partner, root, "run1")  # run1's processing "fails": no cleanup
    r2 = pull_partner(partner, root, "run2")
    assert [(f.remote_path, f.carried_over) for f in r2.fetched] == [("a.dcm", True)]
    cleanup_landing(root, [f.landing_relpath for f in r2.fetched])
    r3 = pull_partner(partner, root, "run3")
    assert r3.fetched == [] and [s.reason for s in r3.skipped] == ["unchanged"]


def test_duplicate_upload_is_fetched_once(env):
    src, partner, root = env
    write(src / "scan.dcm", b"same bytes" * 100)
    write(src / "copy of scan.dcm", b"same bytes" * 100)
    r1 = pull_partner(partner, root, "run1")
    assert len(r1.fetched) == 1
    assert [s.reason for s in r1.skipped] == ["duplicate_content"]
    assert len(landing_files(root)) == 1
    cleanup_landing(root, [f.landing_relpath for f in r1.fetched])
    # Uploaded again months later under a third name: still processed once.
    write(src / "again" / "scan-2.dcm", b"same bytes" * 100)
    r2 = pull_partner(partner, root, "run2")
    assert r2.fetched == []
    assert ("again/scan-2.dcm", "duplicate_content") in [(s.remote_path, s.reason) for s in r2.skipped]


def test_hostile_names_land_inside_landing_with_original_kept(env, tmp_path):
    src, partner, root = env
    names = ["..\\..\\evil.dcm", "a:b?.dcm", "con.txt", "x" * 250 + ".dcm", "tab\there.dcm", ".sta-part-x.part"]
    for n in names:
        write(src / n, n.encode())
    # An undecodable byte in a name (POSIX servers allow any bytes but / and NUL).
    with open(os.path.join(os.fsencode(src), b"bad\xffname.dcm"), "wb") as f:
        f.write(b"raw")
    r = pull_partner(partner, root, "run1")
    assert not r.failed
    assert len(r.fetched) == len(names) + 1
    landing = root.landing.resolve()
    for f in r.fetched:
        p = (root.landing / f.landing_relpath).resolve()
        assert p.is_relative_to(landing)
        assert len(p.name.encode()) <= 255
        assert not p.name.startswith(TEMP_PREFIX)
    assert {f.remote_path for f in r.fetched} >= set(names)
    assert not (tmp_path / "evil.dcm").exists()


@pytest.mark.parametrize(
    "remote",
    ["../../etc/passwd", "/etc/passwd", "a/../../b", "..", "", "a\x00b", "C:\\Windows\\x", "./.", "a/" * 100 + "f"],
)
def test_safe_relpath_never_escapes(remote):
    rel = safe_relpath(remote)
    parts = Path(rel).parts
    assert rel and not Path(rel).is_absolute() and ".." not in parts and "\x00" not in rel
    assert all(len(p.encode()) <= 180 for p in parts)


def test_safe_relpath_neutralises_invisible_and_control_characters():
    rel = safe_relpath("report\u202egpj.exe")
    assert "\u202e" not in rel and rel.startswith("report_gpj")
    assert "\n" not in safe_relpath("a\nb.dcm") and "\u2028" not in safe_relpath("a\u2028b")


def test_safe_relpath_keeps_distinct_names_distinct():
    assert safe_relpath("a:b.dcm") != safe_relpath("a_b.dcm")
    assert safe_relpath("study/1.dcm") == "study/1.dcm"
    assert safe_relpath("Ñandú/informe.pdf") == "Ñandú/informe.pdf"


def test_symlinks_and_special_files_are_skipped_not_followed(env, tmp_path):
    src, partner, root = env
    secret = write(tmp_path / "outside" / "secret.txt", b"do not copy")
    write(src / "ok.dcm", b"ok")
    os.symlink(secret, src / "link.dcm")
    os.symlink(tmp_path / "outside", src / "linkdir")
    os.mkfifo(src / "pipe")
    r = pull_partner(partner, root, "run1")
    assert [f.remote_path for f in r.fetched] == ["ok.dcm"]
    reasons = {s.remote_path: s.reason for s in r.skipped}
    assert reasons == {"link.dcm": "symlink", "linkdir": "symlink", "pipe": "not_regular_file"}
    assert b"do not copy" not in b"".join(landing_files(root).values())


class GrowingFolder(FolderSource):
    """A partner still copying a file in: it grows while the first read is under way."""

    def __init__(self, root: Path, victim: str) -> None:
        super().__init__(root, chunk_size=4096)
        self.victim = victim
        self.grown = False

    def open_stream(self, entry, offset=0):
        for i, chunk in enumerate(super().open_stream(entry, offset)):
            if entry.path == self.victim and not self.grown and i == 1:
                self.grown = True
                with open(self.root / self.victim, "ab") as f:
                    f.write(b"Z" * 5000)
            yield chunk


def test_file_changing_during_fetch_is_fetched_in_its_final_version(env):
    src, partner, root = env
    write(src / "growing.dcm", b"A" * 20000)
    source = GrowingFolder(src, "growing.dcm")
    r = pull_partner(partner, root, "run1", source=source, backoff=0)
    assert source.grown and not r.failed
    assert landing_files(root)["growing.dcm"] == b"A" * 20000 + b"Z" * 5000
    assert r.fetched[0].size == 25000


def test_file_changed_between_listing_and_fetch(env):
    src, partner, root = env
    write(src / "a.dcm", b"v1")

    class ChangeAfterListing(FolderSource):
        def list(self):
            entries = list(super().list())
            time.sleep(0.01)
            write(src / "a.dcm", b"version two")
            yield from entries

    r = pull_partner(partner, root, "run1", source=ChangeAfterListing(src), backoff=0)
    assert not r.failed
    assert landing_files(root) == {"a.dcm": b"version two"}


def test_vanished_file_fails_with_reason_and_leaves_nothing(env):
    src, partner, root = env
    write(src / "a.dcm", b"a")
    write(src / "b.dcm", b"b")

    class DeleteAfterListing(FolderSource):
        def list(self):
            entries = list(super().list())
            (src / "a.dcm").unlink()
            yield from entries

    r = pull_partner(partner, root, "run1", source=DeleteAfterListing(src), backoff=0)
    assert [(f.remote_path, f.reason) for f in r.failed] == [("a.dcm", "vanished")]
    assert landing_files(root) == {"b.dcm": b"b"}


def test_interrupted_listing_does_not_mark_deletions(env):
    src, partner, root = env
    for i in range(5):
        write(src / f"f{i}.dcm", bytes([i]) * 3)
    r1 = pull_partner(partner, root, "run1")
    cleanup_landing(root, [f.landing_relpath for f in r1.fetched])

    class BrokenListing(FolderSource):
        def list(self):
            for i, e in enumerate(super().list()):
                if i == 2:
                    raise ConnectionResetError("listing dropped")
                yield e

    r2 = pull_partner(partner, root, "run2", source=BrokenListing(src))
    assert not r2.listing_complete and not r2.ok
    assert r2.deleted_at_source == []
    assert r2.failed[0].reason == "listing_failed"


def test_leftover_temp_files_are_swept(env):
    src, partner, root = env
    write(src / "a.dcm", b"a")
    stale = write(root.landing / "x" / f"{TEMP_PREFIX}dead.part", b"partial")
    r = pull_partner(partner, root, "run1")
    assert not stale.exists()
    assert landing_files(root) == {"a.dcm": b"a"}
    assert r.ok


def test_cleanup_deletes_landing_copies_and_reports_them(env):
    src, partner, root = env
    write(src / "d1" / "a.dcm", b"a" * 10)
    write(src / "b.dcm", b"b" * 5)
    r = pull_partner(partner, root, "run1")
    out = cleanup_landing(root, [f.landing_relpath for f in r.fetched] + ["../../etc/passwd"])
    assert sorted(out["deleted"]) == ["b.dcm", "d1/a.dcm"]
    assert out["bytes_freed"] == 15
    assert out["refused"] == ["../../etc/passwd"]
    assert out["files_remaining_in_landing"] == 0
    assert landing_files(root) == {}
    assert out["state_rows_marked_done"] == 2


def test_ten_thousand_files_in_one_folder(env):
    src, partner, root = env
    src.joinpath("big").mkdir()
    for i in range(10_000):
        (src / "big" / f"img{i:05d}.dcm").write_bytes(b"%05d" % i)
    t0 = time.monotonic()
    r = pull_partner(partner, root, "run1")
    first = time.monotonic() - t0
    assert len(r.fetched) == 10_000 and r.ok
    assert len(list((root.landing / "big").iterdir())) == 10_000
    cleanup_landing(root, [f.landing_relpath for f in r.fetched])
    t0 = time.monotonic()
    r2 = pull_partner(partner, root, "run2")
    second = time.monotonic() - t0
    assert len(r2.skipped) == 10_000 and not r2.fetched
    assert first < 90 and second < 45, (first, second)  # generous: CI boxes are shared


def test_sta_pull_cli_prints_the_report(env, tmp_path):
    src, partner, root = env
    write(src / "a.dcm", b"a")
    partners = tmp_path / "partners"
    partners.mkdir()
    (partners / "p_folder.yaml").write_text(
        f"id: p_folder\nname: Folder\ncountry: co\nregion: co\nsource:\n  type: folder\n  path: {src}\n"
    )
    env_vars = dict(os.environ, STA_PARTNERS_DIR=str(partners), STA_DATA_ROOT=str(tmp_path / "data"))
    proc = subprocess.run(
        [sys.executable, "-m", "sta.cli", "pull", "--partner", "p_folder"],
        cwd=PROJECT, env=env_vars, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [f["remote_path"] for f in out["fetched"]] == ["a.dcm"]
    assert (root.landing / "a.dcm").read_bytes() == b"a"


def test_missing_connection_fails_naming_it(tmp_path, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_HOSPITAL_SFTP", raising=False)
    partner = PartnerConfig(
        id="p_sftp", name="x", country="co", region="co",
        source={"type": "sftp", "conn_id": "hospital_sftp", "path": "/in"},
    )  # fmt: skip
    root = PartnerRoot(tmp_path / "data", "co", partner.id)
    from transforms.sources.base import ConnectionNotFound

    with pytest.raises(ConnectionNotFound, match="hospital_sftp"):
        pull_partner(partner, root, "run1")


def test_env_connection_resolver_reads_airflow_uri_and_json(monkeypatch):
    from transforms.pull import env_connection_resolver

    monkeypatch.setenv(
        "AIRFLOW_CONN_MY_S3", "aws://AKIA%2FX:s%40cret@/?endpoint_url=http%3A%2F%2F127.0.0.1%3A9000&region_name=eu"
    )
    c = env_connection_resolver("my_s3")
    assert (c.conn_type, c.login, c.password) == ("aws", "AKIA/X", "s@cret")
    assert c.extra == {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu"}
    assert "s@cret" not in repr(c)
    monkeypatch.setenv(
        "AIRFLOW_CONN_MY_SFTP",
        json.dumps({"conn_type": "sftp", "host": "h", "port": 2222, "login": "u", "extra": {"no_host_key_check": True}}),
    )
    c = env_connection_resolver("my_sftp")
    assert (c.host, c.port, c.login, c.extra) == ("h", 2222, "u", {"no_host_key_check": True})


def test_pull_memory_is_bounded_for_a_big_file(env):
    """A 256 MiB file streams through 1 MiB chunks: peak RSS grows by far less than the file."""
    import resource

    src, partner, root = env
    big = src / "big.bin"
    with open(big, "wb") as f:
        f.truncate(256 * 1024 * 1024)  # sparse: cheap to create
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = pull_partner(partner, root, "run1")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert r.ok and r.fetched[0].size == 256 * 1024 * 1024
    assert (after - before) < 64 * 1024, f"peak RSS grew by {(after - before) / 1024:.0f} MiB"


def test_report_is_written_beside_the_run_and_a_concurrent_pull_is_refused(env):
    src, partner, root = env
    write(src / "a.dcm", b"a")

    from transforms.sources.base import SourceError

    class SlowListing(FolderSource):
        def list(self):
            with pytest.raises(SourceError, match="another pull of partner p_folder"):
                pull_partner(partner, root, "run-concurrent")
            yield from super().list()

    r = pull_partner(partner, root, "scheduled__2026-01-01T00:00:00+00:00", source=SlowListing(src))
    assert r.ok
    saved = json.loads(Path(r.report_path).read_text())
    assert saved["fetched"][0]["remote_path"] == "a.dcm"
    assert Path(r.report_path).parent == root.work("scheduled__2026-01-01T00:00:00+00:00")


def test_file_withdrawn_before_processing_is_removed_from_landing(env):
    src, partner, root = env
    write(src / "wrong-patient.dcm", b"uploaded by mistake")
    write(src / "ok.dcm", b"ok")
    pull_partner(partner, root, "run1")  # run1's processing fails: no cleanup
    (src / "wrong-patient.dcm").unlink()
    r2 = pull_partner(partner, root, "run2")
    assert r2.deleted_at_source == ["wrong-patient.dcm"]
    assert r2.removed_from_landing == ["wrong-patient.dcm"]
    assert [f.remote_path for f in r2.fetched] == ["ok.dcm"]
    assert landing_files(root) == {"ok.dcm": b"ok"}


def test_file_renamed_before_processing_is_processed_under_its_new_name(env):
    src, partner, root = env
    write(src / "scan.dcm", b"the only copy")
    pull_partner(partner, root, "run1")  # not processed (run failed)
    (src / "scan.dcm").rename(src / "scan-renamed.dcm")
    r2 = pull_partner(partner, root, "run2")
    assert [(f.remote_path, f.landing_relpath) for f in r2.fetched] == [("scan-renamed.dcm", "scan.dcm")]
    assert r2.skipped == [] and r2.removed_from_landing == []
    assert landing_files(root) == {"scan.dcm": b"the only copy"}
    cleanup_landing(root, [f.landing_relpath for f in r2.fetched])
    r3 = pull_partner(partner, root, "run3")
    assert r3.fetched == [] and [s.reason for s in r3.skipped] == ["unchanged"]


def test_unprocessed_file_replaced_by_a_copy_of_another_leaves_landing(env):
    src, partner, root = env
    write(src / "b.dcm", b"bbb")
    r1 = pull_partner(partner, root, "run1")
    cleanup_landing(root, [f.landing_relpath for f in r1.fetched])  # b processed
    write(src / "a.dcm", b"first a")
    pull_partner(partner, root, "run2")  # a landed, run2 failed
    time.sleep(0.01)
    write(src / "a.dcm", b"bbb")  # the partner overwrote a with b's bytes
    r3 = pull_partner(partner, root, "run3")
    assert [(s.remote_path, s.reason) for s in r3.skipped] == [("a.dcm", "duplicate_content"), ("b.dcm", "unchanged")]
    assert r3.removed_from_landing == ["a.dcm"]
    assert landing_files(root) == {}
