"""The `sta label` / `sta eval-labels` interface (used by checks outside the project)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sta.cli import main

PROJECT = Path(__file__).resolve().parent.parent
CERTAINTIES = {"positive", "negative", "uncertain", "historical", "family"}


def _reports(tmp_path: Path) -> Path:
    d = tmp_path / "reports"
    (d / "sub").mkdir(parents=True)
    (d / "wrist_es.txt").write_text("Estructuras óseas de la muñeca sin trazos de fractura.\n"
                                    "CONCLUSIÓN: Radiografía de muñeca normal.\n", encoding="utf-8")
    (d / "sub" / "ct_pt.txt").write_text("TC de crânio: exame dentro dos limites da normalidade.", encoding="utf-8")
    (d / "chest_en.txt").write_bytes("FINDINGS: Right lower lobe consolidation.\nIMPRESSION: Pneumonia. "
                                     "A small effusion cannot be excluded. Mother had lung cancer.".encode("cp1252"))
    (d / "notes.json").write_text("{}")  # not a report: folders give their .txt/.md/suffix-less files only
    return d


def test_label_json_one_object_per_file_through_the_entry_point(tmp_path):
    d = _reports(tmp_path)
    out = subprocess.run([str(PROJECT / ".venv" / "bin" / "sta"), "label", str(d), "--json"],
                         capture_output=True, text=True, check=True, timeout=120)
    objs = [json.loads(line) for line in out.stdout.splitlines()]
    assert [Path(o["file"]).name for o in objs] == ["chest_en.txt", "ct_pt.txt", "wrist_es.txt"]
    for o in objs:
        assert {"file", "labels"} <= set(o)
        for lab in o["labels"]:
            assert {"concept", "certainty", "confidence", "source", "model_version"} <= set(lab)
            assert lab["certainty"] in CERTAINTIES and lab["source"] in ("rule", "model")
            assert 0 < lab["confidence"] <= 1
    by_file = {Path(o["file"]).name: {lab["concept"]: lab["certainty"] for lab in o["labels"]} for o in objs}
    assert by_file["wrist_es.txt"] == {"fracture": "negative", "normal": "positive"}
    assert by_file["ct_pt.txt"] == {"normal": "positive"}
    chest = by_file["chest_en.txt"]
    assert chest["pneumonia"] == "positive" and chest["consolidation"] == "positive"
    assert chest["pleural_effusion"] == "uncertain" and chest["malignant"] == "family"


def test_label_lang_option_and_missing_file(tmp_path, capsys):
    d = _reports(tmp_path)
    assert main(["label", str(d / "wrist_es.txt"), str(tmp_path / "missing.txt"), "--lang", "es", "--json"]) == 3
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0]["language"] == "es" and lines[0]["labels"]
    assert lines[1] == {"file": str(tmp_path / "missing.txt"), "error": "not_found", "labels": []}


def test_label_evidence_offsets_point_into_the_file(tmp_path, capsys):
    d = _reports(tmp_path)
    assert main(["label", str(d / "wrist_es.txt"), "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    text = (d / "wrist_es.txt").read_text(encoding="utf-8")
    for lab in obj["labels"]:
        for ev in lab["evidence"]:
            assert text[ev["start"]:ev["end"]] == ev["text"]


def test_concepts_listing_matches_the_vocabulary(capsys):
    from labelling.concepts import concept_ids

    assert main(["label", "--concepts"]) == 0
    listed = [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == concept_ids() and "pneumonia" in listed and "birads_4" in listed


def test_eval_labels_prints_per_label_scores_for_both_splits(capsys):
    assert main(["eval-labels", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert {"dev", "test"} <= set(figures)
    for split in (figures["dev"], figures["test"]):
        assert split["micro_f1"] >= 0.95 and split["assertion_accuracy"] >= 0.95
        assert {"abnormal", "fracture", "normal", "nodule"} <= set(split["per_label"])
    assert main(["eval-labels", "--split", "test"]) == 0
    text = capsys.readouterr().out
    assert "micro (positive)" in text and "assertion accuracy" in text and "== test split" in text


if __name__ == "__main__":  # pragma: no cover
    sys.exit(0)
