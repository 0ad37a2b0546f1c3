"""Reactive syncs: the new-stable-files watch, its Airflow trigger, and the DAG scheduled on it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from transforms.source_watch import SourceWatch, fetched_versions
from transforms.sources.folder import FolderSource

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT / "plugins"))  # what Airflow does for every process

REACTIVE_YAML = """\
id: {pid}
name: Reactive test partner
country: co
region: co
source: {{type: folder, path: {folder}}}
reactive: true
reactive_poll_seconds: 1
reactive_stable_seconds: 0.2
"""


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def run_async(coro):  # noqa: ANN001, ANN201
    """``asyncio.run`` in a thread of its own: the browser tests' sync Playwright keeps an event loop
    running in the main thread for the whole session, where ``asyncio.run`` refuses to start."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _watch(folder: Path, known: set | None = None, stable: float = 30.0) -> tuple[SourceWatch, Clock]:
    clock = Clock()
    src = FolderSource(folder)
    return SourceWatch(src.list, lambda: set(known or ()), stable, clock), clock


def test_a_new_file_fires_once_after_it_stops_changing(tmp_path: Path) -> None:
    (tmp_path / "a.dcm").write_bytes(b"x" * 10)
    watch, clock = _watch(tmp_path)
    assert watch.poll().ready == 0  # first sight: not yet known to be stable
    clock.t = 10
    assert watch.poll().ready == 0
    clock.t = 31
    r = watch.poll()
    assert (r.ready, r.listed) == (1, 1)
    clock.t = 60
    assert watch.poll().ready == 0  # signalled already


def test_a_file_still_being_written_waits(tmp_path: Path) -> None:
    f = tmp_path / "big.dcm"
    f.write_bytes(b"x")
    watch, clock = _watch(tmp_path)
    watch.poll()
    for t in (20, 40, 60):
        clock.t = t
        with f.open("ab") as fh:
            fh.write(b"more")  # a new version every poll: its clock restarts
        assert watch.poll().ready == 0
    clock.t = 95
    assert watch.poll().ready == 1


def test_files_already_pulled_and_partial_uploads_never_fire(tmp_path: Path) -> None:
    (tmp_path / "done.dcm").write_bytes(b"a")
    (tmp_path / "upload.dcm.part").write_bytes(b"b")
    (tmp_path / ".hidden").write_bytes(b"c")
    entry = next(e for e in FolderSource(tmp_path).list() if e.path == "done.dcm")
    watch, clock = _watch(tmp_path, known={(entry.remote_id, entry.version)})
    watch.poll()
    clock.t = 100
    r = watch.poll()
    assert (r.listed, r.new, r.ready) == (3, 0, 0)


def test_a_changed_file_fires_again_and_the_event_names_no_file(tmp_path: Path) -> None:
    f = tmp_path / "PEREZ_JUAN_12345678.pdf"
    f.write_bytes(b"v1")
    watch, clock = _watch(tmp_path, stable=5)
    watch.poll()
    clock.t = 6
    first = watch.poll()
    assert first.ready == 1
    f.write_bytes(b"version 2")
    clock.t = 7
    watch.poll()
    clock.t = 13
    second = watch.poll()
    assert second.ready == 1 and second.digest != first.digest
    event = second.event("p1")
    assert event == {"partner_id": "p1", "new_files": 1, "batch": second.digest}
    assert "PEREZ" not in repr(event) and "12345678" not in repr(event)


def test_fetched_versions_reads_the_pulls_sync_state(tmp_path: Path) -> None:
    from transforms.sources.base import RemoteEntry
    from transforms.sync_state import SyncState

    db = tmp_path / "sync.sqlite"
    assert fetched_versions(db) == set()
    with SyncState(db) as st:
        st.record_fetched(RemoteEntry("r1", "a.dcm", 1, None, "v1"), "0" * 64, "a.dcm", "run1")
    assert fetched_versions(db) == {("r1", "v1")}


@pytest.fixture()
def reactive_partner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    partners, incoming = tmp_path / "partners", tmp_path / "incoming"
    partners.mkdir()
    incoming.mkdir()
    pid = "reactive_co"
    (partners / f"{pid}.yaml").write_text(REACTIVE_YAML.format(pid=pid, folder=incoming))
    monkeypatch.setenv("STA_PARTNERS_DIR", str(partners))
    monkeypatch.setenv("STA_DATA_ROOT", str(tmp_path / "data"))
    return pid, incoming


def test_the_trigger_yields_an_event_when_a_file_arrives(reactive_partner: tuple[str, Path]) -> None:
    from sta_reactive import NewStableFilesTrigger

    pid, incoming = reactive_partner
    trigger = NewStableFilesTrigger(pid, poll_seconds=0.1, stable_seconds=0.3)
    classpath, kwargs = trigger.serialize()
    assert classpath == "sta_reactive.NewStableFilesTrigger"
    assert NewStableFilesTrigger(**kwargs).serialize() == (classpath, kwargs)

    async def scenario() -> list:
        gen = trigger.run()
        first = asyncio.ensure_future(gen.__anext__())
        await asyncio.sleep(0.5)
        assert not first.done()  # an empty folder fires nothing
        (incoming / "study1.dcm").write_bytes(b"DICM" * 10)
        event = await asyncio.wait_for(first, timeout=10)
        second = asyncio.ensure_future(gen.__anext__())
        await asyncio.sleep(0.8)
        assert not second.done()  # the same file does not fire twice
        (incoming / "study2.dcm").write_bytes(b"DICM" * 10)
        (incoming / "study3.dcm").write_bytes(b"DICM" * 10)
        event2 = await asyncio.wait_for(second, timeout=10)
        await gen.aclose()
        return [event, event2]

    events = run_async(scenario())
    assert [e.payload["new_files"] for e in events] == [1, 2]
    assert all(e.payload["partner_id"] == pid for e in events)


