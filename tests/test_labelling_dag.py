"""Labelling through Airflow: generated studies routed to their cluster pipelines (``dag.test()``).

One partner's ingest DAG runs on generated data in a data root of its own;
the test checks, against the generator's truth (its own mapping of protocol
to cluster, not the router's), that every study went to its cluster's
mapped task group, that the published labels carry the findings the
reports state, and that the characterization fields reach the Parquet and
the consolidated store.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from foundation.partners import load_partners
from foundation.schema import TABLES
from transforms.parquet_store import read_table

pytestmark = pytest.mark.dag

# The generator's protocols (synth/protocols.py) and the cluster a radiologist would send them to.
EXPECTED_CLUSTER = {
    "CT_CHEST": "chest_ct", "CT_HEAD": "head_ct", "MR_BRAIN": "brain_mr", "MR_KNEE": "msk_mr_ct",
    "MR_LSPINE": "msk_mr_ct", "US_ABDOMEN": "abdominal", "US_THYROID": "thyroid_us", "MG_SCREENING": "mammography",
    "XR_CHEST": "chest_xr", "XR_WRIST": "msk_xr",
}
# What a report of each generated finding must be labelled with (concept -> certainty).
EXPECTED_LABELS = {
    "normal": {"normal": "positive"},
    "pneumonia": {"pneumonia": "positive", "abnormal": "positive"},
    "pulmonary_nodule": {"nodule": "positive"},
    "fracture": {"fracture": "positive"},
    "cardiomegaly": {"cardiomegaly": "positive"},
    "intracranial_hemorrhage": {"hemorrhage": "positive"},
    "thyroid_nodule": {"nodule": "positive", "tirads_3": "positive"},
    "cholelithiasis": {"cholelithiasis": "positive"},
    "hepatic_steatosis": {"hepatic_steatosis": "positive"},
    "disc_herniation": {"disc_herniation": "positive"},
    "meniscal_tear": {"meniscal_tear": "positive"},
}
PARTNER = "hospital_paulista_br"


@pytest.fixture(scope="module")
def labelled(airflow_db, tmp_path_factory):
    from anonymization.keys import Keyring
    from synth import generate
    from synth.airflow_run import run_dag

    root = tmp_path_factory.mktemp("labelling-data")
    old = os.environ.get("STA_DATA_ROOT")
    os.environ["STA_DATA_ROOT"] = str(root)
    try:
        summary = generate(root / "incoming", 10, 29)
        truth = json.loads(Path(summary["truth"]).read_text())
        partner = next(p for p in load_partners() if p.id == PARTNER)
        run = run_dag(partner.dag_id)
        keyring = Keyring.from_env()
        findings = {keyring.uid(f["study_uid"]): f for f in truth["findings"] if f["partner"] == PARTNER}
        tables = {name: read_table(partner.root().parquet, name, TABLES[name]).to_pylist()
                  for name in ("studies", "labels", "characteristics", "reports")}
        yield run, findings, tables, partner, root
    finally:
        if old is None:
            os.environ.pop("STA_DATA_ROOT", None)
        else:
            os.environ["STA_DATA_ROOT"] = old


def test_dag_runs_a_mapped_labelling_group_per_cluster(labelled):
    run, findings, tables, _partner, _root = labelled
    assert run.state == "success", [(t.task_id, t.map_index, t.state) for t in run.tasks]
    mapped = [t for t in run.tasks if t.task_id == "label_cluster.label_reports"]
    characterized = [t for t in run.tasks if t.task_id == "label_cluster.characterize"]
    assert mapped and all(t.map_index >= 0 and t.state == "success" for t in mapped + characterized)
    clusters = {r["value"] for r in tables["characteristics"] if r["field"] == "cluster"}
    assert len(mapped) == len(characterized) == len(clusters) >= 3
    assert any(t.task_id == "merge_labels" and t.state == "success" for t in run.tasks)


def test_generated_studies_are_routed_to_their_cluster(labelled):
    _run, findings, tables, _partner, _root = labelled
    routed = {r["study_uid"]: r["value"] for r in tables["characteristics"] if r["field"] == "cluster"}
    published = {s["study_uid"] for s in tables["studies"]}
    checked = Counter()
    for uid, f in findings.items():
        if uid not in published:
            continue  # a planted fault, quarantined
        assert routed.get(uid) == EXPECTED_CLUSTER[f["protocol"]], (f["protocol"], routed.get(uid))
        checked[EXPECTED_CLUSTER[f["protocol"]]] += 1
    assert sum(checked.values()) >= 8 and len(checked) >= 3, checked


def test_body_region_is_inferred_with_a_confidence(labelled):
    _run, findings, tables, _partner, _root = labelled
    region = {s["study_uid"]: s["body_region"] for s in tables["studies"]}
    conf = {r["study_uid"]: r["confidence"] for r in tables["characteristics"] if r["field"] == "body_region"}
    for uid, f in findings.items():
        if uid in region:
            assert region[uid] == f["body_region"], (f["protocol"], region[uid])
            assert 0.5 <= conf[uid] <= 1.0


def test_published_labels_state_the_reported_findings(labelled):
    _run, findings, tables, _partner, _root = labelled
    by_study: dict[str, dict[str, str]] = {}
    for r in tables["labels"]:
        by_study.setdefault(r["study_uid"], {})[r["concept"]] = r["certainty"]
        assert r["source"] in ("rule", "model") and r["model"] and r["model_version"]
        assert r["label_es"] and r["label_pt"] and r["label_en"] and 0 < r["confidence"] <= 1
    texts = {r["report_id"]: r["text_scrubbed"] for r in tables["reports"]}
    for r in tables["labels"]:
        if r["evidence_start"] is not None:  # the span points into the scrubbed report
            assert texts[r["report_id"]][r["evidence_start"]:r["evidence_end"]] == r["evidence_text"]
    reported = [(uid, f) for uid, f in findings.items() if f.get("report") and uid in by_study]
    assert len(reported) >= 4
    for uid, f in reported:
        want = dict(EXPECTED_LABELS.get(f["finding"], {}))
        if f["labels"].get("birads"):
            want[f"birads_{f['labels']['birads']}"] = "positive"
        for concept, certainty in want.items():
            assert by_study[uid].get(concept) == certainty, (f["finding"], f["language"], by_study[uid])


def test_characterization_fields_reach_parquet_and_store(labelled):
    from transforms.consolidate import consolidate_region, store_path

    _run, _findings, tables, partner, root = labelled
    fields = Counter(r["field"] for r in tables["characteristics"])
    # From the de-identified headers (PixelSpacing, SliceThickness) and the DICOM rows.
    for field in ("age_group", "sex", "resolution", "dimensionality", "cluster", "body_region", "pixel_spacing_mm"):
        assert fields[field] >= len(tables["studies"]) // 2, (field, fields)
    for r in tables["characteristics"]:
        assert r["source"] and 0 < r["confidence"] <= 1
    modality = {s["study_uid"]: s["modality"] for s in tables["studies"]}
    thick = {r["study_uid"] for r in tables["characteristics"] if r["field"] == "slice_thickness_mm"}
    assert {u for u, m in modality.items() if m in ("CT", "MR")} <= thick
    ages = {r["value"] for r in tables["characteristics"] if r["field"] == "age_group"}

    assert ages <= {"neonatal", "pediatric", "adult", "geriatric"}
    consolidate_region(partner.region, root)
    con = duckdb.connect(str(store_path(partner.region, root)), read_only=True)
    try:
        n_chr = con.execute("SELECT count(*) FROM characteristics").fetchone()[0]
        row = con.execute("SELECT count(*), count(cluster), count(age_group), count(dimensionality) "
                          "FROM search_studies").fetchone()
        positives = con.execute("SELECT count(*) FROM search_studies WHERE len(labels) > 0").fetchone()[0]
        bad = con.execute("SELECT count(*) FROM search_studies s, unnest(s.labels) AS u(c) "
                          "WHERE NOT list_contains(s.label_certainties, u.c || ':positive')").fetchone()[0]
    finally:
        con.close()
    assert n_chr == len(tables["characteristics"])
    assert row[0] == row[1] == row[2] == row[3] > 0
    assert positives > 0 and bad == 0  # the facet list holds positive labels only
