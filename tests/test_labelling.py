"""The report labeller (labelling/): assertion classes per language, sections, scores, vocabulary, evaluation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from labelling import label_report, match_keyword
from labelling.config import LabellingConfigError

# Sentences written for this test (not taken from the evaluation set): one
# per assertion class and language, concept and certainty expected.
ASSERTIONS = [
    # positive
    ("es", "Se identifica neumotórax apical izquierdo de 1 cm.", "pneumothorax", "positive"),
    ("pt", "Presença de pneumotórax à esquerda.", "pneumothorax", "positive"),
    ("en", "There is a small left pneumothorax.", "pneumothorax", "positive"),
    # negative
    ("es", "No se evidencia derrame pleural.", "pleural_effusion", "negative"),
    ("pt", "Não há derrame pleural.", "pleural_effusion", "negative"),
    ("en", "No pleural effusion is present.", "pleural_effusion", "negative"),
    ("es", "Fractura de cadera descartada.", "fracture", "negative"),
    ("en", "Negative for fracture.", "fracture", "negative"),
    # uncertain
    ("es", "Opacidad basal; no se puede descartar neumonía.", "pneumonia", "uncertain"),
    ("pt", "Opacidade basal; não se pode excluir pneumonia.", "pneumonia", "uncertain"),
    ("en", "Basilar opacity; pneumonia cannot be excluded.", "pneumonia", "uncertain"),
    ("es", "Imagen sugestiva de absceso hepático.", "abscess", "uncertain"),
    ("pt", "Lesão sugestiva de abscesso hepático.", "abscess", "uncertain"),
    ("en", "Probable hepatic abscess.", "abscess", "uncertain"),
    # historical
    ("es", "Antecedente de fractura de radio en 2019.", "fracture", "historical"),
    ("pt", "História de fratura do rádio em 2019.", "fracture", "historical"),
    ("en", "History of radius fracture in 2019.", "fracture", "historical"),
    ("en", "Previously treated pneumonia has resolved.", "pneumonia", "historical"),
    # family
    ("es", "Madre con cáncer de mama.", "malignant", "family"),
    ("pt", "Irmã com câncer de mama.", "malignant", "family"),
    ("en", "Family history of breast cancer in her sister.", "malignant", "family"),
]


@pytest.mark.parametrize("lang,text,concept,certainty", ASSERTIONS)
def test_assertion_status_per_language(lang, text, concept, certainty):
    got = {lab.concept: lab.certainty for lab in label_report(text, lang).labels}
    assert got.get(concept) == certainty, got


@pytest.mark.parametrize("lang,text,concept,certainty", ASSERTIONS)
def test_language_is_detected_when_not_given(lang, text, concept, certainty):
    result = label_report(text + " " + text)
    assert result.by_concept()[concept].certainty == certainty


def test_negation_does_not_cross_a_terminator_or_a_new_clause():
    got = {lab.concept: lab.certainty for lab in label_report(
        "Sin derrame pleural, pero con neumotórax derecho. No hay fracturas. Nódulo pulmonar de 6 mm.", "es").labels}
    assert got["pleural_effusion"] == "negative"
    assert got["pneumothorax"] == "positive"
    assert got["fracture"] == "negative"
    assert got["nodule"] == "positive"


def test_negated_suspicion_is_negative_not_uncertain():
    got = label_report("Sin hallazgos sospechosos de malignidad. BI-RADS 1.", "es").by_concept()
    assert got["malignant"].certainty == "negative"
    assert got["birads_1"].certainty == "positive" and got["normal"].certainty == "positive"


def test_normal_wrist_with_no_fracture_is_normal_not_fracture():
    # The example: "sin trazos de fractura ... normal" was labelled both Fractura and Normal.
    got = label_report("Estructuras óseas de la muñeca sin trazos de fractura. Radiografía de muñeca normal.").by_concept()
    assert got["fracture"].certainty == "negative" and got["normal"].certainty == "positive"
    assert "abnormal" not in got


def test_portuguese_normal_ct_and_thyroid_tirads():
    assert label_report("TC de crânio dentro dos limites da normalidade.").by_concept()["normal"].certainty == "positive"
    got = label_report("Nódulo tireoidiano direito TI-RADS 3.").by_concept()
    assert got["tirads_3"].certainty == "positive" and got["nodule"].certainty == "positive"


def test_birads_categories_imply_benign_or_malignant():
    got = label_report("Mamografía: BI-RADS 4B. Se recomienda biopsia.").by_concept()
    assert got["birads_4"].certainty == "positive" and got["malignant"].certainty == "uncertain"
    got = label_report("Screening mammogram. BI-RADS 2: benign findings.").by_concept()
    assert got["birads_2"].certainty == "positive" and got["benign"].certainty == "positive"


def test_request_section_does_not_decide():
    got = label_report("Indicación: descartar neumonía.\nHallazgos: campos pulmonares sin consolidación.", "es")
    assert got.by_concept()["pneumonia"].certainty == "uncertain"
    assert got.by_concept()["consolidation"].certainty == "negative"


def test_evidence_spans_point_into_the_report():
    text = "HALLAZGOS: Consolidación en el lóbulo inferior.\nIMPRESIÓN: Neumonía lobar."
    lab = label_report(text, "es").by_concept()["pneumonia"]
    ev = lab.evidence[0]
    assert text[ev.start:ev.end] == "Neumonía" and ev.section == "impression"
    assert lab.source == "rule" and lab.model and lab.model_version


def test_sections_in_three_languages():
    from labelling.sections import splitter
    from labelling.text import Document

    for text, kinds in [
        ("HALLAZGOS: x.\nIMPRESIÓN: y.\nCONCLUSIÓN: z.", ["findings", "impression", "impression"]),
        ("ACHADOS: x.\nIMPRESSÃO: y.\nCONCLUSÃO: z.", ["findings", "impression", "impression"]),
        ("INDICATION: x.\nFINDINGS: y.\nIMPRESSION: z.", ["indication", "findings", "impression"]),
    ]:
        assert [s.kind for s in splitter().split(Document.of(text))] == kinds


def test_negation_cues_come_from_negspacy_termsets():
    from negspacy.termsets import termset

    from labelling.cues import cues

    es = cues().by_language["es"]
    assert "negativo para" in es.kind and "negativo para" in termset("es_clinical").get_patterns()["preceding_negations"]
    assert es.kind["resuelto"] == "<historical"  # negspacy lists it as a negation; a resolved finding is history
    en = cues().by_language["en"]
    assert en.kind["free of"].startswith("negative") and en.kind["versus"].startswith("uncertain")
    assert cues().by_language["pt"].kind["sem"] == "negative>"


def test_keyword_names_a_concept_in_any_language():
    assert match_keyword("nodulo") == match_keyword("Nódulo") == match_keyword("nodule") == ["nodule"]
    assert match_keyword("fractura") == match_keyword("fratura") == match_keyword("fracture") == ["fracture"]
    assert match_keyword("BI-RADS 4") == ["birads_4"]
    assert match_keyword("derrame pleural") == ["pleural_effusion"]
    assert match_keyword("the") == []


def test_every_concept_id_is_documented(tmp_path):
    from labelling.concepts import concept_ids

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    missing = [c for c in concept_ids() if not c.startswith(("birads_", "tirads_")) and f"`{c}`" not in readme]
    assert not missing


def test_a_bad_vocabulary_file_names_file_and_field(tmp_path):
    from labelling.concepts import Vocabulary

    bad = tmp_path / "concepts.yaml"
    bad.write_text("version: 1\nconcepts:\n  pneumonia:\n    group: disease\n    label: {es: a, pt: b, en: c}\n")
    with pytest.raises(LabellingConfigError, match=r"concepts.yaml: concepts.pneumonia.group"):
        Vocabulary.load(bad)


def test_evaluation_meets_targets_on_both_splits():
    from labelling.evaluate import by_split

    for split, scores in by_split().items():
        if split == "holdout":
            continue  # written after tuning: reported, not a target (see /work/notes/issue-13.md)
        assert scores.n_reports >= 75, split
        assert scores.micro()[2] >= 0.95, (split, scores.micro())
        assert scores.assertion_accuracy >= 0.95, (split, scores.assertion_accuracy)


def test_evaluation_set_covers_every_certainty_in_every_language():
    from labelling.evaluate import load_reports

    reports = [r for r in load_reports() if r.split in ("dev", "test")]
    assert len(reports) >= 150
    for lang in ("es", "pt", "en"):
        seen = {c for r in reports if r.language == lang for c in r.expect.values()}
        assert seen == {"positive", "negative", "uncertain", "historical", "family"}, lang


def test_status_model_matches_its_card_and_data():
    import json

    from labelling.model import CARD_PATH, load_status_model
    from labelling.train import train

    model = load_status_model()
    card = json.loads(CARD_PATH.read_text())
    assert model is not None and model.version == card["version"] and model.enabled == card["enabled"]
    assert 0.0 <= model.p_abnormal(["<finding:positive>"]) <= 1.0
    # Retraining on the same data gives the same version (the version is the data's digest).
    assert train(write=False)["version"] == card["version"]


def test_adding_a_cluster_is_adding_a_file(tmp_path, monkeypatch):
    from labelling import clusters as mod
    from labelling.config import data_dir

    copy = tmp_path / "labelling"
    shutil.copytree(data_dir(), copy)
    (copy / "clusters" / "cardiac_mr.yaml").write_text(
        "id: cardiac_mr\nname: {es: RM cardiaca, pt: RM cardíaca, en: Cardiac MRI}\n"
        "match: {modalities: [MR], regions: [chest]}\npriority: 60\nconcepts: [cardiomegaly, infarct]\n")
    monkeypatch.setenv("STA_LABELLING_DIR", str(copy))
    loaded = mod.Clusters.load()
    assert loaded.route("MR", "chest", "RM CARDIACA").id == "cardiac_mr"
    assert loaded.route("CT", "chest", "TC TORAX").id == "chest_ct"
    assert loaded.route("OT", "unknown").id == "general"
    (copy / "clusters" / "broken.yaml").write_text("id: broken\nname: {es: x}\nmatch: {regions: [elbow]}\n")
    with pytest.raises(LabellingConfigError, match="broken.yaml: match.regions"):
        mod.Clusters.load()


def test_cluster_keeps_its_concepts():
    from labelling.clusters import clusters

    text = "Mamografía: nódulo espiculado. Fractura costal antigua. BI-RADS 5."
    got = label_report(text, "es", cluster=clusters().get("mammography")).by_concept()
    assert "nodule" in got and "birads_5" in got and "fracture" not in got


def test_body_region_votes_over_a_wrong_body_part():
    from labelling.regions import infer_region

    g = infer_region("CT", "ABDOMEN", None, "TC DE TORAX", ["Torax 1.0"], "TOMOGRAFIA DE TORAX\nPulmones...")
    assert g.region == "chest" and 0.5 < g.confidence < 0.95
    assert infer_region("MR", "EXTREMITY", None, "RM JOELHO DIREITO").region == "msk"
    assert infer_region("MG").region == "breast"
    assert infer_region("OT").region == "unknown"


def test_characterization_fields():
    from labelling.characterize import StudyFacts, age_group, characterize

    assert age_group(None, "010D") == ("neonatal", "dicom")
    assert age_group(10)[0] == "pediatric" and age_group(40)[0] == "adult" and age_group(70)[0] == "geriatric"
    text = ("TC DE TÓRAX CON CONTRASTE\nIndicación: paciente fumador, no diabético, con fiebre y tos, en UCI. "
            "Control postoperatorio.\nHallazgos: antecedente de neumonía; sin consolidación.")
    facts = StudyFacts(modality="CT", age_years=70, sex="O", rows=512, cols=512, slice_thickness=1.0, n_slices=200,
                       contrast_agent=None, descriptions=["TC TORAX C/C"], report_text=text)
    got = {(c.field, c.value): c for c in characterize(facts, label_report(text).labels)}
    for key in [("age_group", "geriatric"), ("sex", "other"), ("resolution", "512x512"), ("dimensionality", "3D"),
                ("slice_thickness_mm", "1"), ("contrast", "with_contrast"), ("history", "smoker"),
                ("symptom", "fever"), ("symptom", "cough"), ("care_setting", "icu"), ("scan_phase", "follow_up"),
                ("procedure_context", "post_op"), ("history", "prior_pneumonia")]:
        assert key in got, key
        assert got[key].source and 0 < got[key].confidence <= 1
    assert ("history", "diabetic") not in got  # "no diabético"


def test_labeller_never_crashes_on_odd_text():
    import random

    from labelling.cues import cues

    rng = random.Random(5)
    phrases = [p for cs in cues().by_language.values() for p in cs.kind]
    pieces = phrases + ["BI-RADS", "TI-RADS 4", "0.58", ":", ";", "\n", "ñ", "ç", "ã", "S/P", "r/o", "—", "  ", "..."]
    for _ in range(200):
        text = " ".join(rng.choice(pieces) for _ in range(rng.randrange(0, 30)))
        for lab in label_report(text).labels:
            assert lab.certainty in ("positive", "negative", "uncertain", "historical", "family")
    assert label_report("").labels == []


def test_structured_fields_and_colon_lists():
    got = {lab.concept: lab.certainty for lab in label_report(
        "Derrame pleural: no. Neumotórax: ausente. Cardiomegalia: sí. Fractura: sin desplazamiento.", "es").labels}
    assert got["pleural_effusion"] == got["pneumothorax"] == "negative"
    assert got["cardiomegaly"] == got["fracture"] == "positive"
    got = {lab.concept: lab.certainty for lab in label_report(
        "No evidence of: pneumothorax, pleural effusion or consolidation.", "en").labels}
    assert got == {"pneumothorax": "negative", "pleural_effusion": "negative", "consolidation": "negative",
                   "normal": "positive"}


def test_a_negation_stops_at_a_new_statement_after_a_comma():
    got = label_report("Lesão hipodensa de 1,5 cm, sem realce, sugestiva de cisto.", "pt").by_concept()
    assert got["cyst"].certainty == "uncertain"
    got = label_report("Lesión sin realce, compatible con quiste simple.", "es").by_concept()
    assert got["cyst"].certainty == "positive"
    got = label_report("Sin derrame pleural, neumotórax ni consolidación.", "es").by_concept()
    assert got["pneumothorax"].certainty == got["consolidation"].certainty == "negative"
