"""`sta deploy compose`: the production layout generated from the partner files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from deployment.compose import compose, render
from foundation.partners import load_partners

PROJECT = Path(__file__).resolve().parent.parent


def _partner_files(tmp_path: Path, extra: dict | None = None) -> Path:
    folder = tmp_path / "partners"
    folder.mkdir()
    for f in (PROJECT / "include" / "partners").glob("*.yaml"):
        (folder / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    if extra:
        (folder / f"{extra['id']}.yaml").write_text(yaml.safe_dump(extra), encoding="utf-8")
    return folder


def _workers(doc: dict) -> dict[str, dict]:
    return {n: s for n, s in doc["services"].items() if s.get("command", [None])[:2] == ["airflow", "celery"]}


def _queue(svc: dict) -> str:
    cmd = svc["command"]
    return cmd[cmd.index("-q") + 1]


def test_one_worker_per_partner_queue_mounting_only_its_root():
    partners = load_partners()
    doc = yaml.safe_load(render(partners))
    workers = _workers(doc)
    for p in partners:
        mine = [s for s in workers.values() if _queue(s) == p.queue]
        assert len(mine) == 1, p.id
        svc = mine[0]
        assert "," not in _queue(svc)  # consumes only its own queue
        assert svc["deploy"]["replicas"] == p.execution.workers
        mounts = [v.split(":")[1] for v in svc["volumes"]]
        assert mounts == [f"/data/{p.region}/partners/{p.id}"]
        assert svc["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"  # shared env kept
    for svc in workers.values():  # nobody else mounts a partner's raw root
        for v in svc["volumes"]:
            host = v.split(":")[0]
            if _queue(svc).startswith("region-"):
                assert v.endswith(":ro") or host.endswith("/store")


def test_a_worker_gets_only_its_own_partners_and_regions_credentials():
    partners = load_partners()
    doc = yaml.safe_load(render(partners))
    for p in partners:
        svc = next(s for s in _workers(doc).values() if _queue(s) == p.queue)
        conns = {k for k in svc["environment"] if k.startswith("AIRFLOW_CONN_")}
        expected = {f"AIRFLOW_CONN_STA_STORAGE_{p.region.upper()}"}
        if p.source.conn_id:
            expected.add(f"AIRFLOW_CONN_{p.source.conn_id.upper()}")
        assert conns == expected, (p.id, conns)
    for name, svc in _workers(doc).items():
        if _queue(svc).startswith("region-"):
            region = _queue(svc).split("-", 1)[1]
            assert {k for k in svc["environment"] if k.startswith("AIRFLOW_CONN_")} == {
                f"AIRFLOW_CONN_STA_STORAGE_{region.upper()}"}


def test_every_queue_a_dag_uses_has_a_worker():
    """No task may wait for ever in a queue nobody consumes (the old file's region-co/region-br)."""
    import os

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    used = {t.queue for d in bag.dags.values() for t in d.tasks}
    doc = yaml.safe_load(render(load_partners()))
    consumed = {_queue(s) for s in _workers(doc).values()}
    assert used and used <= consumed, used - consumed


def test_every_region_has_a_linking_worker_and_the_services_exist():
    partners = load_partners()
    doc = yaml.safe_load(render(partners))
    queues = {_queue(s) for s in _workers(doc).values()}
    for region in {p.region for p in partners}:
        assert f"region-{region}" in queues  # link_<region> tasks are consumed by someone
    for name in ("postgres", "redis", "airflow-init", "airflow-apiserver", "airflow-scheduler",
                 "airflow-dag-processor", "airflow-triggerer", "query-service"):
        assert name in doc["services"]
    init = " ".join(doc["services"]["airflow-init"]["command"])
    for p in partners:
        assert f"airflow pools set {p.pool} {p.execution.concurrency}" in init


def test_adding_a_partner_file_adds_its_worker_pool_and_volume(tmp_path, monkeypatch):
    extra = {"id": "hospital_austral_cl", "name": "Hospital Austral", "country": "cl", "region": "cl",
             "source": {"type": "folder", "path": "incoming/hospital_austral_cl"},
             "execution": {"workers": 3, "slots_per_worker": 2}}
    monkeypatch.setenv("STA_PARTNERS_DIR", str(_partner_files(tmp_path, extra)))
    out = subprocess.run([sys.executable, "-m", "sta.cli", "deploy", "compose"], capture_output=True, text=True,
                         check=True)
    doc = yaml.safe_load(out.stdout)
    svc = doc["services"]["worker-hospital-austral-cl"]
    assert _queue(svc) == "partner-hospital_austral_cl"
    assert svc["deploy"]["replicas"] == 3
    assert svc["volumes"] == ["/srv/sta/cl/partners/hospital_austral_cl:/data/cl/partners/hospital_austral_cl"]
    assert "worker-region-cl" in doc["services"]
    assert "airflow pools set partner-hospital_austral_cl 6" in " ".join(doc["services"]["airflow-init"]["command"])


def test_on_premise_partner_has_no_central_worker():
    partners = load_partners()
    p = partners[0].model_copy(update={"execution": partners[0].execution.model_copy(update={"on_premise": True})})
    doc = compose([p, *partners[1:]])
    assert not [s for s in _workers(doc).values() if _queue(s) == p.queue]


def test_committed_compose_file_is_the_generated_one():
    assert (PROJECT / "docker-compose.yaml").read_text(encoding="utf-8") == render(load_partners()), \
        "docker-compose.yaml is stale: run `sta deploy compose --out docker-compose.yaml`"


def test_image_dependencies_come_from_the_lock_file():
    docker = (PROJECT / "Dockerfile").read_text(encoding="utf-8")
    installs = [line for line in docker.splitlines() if "pip install" in line]
    assert any("-r requirements.lock" in line for line in installs)
    assert all("-r requirements.lock" in line or "--no-deps" in line for line in installs)
