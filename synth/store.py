"""Synthetic consolidated stores for benchmarks (``python -m synth --metadata-only``).

A store of a million studies has to exist in seconds, not hours, so the rows
are made by DuckDB SQL from ``range(N)`` and a hash of the row number: no
Python loop, no pixel data, same ``(studies, seed)`` gives the same store. The
tables are the published ones of ``foundation.schema`` and ``search_studies``
is filled by the same SQL as a real consolidation
(``transforms.store_schema.rebuild_search``), so the query service cannot
tell a synthetic store from a real one and a benchmark measures real queries.

Reports are short radiology sentences in Spanish, Portuguese and English with
their accents, so keyword search is measured on text like the real one.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import duckdb

from transforms.store_schema import create_tables, rebuild_search

PARTNERS = 12
STUDIES_PER_PATIENT = 3

MODALITIES = ["CR", "CR", "DX", "DX", "DX", "CT", "CT", "CT", "CT", "MR", "MR", "MR",
              "US", "US", "US", "MG", "MG", "MG", "PT", "SM"]
REGIONS_BODY = ["head_neck", "chest", "chest", "abdomen", "msk", "msk", "pelvis", "whole_body"]
MANUFACTURERS = ["GE Healthcare", "Siemens Healthineers", "Philips", "Canon Medical",
                 "Fujifilm", "Hologic", "Samsung Medison", "Mindray"]
# Concept ids of the pipeline's labeller (include/labelling/concepts.yaml).
FINDING_LABELS = ["nodule", "pneumonia", "fracture", "mass"]

FINDINGS = {
    "es": ["Se observa nódulo de bordes definidos", "Ausencia del nódulo linfático",
           "Calcificaciones benignas dispersas", "Opacidad compatible con neumonía",
           "Fractura no desplazada", "Derrame pleural leve", "Quiste simple sin ecos internos",
           "Lesión hipodensa en lóbulo hepático", "Engrosamiento de la pared vesicular",
           "Sin hallazgos patológicos significativos", "Atelectasia laminar basal",
           "Cambios degenerativos articulares", "Masa heterogénea de contornos irregulares",
           "Aumento de densidad del tejido fibroglandular"],
    "pt": ["Observa-se nódulo de contornos regulares", "Ausência de linfonodos aumentados",
           "Calcificações benignas esparsas", "Opacidade compatível com pneumonia",
           "Fratura sem desvio", "Derrame pleural discreto", "Cisto simples anecoico",
           "Lesão hipodensa no lobo hepático", "Espessamento da parede vesicular",
           "Sem alterações significativas", "Atelectasia laminar basal",
           "Alterações degenerativas articulares", "Massa heterogênea de contornos irregulares",
           "Aumento da densidade do tecido fibroglandular"],
    "en": ["Well-defined nodule is seen", "No enlarged lymph nodes",
           "Scattered benign calcifications", "Opacity consistent with pneumonia",
           "Non-displaced fracture", "Small pleural effusion", "Simple anechoic cyst",
           "Hypodense lesion in the hepatic lobe", "Gallbladder wall thickening",
           "No significant abnormality", "Basal plate atelectasis",
           "Degenerative joint changes", "Heterogeneous mass with irregular margins",
           "Increased fibroglandular tissue density"],
}
CONCLUSIONS = {
    "es": ["Comparativa: exámenes previos no se encuentran disponibles.",
           "Recomendación: se sugiere control de rutina dada la edad del paciente.",
           "Se recomienda correlación clínica.", "Control en seis meses."],
    "pt": ["Comparação: exames anteriores não disponíveis.",
           "Recomendação: controle de rotina sugerido pela idade do paciente.",
           "Sugere-se correlação clínica.", "Controle em seis meses."],
    "en": ["Comparison: no prior examinations available.",
           "Recommendation: routine follow-up given the patient's age.",
           "Clinical correlation is recommended.", "Follow-up in six months."],
}
DESCRIPTIONS = {
    "CR": "RX", "DX": "RX DIGITAL", "CT": "TAC", "MR": "RM", "US": "ECOGRAFIA",
    "MG": "MAMOGRAFIA", "PT": "PET-CT", "SM": "HISTOPATOLOGIA",
}


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _pick(values: list[str], salt: int) -> str:
    """SQL picking one element of ``values`` from the row's hash (``h(salt)``)."""
    return f"{_sql_list(values)}[1 + (h({salt}) % {len(values)})::INTEGER]"


