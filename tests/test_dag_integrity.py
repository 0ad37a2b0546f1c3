"""Every DAG imports; partner DAGs follow the tenancy rules; partners are data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from foundation.partners import PARTNERS_DIR, ConfigError, load_partner, load_partners

pytestmark = pytest.mark.dag


def _dagbag(partners_dir: Path | None = None):
    from airflow.dag_processing.dagbag import DagBag

    old = os.environ.get("STA_PARTNERS_DIR")
    if partners_dir is not None:
        os.environ["STA_PARTNERS_DIR"] = str(partners_dir)
    try:
        return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    finally:
        if partners_dir is not None:
            if old is None:
                os.environ.pop("STA_PARTNERS_DIR", None)
            else:
                os.environ["STA_PARTNERS_DIR"] = old


@pytest.fixture(scope="module")
def dagbag(airflow_db):
    return _dagbag()


def test_every_dag_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert len(dagbag.dags) >= len(load_partners())


def test_every_dag_has_owner_tags_and_retries(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", f"{dag_id}.{task.task_id} has no owner"
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"


def test_one_ingest_dag_per_partner_file(dagbag):
    for partner in load_partners():
        assert partner.dag_id in dagbag.dags


def test_every_task_of_a_partner_runs_in_its_queue_and_pool(dagbag):
    for partner in load_partners():
        dag = dagbag.dags[partner.dag_id]
        for task in dag.tasks:
            assert task.queue == f"partner-{partner.id}", task.task_id
            assert task.pool == f"partner-{partner.id}", task.task_id


def test_deidentification_fans_out_over_batches_not_files(dagbag):
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    dag = dagbag.dags[load_partners()[0].dag_id]
    mapped = {t.task_id for t in dag.tasks if isinstance(t, MappedOperator)}
    assert {"deidentify", "reports"} <= mapped


def test_adding_a_partner_is_adding_a_yaml_file(tmp_path, airflow_db):
    for f in PARTNERS_DIR.glob("*.yaml"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "clinica_sur_cl.yaml").write_text(
        "id: clinica_sur_cl\nname: Clínica Sur\ncountry: cl\nregion: cl\n"
        "source: {type: folder, path: incoming/clinica_sur_cl}\nprofile: latam\n"
    )
    bag = _dagbag(tmp_path)
    assert bag.import_errors == {}
    dag = bag.dags["ingest_clinica_sur_cl"]
    assert {t.queue for t in dag.tasks} == {"partner-clinica_sur_cl"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("id: x_co\nname: X\ncountry: zz\nregion: co\nsource: {type: folder, path: a}\n", "country"),
        ("id: x_co\nname: X\ncountry: co\nregion: co\nsource: {type: ftp, path: a}\n", "source.type"),
        ("id: x_co\nname: X\ncountry: co\nregion: co\nsource: {type: folder, path: a}\nprofile: nope\n",
         "unknown de-identification profile 'nope'"),
        ("id: x_co\nname: X\ncountry: co\nregion: co\nsource: {type: folder, path: ../../etc}\n", "'..'"),
        ("id: x_co\nname: X\ncountry: co\nregion: co\nsource: {type: folder}\nsurprise: 1\n", "surprise"),
        ("- just\n- a list\n", "must be a mapping"),
    ],
)
def test_a_bad_partner_file_fails_with_a_clear_error(tmp_path, body, message):
    path = tmp_path / "x_co.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError) as err:
        load_partner(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_every_task_of_every_dag_is_documented():
    """A data engineer reads what a task does in the UI (issue 16): no task without docs."""
    import os

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert bag.dags
    missing = sorted(f"{d.dag_id}.{t.task_id}" for d in bag.dags.values() for t in d.tasks
                     if not (t.doc_md or t.doc or t.doc_rst or t.doc_json or t.doc_yaml))
    assert not missing, missing