def test_the_trigger_waits_for_a_folder_that_does_not_exist_yet(reactive_partner: tuple[str, Path]) -> None:
    from sta_reactive import NewStableFilesTrigger

    pid, incoming = reactive_partner
    incoming.rmdir()
    trigger = NewStableFilesTrigger(pid, poll_seconds=0.1, stable_seconds=0.0)

    async def scenario():  # noqa: ANN202
        gen = trigger.run()
        nxt = asyncio.ensure_future(gen.__anext__())
        await asyncio.sleep(0.4)
        assert not nxt.done()
        incoming.mkdir()
        (incoming / "a.pdf").write_bytes(b"%PDF-1.4")
        event = await asyncio.wait_for(nxt, timeout=10)
        await gen.aclose()
        return event

    assert run_async(scenario()).payload["new_files"] == 1


def test_a_reactive_partner_dag_is_scheduled_on_a_watched_asset(reactive_partner: tuple[str, Path],
                                                                 airflow_db: None) -> None:
    from airflow.dag_processing.dagbag import DagBag

    pid, _ = reactive_partner
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags[f"ingest_{pid}"]
    assets = [a for a in dag.timetable.asset_condition.objects if hasattr(a, "watchers")]
    watched = [a for a in assets if a.watchers]
    assert [a.name for a in watched] == [f"incoming_{pid}"]
    assert type(watched[0].watchers[0].trigger).__name__ == "NewStableFilesTrigger"


def test_trigger_form_options_narrow_repull_and_dry_run_the_pull(reactive_partner: tuple[str, Path]) -> None:
    from foundation.partners import get_partner
    from transforms.pull import PullOptions, pull_partner

    pid, incoming = reactive_partner
    (incoming / "2026" / "03").mkdir(parents=True)
    (incoming / "2026" / "04").mkdir(parents=True)
    (incoming / "2026" / "03" / "a.dcm").write_bytes(b"a")
    (incoming / "2026" / "04" / "b.dcm").write_bytes(b"b")
    old = incoming / "2026" / "04" / "old.dcm"
    old.write_bytes(b"old")
    os.utime(old, (1_600_000_000, 1_600_000_000))  # 2020
    partner = get_partner(pid)
    root = partner.root()

    dry = pull_partner(partner, root, "r0", options=PullOptions(dry_run=True))
    assert (dry.would_fetch, len(dry.fetched)) == (3, 0)
    assert not root.landing.exists() or not any(root.landing.rglob("*.dcm"))  # nothing landed, no state

    sub = pull_partner(partner, root, "r1", options=PullOptions.from_params({"subfolder": "2026/03/"}))
    assert [f.landing_relpath for f in sub.fetched] == ["2026/03/a.dcm"]
    since = pull_partner(partner, root, "r2", options=PullOptions.from_params({"since": "2025-01-01T00:00:00Z"}))
    assert {f.landing_relpath for f in since.fetched} == {"2026/03/a.dcm", "2026/04/b.dcm"}
    assert {f.landing_relpath for f in since.fetched if f.carried_over} == {"2026/03/a.dcm"}
    assert since.deleted_at_source == []  # a narrowed listing never marks unseen files deleted

    from transforms.pull import cleanup_landing

    cleanup_landing(root, ["2026/03/a.dcm", "2026/04/b.dcm"])  # a successful run processed them
    assert [f.landing_relpath for f in pull_partner(partner, root, "r3").fetched] == ["2026/04/old.dcm"]
    cleanup_landing(root, ["2026/04/old.dcm"])
    assert pull_partner(partner, root, "r4").fetched == []  # nothing new
    full = pull_partner(partner, root, "r5", options=PullOptions(full=True))
    assert len(full.fetched) == 3  # re-pull everything
    with pytest.raises(ValueError):
        PullOptions(subfolder="../other_partner")


def test_a_bucket_is_watched_too_and_a_pulled_object_no_longer_fires(s3_server, tmp_path: Path) -> None:  # noqa: ANN001
    from support.helpers import make_partner, make_root, resolver

    from transforms.pull import pull_partner, sync_state_path
    from transforms.sources.s3 import S3Source

    s3_server.proxy.clear()
    bucket = s3_server.new_bucket()
    partner = make_partner("p_watch", type="s3", conn_id="partner_s3", bucket=bucket, prefix="incoming")
    root = make_root(tmp_path, partner)
    client = s3_server.client()
    source = S3Source(s3_server.connection(), bucket, "incoming")
    clock = Clock()
    state_db = sync_state_path(partner, root)
    watch = SourceWatch(source.list, lambda: fetched_versions(state_db), 5, clock)
    assert watch.poll().ready == 0
    client.put_object(Bucket=bucket, Key="incoming/2026/a.dcm", Body=b"DICM" * 4)
    client.put_object(Bucket=bucket, Key="outside/b.dcm", Body=b"x")  # not the partner's prefix
    assert watch.poll().new == 1
    clock.t = 6
    assert watch.poll().ready == 1
    pulled = pull_partner(partner, root, "run1", resolver(s3_server.connection()), backoff=0)
    assert len(pulled.fetched) == 1
    fresh = SourceWatch(source.list, lambda: fetched_versions(state_db), 0, clock)  # e.g. a restarted triggerer
    assert fresh.poll().new == 0
    source.close()