def generate_store(out: Path, studies: int, seed: int = 0, region: str = "co") -> Path:
    """Write a consolidated store of ``studies`` generated studies (no pixels).

    Returns the path of the DuckDB file. An existing file is replaced. About
    25 s for 1,000,000 studies on 2 cores.
    """
    out = Path(out)
    if studies < 1:
        raise ValueError("studies must be at least 1")
    if out.suffix != ".duckdb":
        out = out / "consolidated.duckdb" if out.is_dir() or not out.suffix else out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    started = time.monotonic()
    con = duckdb.connect(str(tmp))
    try:
        con.execute("SET enable_progress_bar = false")
        create_tables(con, region)
        con.execute(f"CREATE MACRO h(salt) AS hash(i * 1000003 + salt * 7919 + {int(seed)} * 104729)")
        patients = max(1, studies // STUDIES_PER_PATIENT)
        langs = ["es", "es", "pt", "en"] if region != "br" else ["pt", "pt", "es", "en"]
        if region == "us":
            langs = ["en"]
        partners = [f"{region}_partner_{k:02d}" for k in range(1, PARTNERS + 1)]
        findings = {lang: _sql_list(v) for lang, v in FINDINGS.items()}
        conclusions = {lang: _sql_list(v) for lang, v in CONCLUSIONS.items()}
        desc_map = "MAP {" + ", ".join(f"'{k}': '{v}'" for k, v in DESCRIPTIONS.items()) + "}"

        con.execute(f"""
CREATE TEMP TABLE g AS
SELECT i,
       'syn.' || {int(seed)} || '.' || i AS study_uid,
       md5('{int(seed)}:patient:' || (h(1) % {patients})) AS patient_token,
       (h(1) % {patients}) AS pidx,
       {_pick(partners, 2)} AS partner_id,
       {_pick(MODALITIES, 3)} AS modality,
       {_pick(MANUFACTURERS, 4)} AS manufacturer,
       {_pick(langs, 5)} AS language,
       DATE '2012-01-01' + (h(6) % 5000)::INTEGER AS study_date,
       h(7) AS h7, h(8) AS h8, h(9) AS h9, h(10) AS h10, h(11) AS h11
FROM range({int(studies)}) t(i)
""")
        con.execute(f"""
CREATE TEMP TABLE pat AS
SELECT p AS pidx, md5('{int(seed)}:patient:' || p) AS patient_token,
       CASE WHEN hash(p + {int(seed)}) % 100 < 55 THEN 'F'
            WHEN hash(p + {int(seed)}) % 100 < 99 THEN 'M' ELSE 'O' END AS sex,
       (1930 + (hash(p * 31 + {int(seed)}) % 90))::INTEGER AS birth_year
FROM range({patients}) t(p)
""")
        con.execute(f"""
INSERT INTO studies
SELECT g.study_uid, g.patient_token, g.partner_id, '{region}', '{region}',
       g.modality,
       CASE WHEN g.modality = 'PT' THEN ['PT', 'CT'] ELSE [g.modality] END,
       CASE WHEN g.modality = 'MG' THEN 'breast'
            WHEN g.modality = 'US' AND g.h7 % 3 = 0 THEN 'breast'
            ELSE {_sql_list(REGIONS_BODY)}[1 + (g.h7 % {len(REGIONS_BODY)})::INTEGER] END,
       g.study_date,
       ({desc_map})[g.modality],
       greatest(0, least(100, year(g.study_date) - p.birth_year))::INTEGER,
       CASE WHEN g.modality = 'MG' THEN 'F' ELSE p.sex END,
       g.manufacturer, 'Model ' || (g.h8 % 7)::VARCHAR,
       1 + (g.h8 % 4)::INTEGER, 1 + (g.h9 % 400)::INTEGER
FROM g JOIN pat p USING (pidx)
""")
        con.execute(f"""
INSERT INTO patients
SELECT DISTINCT ON (g.patient_token, g.partner_id) g.patient_token, g.partner_id, '{region}',
       p.sex, (p.birth_year // 10 * 10)::INTEGER
FROM g JOIN pat p USING (pidx)
""")
        con.execute(f"""
INSERT INTO series
SELECT g.study_uid || '.1', g.study_uid, g.partner_id, g.modality,
       upper(s.body_region), 1, s.study_description || ' serie 1', s.n_instances, NULL
FROM g JOIN studies s USING (study_uid)
""")
        con.execute(f"""
INSERT INTO reports
SELECT md5('r' || g.study_uid), g.study_uid, g.patient_token, g.partner_id, g.language,
       'txt', 1, 0,
       CASE g.language {" ".join(
           f"WHEN '{lang}' THEN {findings[lang]}[1 + (g.h10 % {len(FINDINGS[lang])})::INTEGER] || '. ' || "
           f"{findings[lang]}[1 + ((g.h10 // 97) % {len(FINDINGS[lang])})::INTEGER] || '. ' || "
           f"CASE WHEN s.body_region = 'breast' THEN 'BI-RADS ' || (g.h11 % 6)::VARCHAR || '. ' ELSE '' END || "
           f"{conclusions[lang]}[1 + (g.h11 // 7 % {len(CONCLUSIONS[lang])})::INTEGER]"
           for lang in FINDINGS)} END
FROM g JOIN studies s USING (study_uid)
""")
        con.execute(f"""
INSERT INTO labels (study_uid, partner_id, concept, certainty, label_es, label_pt, label_en, confidence, source,
                    model, model_version)
SELECT g.study_uid, g.partner_id, 'birads_' || (g.h11 % 6)::VARCHAR, 'positive',
       'BI-RADS ' || (g.h11 % 6)::VARCHAR, 'BI-RADS ' || (g.h11 % 6)::VARCHAR, 'BI-RADS ' || (g.h11 % 6)::VARCHAR,
       0.95, 'rule', 'synth', '1'
FROM g JOIN studies s USING (study_uid) WHERE s.body_region = 'breast'
UNION ALL
SELECT g.study_uid, g.partner_id, 'normal', 'positive', 'Normal', 'Normal', 'Normal', 0.9, 'rule', 'synth', '1'
FROM g WHERE g.h10 % 3 = 0
UNION ALL
SELECT g.study_uid, g.partner_id, 'pneumonia', 'negative', 'Neumonía', 'Pneumonia', 'Pneumonia', 0.9, 'rule',
       'synth', '1'
FROM g WHERE g.h10 % 3 = 0 AND g.h9 % 4 = 0
UNION ALL
SELECT g.study_uid, g.partner_id,
       {_sql_list(FINDING_LABELS)}[1 + (g.h9 % {len(FINDING_LABELS)})::INTEGER], 'positive', NULL, NULL, NULL, 0.9,
       'rule', 'synth', '1'
FROM g WHERE g.h10 % 3 <> 0
""")
        rebuild_search(con)
        con.execute(
            "INSERT INTO store_partners SELECT partner_id, 'synthetic', now(), "
            "'{\"studies\": ' || count(*) || '}' FROM studies GROUP BY partner_id"
        )
        con.execute("INSERT OR REPLACE INTO store_meta VALUES ('synthetic', ?)",
                    [f"studies={studies} seed={seed} seconds={time.monotonic() - started:.1f}"])
        con.execute("DROP TABLE g")
        con.execute("DROP TABLE pat")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    os.replace(tmp, out)
    return out
